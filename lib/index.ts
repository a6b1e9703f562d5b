// The public API of rmsnorm. Each op checks its arguments completely (lib/validate.ts), then runs on the
// native kernels when they loaded (lib/loader.ts) or on the pure-TypeScript fallback (lib/fallback.ts).
import type { AsyncKernels, Kernels } from '../binding';
import { fallback, fallbackAsync } from './fallback';
import { load, type Isa } from './loader';
import {
  checkArray,
  checkBoolean,
  checkData,
  checkDim,
  checkEps,
  checkKind,
  checkLength,
  checkOffset,
  checkOptions,
  checkOverlaps,
  checkPartial,
  checkRowsMultiple,
  invalidType,
  outOfRange,
  type FloatArray,
  type Kind,
} from './validate';

export type { FloatArray } from './validate';
export type { Isa } from './loader';
export { RMSNorm, LayerNorm, type RMSNormModuleOptions, type LayerNormModuleOptions, type DType } from './modules';

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

export interface LayerNormOptions<A extends FloatArray = FloatArray> {
  /** Row length. Default: weight.length, else bias.length. */
  dim?: number;
  /** Added to the variance before the square root. Default 1e-5. Finite, >= 0. */
  eps?: number;
  /** Output array of x's length. May be x itself (in place). */
  out?: A | null;
  /** Receives each row's mean (length rows). */
  mean?: A | null;
  /** Receives each row's 1 / sqrt(var + eps) (length rows). */
  rstd?: A | null;
}

export interface RmsNormBackwardOptions<A extends FloatArray = FloatArray> {
  dim?: number;
  eps?: number;
  offset?: number;
  partial?: number;
  /** rstd from the forward pass (its `rstd` option); recomputed from x when absent. */
  rstd?: A | null;
  /** Receives dL/dx (length x.length); may be dy itself. */
  dx?: A | null;
  /** Receives dL/dweight (length dim). */
  dweight?: A | null;
  /** Receives dL/dbias (length dim). */
  dbias?: A | null;
  /** Add into dweight/dbias instead of overwriting them. Default false. */
  accumulate?: boolean;
}

export interface LayerNormBackwardOptions<A extends FloatArray = FloatArray> {
  dim?: number;
  eps?: number;
  /** mean and rstd from the forward pass; both are recomputed from x unless both are given. */
  mean?: A | null;
  rstd?: A | null;
  dx?: A | null;
  dweight?: A | null;
  dbias?: A | null;
  accumulate?: boolean;
}

export interface Gradients<A extends FloatArray> {
  dx: A;
  /** null when weight is null and no dweight buffer was given. */
  dweight: A | null;
  dbias: A;
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
const binding = loaded.binding;
const kernels: Kernels = binding ?? fallback;
const asyncKernels: AsyncKernels = binding ?? fallbackAsync;
const native = binding !== null;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const version = (require('../package.json') as { version: string }).version;

/** Which implementation runs, and why the native one does not if it does not. */
export function backend(): Backend {
  const info: Backend = { native, isa: loaded.isa, threads: binding ? binding.threads() : 1, version };
  if (loaded.loadError) info.loadError = loaded.loadError;
  return info;
}

/**
 * The most threads one large call may use (default: the machine's available parallelism). Calls below about
 * 1M elements always run on the calling thread. Results are bitwise the same for every setting. The
 * fallback runs on one thread whatever the setting.
 */
export function setThreads(n: number): void {
  if (typeof n !== 'number') throw invalidType('n', 'of type number', n);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw outOfRange('n', 'be an integer from 1 to 1024', String(n));
  binding?.setThreads(n);
}

/**
 * Runs a plan (validation plus the start of the work) so that a bad argument rejects the promise with the
 * same error the sync form throws, and resolves with the plan's result once the work settles.
 */
function settle<R>(start: () => [Promise<void>, R]): Promise<R> {
  try {
    const [done, result] = start();
    return done.then(() => result);
  } catch (error) {
    return Promise.reject(error);
  }
}

function allocLike(kind: Kind, length: number): FloatArray {
  return kind === 1 ? new Float32Array(length) : new Float64Array(length);
}

// Overlap checks (`if (!native) checkOverlaps(...)` below): the native module makes them itself, with the same
// messages, from the data pointers it reads anyway; in JavaScript each `.buffer` read costs as much as a whole
// small call, so only the fallback pays for them.

/**
 * RMSNorm over each row of x (rows × dim, row-major):
 *   rstd[r] = 1 / sqrt(mean_{i<k} x[r,i]^2 + eps),  y[r,i] = x[r,i] * rstd[r] * (offset + weight[i]) + bias[i]
 * Returns `options.out` when given, else a new array of x's type.
 */
export function rmsNorm<T extends FloatArray>(x: T, weight: SameFloat<T> | null, options?: RmsNormOptions<SameFloat<T>>): SameFloat<T>;
export function rmsNorm(x: FloatArray, weight: FloatArray | null, options?: RmsNormOptions): FloatArray {
  const p = planRmsNorm(x, weight, options);
  kernels.rmsNorm(p.x, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial);
  return p.y;
}

/** rmsNorm off the JavaScript thread; resolves to the same array. Do not touch the arrays until it settles. */
export function rmsNormAsync<T extends FloatArray>(x: T, weight: SameFloat<T> | null, options?: RmsNormOptions<SameFloat<T>>): Promise<SameFloat<T>>;
export function rmsNormAsync(x: FloatArray, weight: FloatArray | null, options?: RmsNormOptions): Promise<FloatArray> {
  return settle(() => {
    const p = planRmsNorm(x, weight, options);
    return [asyncKernels.rmsNormAsync(p.x, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial), p.y];
  });
}

function planRmsNorm(x: FloatArray, weight: FloatArray | null, options: RmsNormOptions | undefined) {
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
  if (!native) {
    checkOverlaps([
      { name: 'x', a: x, output: false },
      { name: 'weight', a: w, output: false },
      { name: 'options.bias', a: bias, output: false },
      { name: 'options.out', a: out, output: true, sameOk: 0 },
      { name: 'options.rstd', a: rstd, output: true },
    ]);
  }
  return { x, w, bias, y: out ?? allocLike(kind, x.length), rstd, dim, eps, offset, partial };
}

/**
 * LayerNorm over each row of x: y = (x - mean) * rstd * weight + bias, with the population variance and
 * rstd = 1 / sqrt(var + eps). Returns `options.out` when given, else a new array of x's type.
 */
export function layerNorm<T extends FloatArray>(
  x: T,
  weight: SameFloat<T> | null,
  bias: SameFloat<T> | null,
  options?: LayerNormOptions<SameFloat<T>>,
): SameFloat<T>;
export function layerNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, options?: LayerNormOptions): FloatArray {
  const p = planLayerNorm(x, weight, bias, options);
  kernels.layerNorm(p.x, p.w, p.b, p.y, p.mean, p.rstd, p.dim, p.eps);
  return p.y;
}

