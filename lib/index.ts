// The public API of rmsnorm. Each op checks its arguments completely (lib/validate.ts), then runs on the
// native kernels when they loaded (lib/loader.ts) or on the pure-TypeScript fallback (lib/fallback.ts).
import type { Kernels } from '../binding';
import { fallback } from './fallback';
import { load, type Isa } from './loader';
import {
  checkArray,
  checkData,
  checkDim,
  checkDisjoint,
  checkKind,
  checkLength,
  checkEps,
  checkOffset,
  checkOptions,
  checkPartial,
  checkRowsMultiple,
  type FloatArray,
  type Kind,
} from './validate';

export type { FloatArray } from './validate';
export type { Isa } from './loader';

/** The array type of every other array argument of a call whose x is T: Float32Array for Float32Array, etc. */
export type SameFloat<T extends FloatArray> = T extends Float32Array ? Float32Array : Float64Array;

export interface RmsNormOptions<A extends FloatArray = FloatArray> {
  /** Row length. Default: weight.length (required when weight is null). */
  dim?: number;
  /** Added to the mean square before the square root. Default 1e-5. Finite, >= 0. */
  eps?: number;
  /** Added after scaling: y = x * rstd * (offset + weight) + bias. Length dim. */
  bias?: A | null;
  /** Added to every weight (Gemma-style `1 + weight`). Default 0; needs a weight. */
  offset?: number;
  /** pRMSNorm: the statistic uses the first max(1, ceil(partial * dim)) values of each row. In (0, 1], default 1. */
  partial?: number;
  /** Output array of x's length. May be x itself (in place); must not otherwise overlap an input. */
  out?: A | null;
  /** Receives each row's 1 / rms (length rows). */
  rstd?: A | null;
}

export interface Backend {
  /** True when the native addon is in use. */
  native: boolean;
  /** The kernels in use: an instruction set of the native addon, or 'js' for the fallback. */
  isa: Isa;
  /** Threads a large call may use. */
  threads: number;
  /** The package version. */
  version: string;
  /** Why the native addon did not load, when it did not. */
  loadError?: Error;
}

const loaded = load();
const kernels: Kernels = loaded.binding ?? fallback;
const native = loaded.binding !== null;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const version = (require('../package.json') as { version: string }).version;

/** Which implementation runs, and why the native one does not if it does not. */
export function backend(): Backend {
  const info: Backend = { native: loaded.binding !== null, isa: loaded.isa, threads: 1, version };
  if (loaded.loadError) info.loadError = loaded.loadError;
  return info;
}

function allocLike(kind: Kind, length: number): FloatArray {
  return kind === 1 ? new Float32Array(length) : new Float64Array(length);
}

/**
 * RMSNorm over each row of x (rows × dim, row-major):
 *   rstd[r] = 1 / sqrt(mean_{i<k} x[r,i]^2 + eps),  y[r,i] = x[r,i] * rstd[r] * (offset + weight[i]) + bias[i]
 * Returns `options.out` when given, else a new array of x's type.
 */
export function rmsNorm<T extends FloatArray>(
  x: T,
  weight: SameFloat<T> | null,
  options?: RmsNormOptions<SameFloat<T>>,
): SameFloat<T>;
export function rmsNorm(x: FloatArray, weight: FloatArray | null, options?: RmsNormOptions): FloatArray {
  const kind = checkData('x', x);
  const o = checkOptions<RmsNormOptions>(options);
  const w = checkKind('weight', weight, kind, true);
  const dim = checkDim(o.dim, w);
  if (w) checkLength('weight', w, dim, 'dim');
  const rows = checkRowsMultiple(x, dim);
  const eps = checkEps(o.eps);
  const bias = checkArray('options.bias', o.bias, kind, dim, 'dim', true);
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const out = checkArray('options.out', o.out, kind, x.length, 'x.length', true);
  const rstd = checkArray('options.rstd', o.rstd, kind, rows, 'rows', true);
  // The native module makes the same overlap checks, with the same messages, from the data pointers it reads
  // anyway; in JavaScript each `.buffer` read costs as much as a whole small call, so only the fallback pays it.
  if (!native) {
    checkDisjoint('options.out', out, 'x', x, true);
    checkDisjoint('options.out', out, 'weight', w, false);
    checkDisjoint('options.out', out, 'options.bias', bias, false);
    checkDisjoint('options.rstd', rstd, 'x', x, false);
    checkDisjoint('options.rstd', rstd, 'options.out', out, false);
    checkDisjoint('options.rstd', rstd, 'weight', w, false);
    checkDisjoint('options.rstd', rstd, 'options.bias', bias, false);
  }

  const y = out ?? allocLike(kind, x.length);
  kernels.rmsNorm(x, w, bias, y, rstd, dim, eps, offset, partial);
  return y;
}
