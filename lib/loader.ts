// The one place that finds the native module. Order: prebuilds/<platform>-<arch>/ (shipped in the npm
// tarball), then build/Release (a source build), both through node-gyp-build. Environment:
//   RMSNORM_BACKEND=js      never load native code
//   RMSNORM_BACKEND=native  native or nothing: a load failure throws, with what was tried
//   RMSNORM_ISA=scalar|avx2|avx512|neon   cap the kernels (for tests and benchmarks)
//   RMSNORM_BINARY=/path/to/rmsnorm.node  load exactly this file (a sanitizer or debug build, say)
// When the module cannot load and no backend was demanded, the pure-TypeScript fallback runs and a warning
// with code RMSNORM_NATIVE_UNAVAILABLE is emitted once.
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeBinding } from '../binding';

export type Isa = 'avx512' | 'avx2' | 'neon' | 'scalar' | 'js';

export interface Loaded {
  binding: NativeBinding | null;
  isa: Isa;
  loadError?: Error;
}

const packageRoot = path.join(__dirname, '..');

function describePlatform(): string {
  const report = process.report?.getReport?.() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const libc = process.platform === 'linux' ? (report?.header?.glibcVersionRuntime ? 'glibc' : 'musl') : '';
  return `${process.platform}-${process.arch}${libc ? ` (${libc})` : ''}, Node.js ${process.version}, N-API ${process.versions.napi}`;
}

function tryLoad(): NativeBinding {
  const explicit = process.env.RMSNORM_BINARY;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return explicit ? (require(path.resolve(explicit)) as NativeBinding) : nodeGypBuild(packageRoot);
  } catch (cause) {
    const tried = explicit
      ? `Tried RMSNORM_BINARY=${explicit}. `
      : `Looked in ${path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`)} and ` +
        `${path.join(packageRoot, 'build', 'Release')}. `;
    const error = new Error(
      `rmsnorm: no native module could be loaded for ${describePlatform()}. ` +
        tried +
        `To build from source: cd ${packageRoot} && npx cmake-js compile --out build ` +
        `(needs cmake >= 3.15 and a C++17 compiler). Cause: ${(cause as Error).message}`,
      { cause },
    );
    (error as Error & { code: string }).code = 'RMSNORM_NATIVE_UNAVAILABLE';
    throw error;
  }
}

function warn(message: string, code: string): void {
  process.emitWarning(message, { type: 'RmsNormWarning', code });
}

export function load(): Loaded {
  const backend = process.env.RMSNORM_BACKEND ?? '';
  if (backend !== '' && backend !== 'js' && backend !== 'native') {
    warn(`RMSNORM_BACKEND must be "js" or "native", received "${backend}"; choosing automatically`, 'RMSNORM_INVALID_ENV');
  }
  if (backend === 'js') return { binding: null, isa: 'js' };

  let binding: NativeBinding;
  try {
    binding = tryLoad();
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
