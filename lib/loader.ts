// The one place that finds the native module. It tries, in node-gyp-build's order, build/Release/*.node and
// build/Debug/*.node (a source build, which a developer expects to win over an older prebuild), then the best
// match in prebuilds/<platform>-<arch>/ by node-gyp-build's rules (shipped in the npm tarball:
// rmsnorm.napi.glibc.node and rmsnorm.napi.musl.node on Linux, chosen by this process's C library;
// rmsnorm.napi.node on macOS and Windows). Unlike node-gyp-build alone it goes on to the next candidate when one is there
// but fails to load, and records every failure. Environment:
//   RMSNORM_BACKEND=js      never load native code (the way out if a native binary misbehaves)
//   RMSNORM_BACKEND=native  native or nothing: a load failure throws, with what was tried
//   RMSNORM_ISA=scalar|avx2|avx512|avx512bf16|neon   cap the kernels (for tests and benchmarks)
//   RMSNORM_BINARY=/path/to/rmsnorm.node  load exactly this file (a sanitizer or debug build, say)
// When the module cannot load and no backend was demanded, the pure-TypeScript fallback runs and a warning
// with code RMSNORM_NATIVE_UNAVAILABLE is emitted once.
//
// CPU support: every object of the addon except the AVX2 and AVX-512 kernels is compiled for the
// architecture's baseline (x86-64 with SSE2; ARMv8-A with Advanced SIMD), and those kernels are called only
// after cpu.cc has checked cpuid and XGETBV, so the module loads and runs on any CPU of its architecture
// (scripts/check-baseline.mjs verifies the prebuilt binaries). A binary for another architecture or C
// library is refused by the dynamic loader, and that error is recorded here, never a crash.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeBinding } from '../binding';

export type Isa = 'avx512bf16' | 'avx512' | 'avx2' | 'neon' | 'scalar' | 'js';

export interface Loaded {
  binding: NativeBinding | null;
  isa: Isa;
  loadError?: Error;
}

/** One place the loader looked: the file (or pattern) and why nothing usable was there. */
export interface LoadAttempt {
  file: string;
  error: string;
}

/** The error of a failed load: code RMSNORM_NATIVE_UNAVAILABLE, with every attempt. */
export interface NativeUnavailableError extends Error {
  code: 'RMSNORM_NATIVE_UNAVAILABLE';
  attempts: LoadAttempt[];
}

const packageRoot = path.join(__dirname, '..');

// The parts of node-gyp-build the loader uses. The tuple and tag helpers are exported by node-gyp-build 4.x
// "for unit tests"; without them the loader falls back to node-gyp-build's single choice.
interface Tuple {
  name: string;
}
interface Tags {
  file: string;
  libc?: string;
}
interface NodeGypBuild {
  (dir: string): unknown;
  resolve(dir: string): string;
  parseTuple?: (name: string) => Tuple | undefined;
  matchTuple?: (platform: string, arch: string) => (t: Tuple | undefined) => t is Tuple;
  compareTuples?: (a: Tuple, b: Tuple) => number;
  parseTags?: (file: string) => Tags | undefined;
  matchTags?: (runtime: string, abi: string) => (t: Tags | undefined) => t is Tags;
  compareTags?: (runtime: string) => (a: Tags, b: Tags) => number;
}

// As node-gyp-build decides them.
const platform = process.env.npm_config_platform || os.platform();
const arch = process.env.npm_config_arch || os.arch();
const runtime = process.versions.electron
  ? 'electron'
  : (process.versions as { nw?: string }).nw
    ? 'node-webkit'
    : 'node';

// The C library of this process, from Node.js's own report (a glibc build of Node.js records the glibc it runs
// on; a musl build has no such field): node-gyp-build alone looks for /etc/alpine-release, which other musl
// distributions lack. LIBC=glibc|musl overrides both, as it does for node-gyp-build.
let libcFound: string | undefined;
function libc(): string {
  if (platform !== 'linux') return '';
  if (libcFound === undefined) {
    const report = process.report?.getReport?.() as { header?: { glibcVersionRuntime?: string } } | undefined;
    const glibc = report?.header?.glibcVersionRuntime;
    libcFound = glibc ? `glibc ${glibc}` : 'musl';
  }
  return libcFound;
}

