import { defineConfig } from 'vitest/config';

// The whole suite runs once per backend: every native instruction set this machine can run (forced with
// RMSNORM_ISA; a set the CPU lacks falls back to the best one below it, which test/backend.test.ts checks)
// and the pure-TypeScript fallback. RMSNORM_BACKEND=native makes a native project fail loudly rather than
// quietly testing the fallback.
const backends = [
  { name: 'avx512bf16', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'avx512bf16' } },
  { name: 'avx512', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'avx512' } },
  { name: 'avx2', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'avx2' } },
  { name: 'neon', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'neon' } },
  { name: 'scalar', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'scalar' } },
  { name: 'js', env: { RMSNORM_BACKEND: 'js', RMSNORM_ISA: '' } },
].filter((b) => (process.arch === 'arm64' ? !b.name.startsWith('avx') : b.name !== 'neon'));

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    projects: [
      ...backends.map((b) => ({
        extends: true,
        test: { name: b.name, env: { ...b.env, RMSNORM_TEST_BACKEND: b.name }, include: ['test/*.test.ts'] },
      })),
      // How the package loads (entry points, loader, environment variables, the packed tarball): once, each case
      // in a child process. The linux-arm64 check under qemu needs a cross compiler and qemu: it is part of the
      // suite when RMSNORM_TEST_ARM64=1 (as .ci/run sets), and absent otherwise rather than skipped.
      {
        extends: true,
        test: {
          name: 'package',
          include: ['test/package/*.test.ts'],
          exclude: process.env.RMSNORM_TEST_ARM64 === '1' ? [] : ['test/package/arm64.test.ts'],
        },
      },
    ],
  },
});
