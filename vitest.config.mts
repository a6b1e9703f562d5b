import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

// The whole suite runs once per backend: every native instruction set this machine can run (forced with
// RMSNORM_ISA) and the pure-TypeScript fallback. RMSNORM_BACKEND=native makes a native project fail loudly
// rather than quietly testing the fallback. An instruction set this CPU lacks gets a project of its own that
// reports the suite as skipped, with the reason, instead of running another kernel under its name (a cap above
// what the CPU has selects the best kernel below it: test/package/loader.test.ts checks that).
const REQUIRES: Record<string, string> = {
  avx512bf16: 'AVX512_BF16',
  avx512: 'AVX-512 (F, BW, DQ, VL)',
  avx2: 'AVX2 and FMA',
  neon: 'NEON',
  scalar: 'nothing',
};
const backends = [
  { name: 'avx512bf16', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'avx512bf16' } },
  { name: 'avx512', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'avx512' } },
  { name: 'avx2', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'avx2' } },
  { name: 'neon', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'neon' } },
  { name: 'scalar', env: { RMSNORM_BACKEND: 'native', RMSNORM_ISA: 'scalar' } },
  { name: 'js', env: { RMSNORM_BACKEND: 'js', RMSNORM_ISA: '' } },
].filter((b) => (process.arch === 'arm64' ? !b.name.startsWith('avx') : b.name !== 'neon'));

/** The instruction sets the built addon finds on this CPU, or null when it is not built (native projects then fail). */
function supportedIsas(): string[] | null {
  try {
    const addon = createRequire(import.meta.url)('./build/Release/rmsnorm.node') as { supportedIsas(): string[] };
    return addon.supportedIsas();
  } catch {
    return null;
  }
}
const supported = supportedIsas();
const lacks = (name: string) => name !== 'js' && supported !== null && !supported.includes(name);

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    projects: [
      ...backends.map((b) => ({
        extends: true,
        test: {
          name: b.name,
          env: { ...b.env, RMSNORM_TEST_BACKEND: b.name, RMSNORM_TEST_REQUIRES: REQUIRES[b.name] ?? '' },
          include: lacks(b.name) ? ['test/unavailable/*.test.ts'] : ['test/*.test.ts'],
        },
      })),
      // How the package loads (entry points, loader, environment variables, the packed tarball) and the files
      // generated from the op table: once, each loading case in a child process. The linux-arm64 check under
      // qemu needs a cross compiler and qemu: it is part of the suite when RMSNORM_TEST_ARM64=1 (as .ci/run
      // sets), and absent otherwise rather than skipped.
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