function libcTag(): string {
  const forced = process.env.LIBC;
  return forced === 'glibc' || forced === 'musl' ? forced : libc().split(' ')[0]!;
}

function describePlatform(): string {
  const c = libc();
  return `${platform}-${arch}${c ? ` (${c})` : ''}, Node.js ${process.version}, N-API ${process.versions.napi}`;
}

function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Where to look, best first: a file to try, or a place with nothing to try and why. */
type Candidate = { file: string; missing?: undefined } | { file: string; missing: string };

function candidates(ngb: NodeGypBuild): Candidate[] {
  const out: Candidate[] = [];
  for (const sub of ['Release', 'Debug']) {
    const dir = path.join(packageRoot, 'build', sub);
    const found = readdir(dir).filter((f) => f.endsWith('.node'));
    out.push(found[0] ? { file: path.join(dir, found[0]) } : { file: path.join(dir, '*.node'), missing: 'none' });
  }

  const prebuilds = path.join(packageRoot, 'prebuilds');
  const wanted = path.join(prebuilds, `${platform}-${arch}`, '*.node');
  if (
    !ngb.parseTuple ||
    !ngb.matchTuple ||
    !ngb.compareTuples ||
    !ngb.parseTags ||
    !ngb.matchTags ||
    !ngb.compareTags
  ) {
    try {
      const chosen = ngb.resolve(packageRoot);
      if (!out.some((c) => c.file === chosen)) out.push({ file: chosen });
    } catch (error) {
      out.push({ file: wanted, missing: (error as Error).message.trim().split('\n')[0]! });
    }
    return out;
  }
  const dirs = readdir(prebuilds);
  const tuple = dirs.map(ngb.parseTuple).filter(ngb.matchTuple(platform, arch)).sort(ngb.compareTuples)[0];
  if (!tuple) {
    out.push({
      file: wanted,
      missing: `no such directory (prebuilt binaries here are for: ${dirs.join(', ') || 'nothing'})`,
    });
    return out;
  }
  const dir = path.join(prebuilds, tuple.name);
  const present = readdir(dir);
  // node-gyp-build's rules for runtime, ABI and Node-API; the C library tag (rmsnorm.napi.glibc.node,
  // rmsnorm.napi.musl.node) by this process's C library.
  const matches = ngb.matchTags(runtime, process.versions.modules);
  const wantLibc = platform === 'linux' ? libcTag() : undefined;
  const winner = present
    .map(ngb.parseTags)
    .filter((t): t is Tags => t !== undefined && matches({ ...t, libc: undefined }) && (!t.libc || t.libc === wantLibc))
    .sort(ngb.compareTags(runtime))[0];
  const needs = `${runtime} ABI ${process.versions.modules} or napi${wantLibc ? `, ${wantLibc}` : ''}`;
  out.push(
    winner
      ? { file: path.join(dir, winner.file) }
      : { file: path.join(dir, '*.node'), missing: `none for ${needs} among: ${present.join(', ') || 'no files'}` },
  );
  return out;
}

// The dynamic loader's message for a binary of another architecture can be as vague as "cannot open shared
// object file"; say what the file is built for when it is an ELF file for another machine.
const ELF_MACHINES: Record<number, string> = { 3: 'ia32', 40: 'arm', 62: 'x64', 183: 'arm64', 243: 'riscv64' };

function elfMismatch(file: string): string {
  try {
    const fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(20);
    fs.readSync(fd, head, 0, 20, 0);
    fs.closeSync(fd);
    if (head.readUInt32BE(0) !== 0x7f454c46) return '';
    const machine = head.readUInt16LE(18);
    const built = ELF_MACHINES[machine] ?? `ELF machine ${machine}`;
    return built === process.arch ? '' : ` (the file is built for ${built}, this process is ${process.arch})`;
  } catch {
    return '';
  }
}

