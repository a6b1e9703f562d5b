// Which implementation runs: the native addon when it loads (lib/loader.ts), else the pure-TypeScript fallback
// (lib/fallback.ts), and the settings of the one in use.
import type { AsyncKernels, Calibration, Converter, Kernels, NativeBinding } from '../binding';
import { calibrationFallback, convertFallback, fallback, fallbackAsync } from './fallback';
import { load } from './loader';
import type { Backend } from './types';
import { invalidType, outOfRange } from './validate';

const loaded = load();
/** The native module, or null when the fallback runs. */
export const binding: NativeBinding | null = loaded.binding;
export const kernels: Kernels = binding ?? fallback;
export const asyncKernels: AsyncKernels = binding ?? fallbackAsync;
export const converter: Converter = binding ?? convertFallback;
/**
 * The calibration entry of the implementation in use: `noop(...args)` does nothing, so its time with an op's
 * arguments is the floor under that op's call (the benchmark's reference). Not part of the public API.
 */
export const calibration: Calibration = binding ?? calibrationFallback;
/** True when the native module runs: it then checks overlaps itself (see lib/ops.ts). */
export const native = binding !== null;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const version = (require('../package.json') as { version: string }).version;

/** Which implementation runs, and why the native one does not if it does not. */
export function backend(): Backend {
  const info: Backend = { native, isa: loaded.isa, threads: binding ? binding.threads() : 1, version };
  if (loaded.loadError) info.loadError = loaded.loadError;
  return info;
}

/**
 * The most threads one large call may use (default: the machine's available parallelism). A call uses more
 * than one only when its work outweighs the hand-off to another thread, as measured once on this machine
 * (docs/performance.md). Results are bitwise the same for every setting. The fallback runs on one thread
 * whatever the setting.
 */
export function setThreads(n: number): void {
  if (typeof n !== 'number') throw invalidType('n', 'of type number', n);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw outOfRange('n', 'be an integer from 1 to 1024', String(n));
  binding?.setThreads(n);
}
