// Builds the prebuilt binaries shipped in the npm tarball, in prebuildify's layout, which node-gyp-build
// (lib/loader.ts) searches: prebuilds/<platform>-<arch>/rmsnorm.napi.glibc.node. The name's tags tell
// node-gyp-build that the file is Node-API (any Node.js version with N-API 8) and for glibc (a musl system
// skips it). The "rmsnorm" tag is ignored by node-gyp-build and only names the file.
//
//   npm run prebuilds                     linux-<host arch>
//   npm run prebuilds -- --arch arm64     linux-arm64, cross-compiled (apt-get install g++-aarch64-linux-gnu)
//   npm run prebuilds -- --all            linux-x64 and linux-arm64
//   npm run prebuilds -- --check          only check that both are there and newer than the sources
//                                         (prepublishOnly: `npm publish` refuses to ship without them)
//
// Each build has its own cmake-js build directory (build-prebuild/linux-<arch>; build/ stays the development
// build), is checked by scripts/check-baseline.mjs (no instruction beyond the architecture's baseline
// outside the AVX2/AVX-512 kernel objects), and is stripped on the way into prebuilds/. The script prints
// the glibc and libstdc++ versions the binary needs (built on Debian 12 with GCC 12: glibc 2.14 and
// GLIBCXX_3.4.30, the libstdc++ of GCC 12 or later). Linking libstdc++ statically was tried and is worse:
// its archive binds pthread, arc4random and _dl_find_object at glibc 2.34-2.36.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkBaseline } from './check-baseline.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

export const PREBUILD_NAME = 'rmsnorm.napi.glibc.node';
export const TARGETS = {
  x64: { elfMachine: 62, cmakeProcessor: 'x86_64', tools: 'x86_64-linux-gnu-', toolchain: null },
  arm64: {
    elfMachine: 183,
    cmakeProcessor: 'aarch64',
    tools: 'aarch64-linux-gnu-',
    toolchain: 'cmake/aarch64-linux-gnu.cmake',
  },
};

export function prebuildPath(arch, platform = 'linux') {
  return path.join(root, 'prebuilds', `${platform}-${arch}`, PREBUILD_NAME);
}

function hasCommand(command) {
  return spawnSync('sh', ['-c', `command -v "${command}"`], { stdio: 'ignore' }).status === 0;
}

// The target's binutils: prefixed cross tools where they exist, else the host's for a native build.
function tool(arch, name) {
  const prefixed = `${TARGETS[arch].tools}${name}`;
  if (hasCommand(prefixed)) return prefixed;
  if (arch === process.arch && hasCommand(name)) return name;
  throw new Error(
    `${prefixed} not found: install binutils for ${arch} (Debian: binutils-${TARGETS[arch].tools.slice(0, -1)})`,
  );
}

function elfMachine(file) {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
  return b.readUInt16LE(18);
}

function glibcFloor(arch, file) {
  const dynamic = execFileSync(tool(arch, 'objdump'), ['-T', file], { encoding: 'utf8' });
  const needs = (prefix) =>
    [...dynamic.matchAll(new RegExp(`\\(${prefix}_([0-9.]+)\\)`, 'g'))]
      .map((m) => m[1])
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
      .pop();
  return { glibc: needs('GLIBC'), glibcxx: needs('GLIBCXX'), cxxabi: needs('CXXABI') };
}

export function build(arch) {
  if (process.platform !== 'linux') throw new Error(`prebuilds are made on Linux (this is ${process.platform})`);
  const target = TARGETS[arch];
  if (!target) throw new Error(`unknown arch "${arch}" (known: ${Object.keys(TARGETS).join(', ')})`);
  const cross = arch !== process.arch;
  if (cross && !target.toolchain) throw new Error(`no toolchain file for cross-compiling to ${arch}`);
  if (cross && !hasCommand(`${target.tools}g++`)) {
    throw new Error(
      `${target.tools}g++ not found: cross-compiling for ${arch} needs it (Debian: apt-get install g++-${target.tools.slice(0, -1)})`,
    );
  }

  const outDir = path.join(root, 'build-prebuild', `linux-${arch}`);
  const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const args = [cmakeJs, 'compile', '--out', outDir, '--arch', arch];
  if (cross) args.push(`--CDCMAKE_TOOLCHAIN_FILE=${path.join(root, target.toolchain)}`);
  console.log(`prebuild linux-${arch}: cmake-js ${args.slice(1).join(' ')}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cmake-js failed for linux-${arch} (exit ${r.status ?? r.signal})`);

  const built = path.join(outDir, 'Release', 'rmsnorm.node');
  if (elfMachine(built) !== target.elfMachine) throw new Error(`${built} is not an ${arch} binary`);

  const check = checkBaseline(outDir, arch, { tools: cross ? target.tools : '' });
  for (const line of check.summary) console.log(`  ${line}`);
  if (!check.ok) {
    throw new Error(
      `linux-${arch} build uses instructions beyond the baseline outside the kernel objects:\n  ${check.problems.join('\n  ')}`,
    );
  }

  const dest = prebuildPath(arch);
  mkdirSync(path.dirname(dest), { recursive: true });
  for (const old of readdirSync(path.dirname(dest))) rmSync(path.join(path.dirname(dest), old));
  execFileSync(tool(arch, 'strip'), ['--strip-all', '-o', dest, built]);
  const floor = glibcFloor(arch, dest);
  console.log(
    `  -> ${path.relative(root, dest)}: ${statSync(dest).size} bytes, needs glibc >= ${floor.glibc ?? '?'}, ` +
      `libstdc++ GLIBCXX_${floor.glibcxx ?? '?'} and CXXABI_${floor.cxxabi ?? '?'}`,
  );
  return dest;
}

// Both prebuilds present, for the right machine, and not older than what they are built from.
export function check(arches = Object.keys(TARGETS)) {
  const sources = ['CMakeLists.txt', ...readdirSync(path.join(root, 'native')).map((f) => path.join('native', f))];
  const newest = Math.max(...sources.map((f) => statSync(path.join(root, f)).mtimeMs));
  const problems = [];
  for (const arch of arches) {
    const file = prebuildPath(arch);
    if (!existsSync(file)) problems.push(`${path.relative(root, file)} is missing`);
    else if (elfMachine(file) !== TARGETS[arch].elfMachine)
      problems.push(`${path.relative(root, file)} is not an ${arch} binary`);
    else if (statSync(file).mtimeMs < newest)
      problems.push(`${path.relative(root, file)} is older than the native sources`);
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const arches = [];
  let checkOnly = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--all') arches.push(...Object.keys(TARGETS));
    else if (argv[i] === '--arch') arches.push(argv[++i]);
    else if (argv[i].startsWith('--arch=')) arches.push(argv[i].slice(7));
    else if (argv[i] === '--check') checkOnly = true;
    else {
      console.error(`prebuild: unknown argument ${argv[i]}`);
      process.exit(2);
    }
  }
  try {
    if (checkOnly) {
      const problems = check(arches.length ? arches : undefined);
      if (problems.length) {
        console.error(`prebuild: ${problems.join('; ')}. Run \`npm run prebuilds -- --all\` before publishing.`);
        process.exit(1);
      }
      console.log('prebuild: prebuilds present and current');
    } else {
      for (const arch of arches.length ? [...new Set(arches)] : [process.arch]) build(arch);
    }
  } catch (error) {
    console.error(`prebuild: ${error.message}`);
    process.exit(1);
  }
}