function unavailable(attempts: LoadAttempt[], cause: unknown): NativeUnavailableError {
  // A git clone has its devDependencies (cmake-js, node-addon-api) installed; an installed package fetches
  // them first, without its scripts (prepare would also want the TypeScript sources, which are not shipped).
  const buildHint = fs.existsSync(path.join(packageRoot, '.git'))
    ? 'npm run build'
    : 'npm install --ignore-scripts --no-package-lock && npx cmake-js compile --out build';
  const error = new Error(
    `rmsnorm: no native module could be loaded for ${describePlatform()}. Looked for:\n` +
      attempts.map((a) => `  ${a.file}: ${a.error}\n`).join('') +
      `To build it from source (needs CMake >= 3.15 and a C++17 compiler): cd ${packageRoot} && ${buildHint}`,
    { cause },
  ) as NativeUnavailableError;
  error.code = 'RMSNORM_NATIVE_UNAVAILABLE';
  error.attempts = attempts;
  return error;
}

function nodeGypBuild(): NodeGypBuild {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('node-gyp-build') as NodeGypBuild;
}

function tryLoad(): { binding: NativeBinding; failed: LoadAttempt[] } {
  const explicit = process.env.RMSNORM_BINARY;
  const list: Candidate[] = explicit ? [{ file: path.resolve(explicit) }] : candidates(nodeGypBuild());
  const attempts: LoadAttempt[] = [];
  const failed: LoadAttempt[] = [];
  let cause: unknown;
  for (const c of list) {
    if (c.missing !== undefined) {
      attempts.push({ file: c.file, error: c.missing });
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return { binding: require(c.file) as NativeBinding, failed };
    } catch (error) {
      cause = error;
      const message =
        String((error as Error).message)
          .trim()
          .split('\n')[0]! + elfMismatch(c.file);
      const attempt = { file: explicit ? `${c.file} (RMSNORM_BINARY)` : c.file, error: message };
      attempts.push(attempt);
      failed.push(attempt);
    }
  }
  throw unavailable(attempts, cause);
}

function warn(message: string, code: string): void {
  process.emitWarning(message, { type: 'RmsNormWarning', code });
}

export function load(): Loaded {
  const backend = process.env.RMSNORM_BACKEND ?? '';
  if (backend !== '' && backend !== 'js' && backend !== 'native') {
    warn(
      `RMSNORM_BACKEND must be "js" or "native", received "${backend}"; choosing automatically`,
      'RMSNORM_INVALID_ENV',
    );
  }
  if (backend === 'js') return { binding: null, isa: 'js' };

  let binding: NativeBinding;
  try {
    let failed: LoadAttempt[];
    ({ binding, failed } = tryLoad());
    // A binary that is there but does not load (a broken source build in front of a prebuild, say) is
    // never passed over in silence.
    for (const f of failed)
      warn(`rmsnorm: skipped ${f.file}, which did not load: ${f.error}`, 'RMSNORM_NATIVE_SKIPPED');
  } catch (error) {
    if (backend === 'native') throw error;
    warn(`${(error as Error).message}. Using the pure-TypeScript fallback.`, 'RMSNORM_NATIVE_UNAVAILABLE');
    return { binding: null, isa: 'js', loadError: error as Error };
  }

  binding.setThreads(Math.min(os.availableParallelism(), 1024));
  const cap = process.env.RMSNORM_ISA;
  if (cap) {
    try {
      binding.selectIsa(cap);
    } catch {
      warn(
        `RMSNORM_ISA="${cap}" names no instruction set of ${process.arch} (supported here: ` +
          `${binding.supportedIsas().join(', ')}); using ${binding.isa()}`,
        'RMSNORM_INVALID_ENV',
      );
    }
  }
  return { binding, isa: binding.isa() as Isa };
}