/** layerNorm off the JavaScript thread; resolves to the same array. */
export function layerNormAsync<T extends FloatArray>(
  x: T,
  weight: SameFloat<T> | null,
  bias: SameFloat<T> | null,
  options?: LayerNormOptions<SameFloat<T>>,
): Promise<SameFloat<T>>;
export function layerNormAsync(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, options?: LayerNormOptions): Promise<FloatArray> {
  return settle(() => {
    const p = planLayerNorm(x, weight, bias, options);
    return [asyncKernels.layerNormAsync(p.x, p.w, p.b, p.y, p.mean, p.rstd, p.dim, p.eps), p.y];
  });
}

function planLayerNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, options: LayerNormOptions | undefined) {
  const kind = checkData('x', x);
  const o = checkOptions<LayerNormOptions>(options);
  const w = checkKind('weight', weight, kind, true);
  const b = checkKind('bias', bias, kind, true);
  const dim = checkDim(o.dim, w ?? b, w ? 'weight' : 'bias');
  if (w) checkLength('weight', w, dim, 'dim');
  if (b) checkLength('bias', b, dim, 'dim');
  const rows = checkRowsMultiple(x, dim);
  const eps = checkEps(o.eps);
  const out = checkArray('options.out', o.out, kind, x.length, 'x.length', true);
  const mean = checkArray('options.mean', o.mean, kind, rows, 'rows', true);
  const rstd = checkArray('options.rstd', o.rstd, kind, rows, 'rows', true);
  if (!native) {
    checkOverlaps([
      { name: 'x', a: x, output: false },
      { name: 'weight', a: w, output: false },
      { name: 'bias', a: b, output: false },
      { name: 'options.out', a: out, output: true, sameOk: 0 },
      { name: 'options.mean', a: mean, output: true },
      { name: 'options.rstd', a: rstd, output: true },
    ]);
  }
  return { x, w, b, y: out ?? allocLike(kind, x.length), mean, rstd, dim, eps };
}

/**
 * The pre-norm decoder block's fused step: residual += x (in place, rounded to the element type), then
 * out = rmsNorm(residual, weight, options), in one pass over memory. `out` may be x (FlashInfer's
 * fused_add_rmsnorm convention); it must not be residual. Same options as rmsNorm.
 */
export function addRmsNorm<T extends FloatArray>(
  x: T,
  residual: SameFloat<T>,
  weight: SameFloat<T> | null,
  options?: RmsNormOptions<SameFloat<T>>,
): SameFloat<T>;
export function addRmsNorm(x: FloatArray, residual: FloatArray, weight: FloatArray | null, options?: RmsNormOptions): FloatArray {
  const p = planAddRmsNorm(x, residual, weight, options);
  kernels.addRmsNorm(p.x, p.res, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial);
  return p.y;
}

