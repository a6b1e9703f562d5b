// The prebuilt binaries against their targets' floors (scripts/check-baseline.mjs --linked, which
// scripts/prebuild.mjs runs on every build and prepublishOnly before publishing): each one present passes,
// all seven must be present where CI built them (RMSNORM_TEST_PREBUILDS=all), and the check itself refuses
// binaries that break a floor.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const TARGETS: Record<string, string> = {
  'linux-x64': 'linux-x64/rmsnorm.napi.glibc.node',
  'linux-arm64': 'linux-arm64/rmsnorm.napi.glibc.node',
  'linuxmusl-x64': 'linux-x64/rmsnorm.napi.musl.node',
  'linuxmusl-arm64': 'linux-arm64/rmsnorm.napi.musl.node',
  'darwin-x64': 'darwin-x64/rmsnorm.napi.node',
  'darwin-arm64': 'darwin-arm64/rmsnorm.napi.node',
  'win32-x64': 'win32-x64/rmsnorm.napi.node',
};

function linked(file: string, target: string) {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'check-baseline.mjs'), '--linked', file, target], {
    encoding: 'utf8',
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('prebuilds', () => {
  it('every prebuild present meets its target floor (all seven where CI built them)', () => {
    const present = Object.entries(TARGETS).filter(([, f]) => existsSync(path.join(root, 'prebuilds', f)));
    if (process.env.RMSNORM_TEST_PREBUILDS === 'all') expect(present.map(([t]) => t)).toEqual(Object.keys(TARGETS));
    for (const [target, f] of present) {
      const r = linked(path.join(root, 'prebuilds', f), target);
      expect(r.output, target).not.toMatch(/above the|GLIBCXX|needs libstdc|besides|no code signature|not an? /);
      expect(r.status, r.output).toBe(0);
    }
  });

  it.each([
    // Debian's own libstdc++: built against a current glibc, with versioned C++ symbols exported.
    ['linux-x64', '/usr/lib/x86_64-linux-gnu/libstdc++.so.6', /needs glibc 2\.\d+, above the 2\.17 floor/],
    ['linux-x64', process.execPath, /exports .* besides the Node-API entry points|above the 2\.17 floor/],
    ['linuxmusl-x64', '/usr/lib/x86_64-linux-gnu/libstdc++.so.6', /needs .* besides musl's libc\.so/],
    ['win32-x64', process.execPath, /not a PE file/],
    ['darwin-arm64', process.execPath, /not a 64-bit Mach-O file/],
  ])('refuses a binary that breaks the %s floor (%s)', (target, file, message) => {
    const r = linked(file, target);
    expect(r.status).toBe(1);
    expect(r.output).toMatch(message);
  });
});