/** addRmsNorm off the JavaScript thread; resolves to the output array. */
export function addRmsNormAsync<T extends FloatArray>(
  x: T,
  residual: SameFloat<T>,
  weight: SameFloat<T> | null,
  options?: RmsNormOptions<SameFloat<T>>,
): Promise<SameFloat<T>>;
export function addRmsNormAsync(x: FloatArray, residual: FloatArray, weight: FloatArray | null, options?: RmsNormOptions): Promise<FloatArray> {
  return settle(() => {
    const p = planAddRmsNorm(x, residual, weight, options);
    return [asyncKernels.addRmsNormAsync(p.x, p.res, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial), p.y];
  });
}

function planAddRmsNorm(x: FloatArray, residual: FloatArray, weight: FloatArray | null, options: RmsNormOptions | undefined) {
  const kind = checkData('x', x);
  const o = checkOptions<RmsNormOptions>(options);
  const res = checkKind('residual', residual, kind, false)!;
  const w = checkKind('weight', weight, kind, true);
  const dim = checkDim(o.dim, w);
  if (w) checkLength('weight', w, dim, 'dim');
  const rows = checkRowsMultiple(x, dim);
  checkLength('residual', res, x.length, 'x.length');
  const eps = checkEps(o.eps);
  const bias = checkArray('options.bias', o.bias, kind, dim, 'dim', true);
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const out = checkArray('options.out', o.out, kind, x.length, 'x.length', true);
  const rstd = checkArray('options.rstd', o.rstd, kind, rows, 'rows', true);
  if (!native) {
    checkOverlaps([
      { name: 'x', a: x, output: false },
      { name: 'residual', a: res, output: true },
      { name: 'weight', a: w, output: false },
      { name: 'options.bias', a: bias, output: false },
      { name: 'options.out', a: out, output: true, sameOk: 0 },
      { name: 'options.rstd', a: rstd, output: true },
    ]);
  }
  return { x, res, w, bias, y: out ?? allocLike(kind, x.length), rstd, dim, eps, offset, partial };
}

/** Checks shared by both backward passes; returns what they have in common. */
function checkBackwardCommon(dy: FloatArray, x: FloatArray, weight: FloatArray | null, o: RmsNormBackwardOptions | LayerNormBackwardOptions) {
  const kind = checkData('dy', dy);
  const xs = checkKind('x', x, kind, false)!;
  const w = checkKind('weight', weight, kind, true);
  const dim = checkDim(o.dim, w);
  if (w) checkLength('weight', w, dim, 'dim');
  const rows = checkRowsMultiple(dy, dim, 'dy');
  checkLength('x', xs, dy.length, 'dy.length');
  const eps = checkEps(o.eps);
  return { kind, xs, w, dim, rows, eps };
}

function checkGradOutputs(o: RmsNormBackwardOptions | LayerNormBackwardOptions, kind: Kind, n: number, dim: number) {
  return {
    dx: checkArray('options.dx', o.dx, kind, n, 'dy.length', true),
    dweight: checkArray('options.dweight', o.dweight, kind, dim, 'dim', true),
    dbias: checkArray('options.dbias', o.dbias, kind, dim, 'dim', true),
    accumulate: checkBoolean('options.accumulate', o.accumulate),
  };
}

/**
 * Gradients of rmsNorm with respect to x, weight and bias, given dL/dy. Pass the forward pass's `rstd` to
 * skip recomputing it. With `accumulate`, dweight/dbias are added to rather than overwritten (for gradient
 * accumulation over micro-batches).
 */
export function rmsNormBackward<T extends FloatArray>(
  dy: T,
  x: SameFloat<T>,
  weight: SameFloat<T> | null,
  options?: RmsNormBackwardOptions<SameFloat<T>>,
): Gradients<SameFloat<T>>;
export function rmsNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, options?: RmsNormBackwardOptions): Gradients<FloatArray> {
  const p = planRmsNormBackward(dy, x, weight, options);
  kernels.rmsNormBackward(dy, p.xs, p.w, p.rstd, p.g.dx, p.g.dweight, p.g.dbias, p.dim, p.eps, p.offset, p.partial, p.accumulate);
  return p.g;
}

/** rmsNormBackward off the JavaScript thread. */
export function rmsNormBackwardAsync<T extends FloatArray>(
  dy: T,
  x: SameFloat<T>,
  weight: SameFloat<T> | null,
  options?: RmsNormBackwardOptions<SameFloat<T>>,
): Promise<Gradients<SameFloat<T>>>;
export function rmsNormBackwardAsync(dy: FloatArray, x: FloatArray, weight: FloatArray | null, options?: RmsNormBackwardOptions): Promise<Gradients<FloatArray>> {
  return settle(() => {
    const p = planRmsNormBackward(dy, x, weight, options);
    const done = asyncKernels.rmsNormBackwardAsync(dy, p.xs, p.w, p.rstd, p.g.dx, p.g.dweight, p.g.dbias, p.dim, p.eps, p.offset, p.partial, p.accumulate);
    return [done, p.g];
  });
}

function planRmsNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, options: RmsNormBackwardOptions | undefined) {
  const o = checkOptions<RmsNormBackwardOptions>(options);
  const { kind, xs, w, dim, rows, eps } = checkBackwardCommon(dy, x, weight, o);
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const rstd = checkArray('options.rstd', o.rstd, kind, rows, 'rows', true);
  const g = checkGradOutputs(o, kind, dy.length, dim);
  if (!native) {
    checkOverlaps([
      { name: 'dy', a: dy, output: false },
      { name: 'x', a: xs, output: false },
      { name: 'weight', a: w, output: false },
      { name: 'options.rstd', a: rstd, output: false },
      { name: 'options.dx', a: g.dx, output: true, sameOk: 0 },
      { name: 'options.dweight', a: g.dweight, output: true },
      { name: 'options.dbias', a: g.dbias, output: true },
    ]);
  }
  return { xs, w, rstd, dim, eps, offset, partial, accumulate: g.accumulate, g: allocGrads(g, kind, dy.length, dim, w) };
}

/**
 * Gradients of layerNorm with respect to x, weight and bias, given dL/dy. Pass the forward pass's `mean` and
 * `rstd` to skip recomputing them.
 */
export function layerNormBackward<T extends FloatArray>(
  dy: T,
  x: SameFloat<T>,
  weight: SameFloat<T> | null,
  options?: LayerNormBackwardOptions<SameFloat<T>>,
): Gradients<SameFloat<T>>;
export function layerNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, options?: LayerNormBackwardOptions): Gradients<FloatArray> {
  const p = planLayerNormBackward(dy, x, weight, options);
  kernels.layerNormBackward(dy, p.xs, p.w, p.mean, p.rstd, p.g.dx, p.g.dweight, p.g.dbias, p.dim, p.eps, p.accumulate);
  return p.g;
}

/** layerNormBackward off the JavaScript thread. */
export function layerNormBackwardAsync<T extends FloatArray>(
  dy: T,
  x: SameFloat<T>,
  weight: SameFloat<T> | null,
  options?: LayerNormBackwardOptions<SameFloat<T>>,
): Promise<Gradients<SameFloat<T>>>;
export function layerNormBackwardAsync(dy: FloatArray, x: FloatArray, weight: FloatArray | null, options?: LayerNormBackwardOptions): Promise<Gradients<FloatArray>> {
  return settle(() => {
    const p = planLayerNormBackward(dy, x, weight, options);
    const done = asyncKernels.layerNormBackwardAsync(dy, p.xs, p.w, p.mean, p.rstd, p.g.dx, p.g.dweight, p.g.dbias, p.dim, p.eps, p.accumulate);
    return [done, p.g];
  });
}

function planLayerNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, options: LayerNormBackwardOptions | undefined) {
  const o = checkOptions<LayerNormBackwardOptions>(options);
  const { kind, xs, w, dim, rows, eps } = checkBackwardCommon(dy, x, weight, o);
  const mean = checkArray('options.mean', o.mean, kind, rows, 'rows', true);
  const rstd = checkArray('options.rstd', o.rstd, kind, rows, 'rows', true);
  const g = checkGradOutputs(o, kind, dy.length, dim);
  if (!native) {
    checkOverlaps([
      { name: 'dy', a: dy, output: false },
      { name: 'x', a: xs, output: false },
      { name: 'weight', a: w, output: false },
      { name: 'options.mean', a: mean, output: false },
      { name: 'options.rstd', a: rstd, output: false },
      { name: 'options.dx', a: g.dx, output: true, sameOk: 0 },
      { name: 'options.dweight', a: g.dweight, output: true },
      { name: 'options.dbias', a: g.dbias, output: true },
    ]);
  }
  return { xs, w, mean, rstd, dim, eps, accumulate: g.accumulate, g: allocGrads(g, kind, dy.length, dim, w) };
}

function allocGrads(
  g: { dx: FloatArray | null; dweight: FloatArray | null; dbias: FloatArray | null },
  kind: Kind,
  n: number,
  dim: number,
  w: FloatArray | null,
): Gradients<FloatArray> {
  return {
    dx: g.dx ?? allocLike(kind, n),
    dweight: g.dweight ?? (w ? allocLike(kind, dim) : null),
    dbias: g.dbias ?? allocLike(kind, dim),
  };
}
