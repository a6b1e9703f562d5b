// The public API of rmsnorm. Each op checks its arguments completely (lib/validate.ts), then runs on the
// native kernels when they loaded (lib/loader.ts) or on the pure-TypeScript fallback (lib/fallback.ts).
import type { AsyncKernels, Kernels } from '../binding';
import { convertFallback, fallback, fallbackAsync } from './fallback';
import { load, type Isa } from './loader';
import { allocateWith, type AllocateDType } from './memory';
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
  checkParam,
  checkPartial,
  checkRowsMultiple,
  checkTypes,
  invalidType,
  kindOf,
  outOfRange,
  type CallTypes,
  type DataArray,
  type FloatArray,
  type Kind,
} from './validate';

export type { DataArray, FloatArray } from './validate';
export type { Isa } from './loader';
export { RMSNorm, LayerNorm, type RMSNormModuleOptions, type LayerNormModuleOptions, type DType } from './modules';

/** Storage of half-precision data in a Uint16Array: bfloat16 or IEEE float16 bits. */
export type HalfDType = 'bfloat16' | 'float16';
/**
 * 'fp32' (default): everything in float32, one rounding to the storage type at the end. 'llama': x * rstd is
 * rounded to the storage type, then multiplied by the weight and rounded again (Hugging Face Llama/Granite).
 */
export type CastMode = 'fp32' | 'llama';

/** Data-shaped arrays (out, residual, dy, dx) of a call whose x is D: D's own array type. */
export type Data<D extends DataArray> = D extends Uint16Array ? Uint16Array : D extends Float32Array ? Float32Array : Float64Array;
/** Parameters (weight, bias): x's type; for half data Float32Array or Uint16Array. */
export type Param<D extends DataArray> = D extends Uint16Array ? Float32Array | Uint16Array : Data<D>;
/** Statistics (rstd, mean) and parameter gradients (dweight, dbias): Float32Array for half data. */
export type Stat<D extends DataArray> = D extends Uint16Array ? Float32Array : Data<D>;
/** The array type of every other array argument of a call whose x is T: Float32Array for Float32Array, etc. */
export type SameFloat<T extends FloatArray> = Data<T>;

/** Options every op takes for half data: dtype is required with a Uint16Array. */
export interface PrecisionOptions {
  dtype?: HalfDType;
  castMode?: CastMode;
}

/** The trailing options parameter: required, with a dtype, for Uint16Array data. */
type OptionsArg<D extends DataArray, O> = D extends Uint16Array ? [options: O & { dtype: HalfDType }] : [options?: O];

export interface RmsNormOptions<D extends DataArray = DataArray> extends PrecisionOptions {
  /** Row length. Default: weight.length (required when weight is null). */
  dim?: number;
  /** Added to the mean square before the square root. Default 1e-5. Finite, >= 0. */
  eps?: number;
  /** Added after scaling: y = x * rstd * (offset + weight) + bias. Length dim. */
  bias?: Param<D> | null;
  /** Added to every weight (Gemma-style `1 + weight`). Default 0; needs a weight. */
  offset?: number;
  /** pRMSNorm: the statistic uses the first max(1, ceil(partial * dim)) values of each row. In (0, 1], default 1. */
  partial?: number;
  /** Output array of x's length. May be x itself (in place); must not otherwise overlap an input. */
  out?: Data<D> | null;
  /** Receives each row's 1 / rms (length rows). */
  rstd?: Stat<D> | null;
}

export interface LayerNormOptions<D extends DataArray = DataArray> extends PrecisionOptions {
  /** Row length. Default: weight.length, else bias.length. */
  dim?: number;
  /** Added to the variance before the square root. Default 1e-5. Finite, >= 0. */
  eps?: number;
  /** Output array of x's length. May be x itself (in place). */
  out?: Data<D> | null;
  /** Receives each row's mean (length rows). */
  mean?: Stat<D> | null;
  /** Receives each row's 1 / sqrt(var + eps) (length rows). */
  rstd?: Stat<D> | null;
}

export interface RmsNormBackwardOptions<D extends DataArray = DataArray> extends PrecisionOptions {
  dim?: number;
  eps?: number;
  offset?: number;
  partial?: number;
  /** rstd from the forward pass (its `rstd` option); recomputed from x when absent. */
  rstd?: Stat<D> | null;
  /** Receives dL/dx (length x.length); may be dy itself. */
  dx?: Data<D> | null;
  /** Receives dL/dweight (length dim). */
  dweight?: Stat<D> | null;
  /** Receives dL/dbias (length dim). */
  dbias?: Stat<D> | null;
  /** Add into dweight/dbias instead of overwriting them. Default false. */
  accumulate?: boolean;
}

export interface LayerNormBackwardOptions<D extends DataArray = DataArray> extends PrecisionOptions {
  dim?: number;
  eps?: number;
  /** mean and rstd from the forward pass; both are recomputed from x unless both are given. */
  mean?: Stat<D> | null;
  rstd?: Stat<D> | null;
  dx?: Data<D> | null;
  dweight?: Stat<D> | null;
  dbias?: Stat<D> | null;
  accumulate?: boolean;
}

export interface Gradients<D extends DataArray> {
  dx: Data<D>;
  /** null when weight is null and no dweight buffer was given. */
  dweight: Stat<D> | null;
  dbias: Stat<D>;
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

// [async memory] allocate(): arrays whose memory async calls use directly (lib/memory.ts, docs/async.md).
export type { AllocateDType } from './memory';

/**
 * A zero-filled array of `length` elements over memory the package owns: async calls use it directly (no
 * copy) and keep it alive until they settle, whatever happens to the array meanwhile. Other ordinary arrays
 * are copied in and out by async calls; SharedArrayBuffer memory is also used directly. See docs/async.md.
 */
export function allocate(dtype: 'float32', length: number): Float32Array;
export function allocate(dtype: 'float64', length: number): Float64Array;
export function allocate(dtype: 'bfloat16' | 'float16', length: number): Uint16Array;
export function allocate(dtype: AllocateDType, length: number): DataArray;
export function allocate(dtype: AllocateDType, length: number): DataArray {
  return allocateWith(binding, dtype, length);
}

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

function allocLike(kind: Kind, length: number): DataArray {
  return kind === 1 ? new Float32Array(length) : kind === 2 ? new Float64Array(length) : new Uint16Array(length);
}

// Overlap checks (`if (!native) checkOverlaps(...)` below): the native module makes them itself, with the same
// messages, from the data pointers it reads anyway; in JavaScript each `.buffer` read costs as much as a whole
// small call, so only the fallback pays for them.

// Overload implementations take `options?: XOptions<any>`: the public overloads above each carry the precise
// element types, which TypeScript cannot relate to one implementation signature through their conditional types.

// ---------------------------------------------------------------------------------------------------------
// rmsNorm

/**
 * RMSNorm over each row of x (rows × dim, row-major):
 *   rstd[r] = 1 / sqrt(mean_{i<k} x[r,i]^2 + eps),  y[r,i] = x[r,i] * rstd[r] * (offset + weight[i]) + bias[i]
 * Returns `options.out` when given, else a new array of x's type.
 */
export function rmsNorm<D extends DataArray>(x: D, weight: Param<D> | null, ...options: OptionsArg<D, RmsNormOptions<D>>): Data<D>;
export function rmsNorm(x: DataArray, weight: DataArray | null, options?: RmsNormOptions<any>): DataArray {
  const p = planRmsNorm(x, weight, options);
  kernels.rmsNorm(p.x, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial, p.t.dtype, p.t.cast);
  return p.y;
}

/** rmsNorm off the JavaScript thread; resolves to the same array. Do not touch the arrays until it settles. */
export function rmsNormAsync<D extends DataArray>(x: D, weight: Param<D> | null, ...options: OptionsArg<D, RmsNormOptions<D>>): Promise<Data<D>>;
export function rmsNormAsync(x: DataArray, weight: DataArray | null, options?: RmsNormOptions<any>): Promise<DataArray> {
  return settle(() => {
    const p = planRmsNorm(x, weight, options);
    return [asyncKernels.rmsNormAsync(p.x, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial, p.t.dtype, p.t.cast), p.y];
  });
}

function planRmsNorm(x: DataArray, weight: DataArray | null, options: RmsNormOptions | undefined) {
  const kind = checkData('x', x);
  const o = checkOptions<RmsNormOptions>(options);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const w = checkParam('weight', weight, t, true);
  const dim = checkDim(o.dim, w);
  if (w) checkLength('weight', w, dim, 'dim');
  const rows = checkRowsMultiple(x, dim);
  const eps = checkEps(o.eps);
  const bias = checkParam('options.bias', o.bias, t, true);
  if (bias) checkLength('options.bias', bias, dim, 'dim');
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const out = checkArray('options.out', o.out, kind, x.length, 'x.length', true);
  const rstd = checkArray('options.rstd', o.rstd, t.stat, rows, 'rows', true);
  if (!native) {
    checkOverlaps([
      { name: 'x', a: x, output: false },
      { name: 'weight', a: w, output: false },
      { name: 'options.bias', a: bias, output: false },
      { name: 'options.out', a: out, output: true, sameOk: 0 },
      { name: 'options.rstd', a: rstd, output: true },
    ]);
  }
  return { x, w, bias, y: out ?? allocLike(kind, x.length), rstd, dim, eps, offset, partial, t };
}

// ---------------------------------------------------------------------------------------------------------
// layerNorm

/**
 * LayerNorm over each row of x: y = (x - mean) * rstd * weight + bias, with the population variance and
 * rstd = 1 / sqrt(var + eps). Returns `options.out` when given, else a new array of x's type.
 */
export function layerNorm<D extends DataArray>(
  x: D,
  weight: Param<D> | null,
  bias: Param<D> | null,
  ...options: OptionsArg<D, LayerNormOptions<D>>
): Data<D>;
export function layerNorm(x: DataArray, weight: DataArray | null, bias: DataArray | null, options?: LayerNormOptions<any>): DataArray {
  const p = planLayerNorm(x, weight, bias, options);
  kernels.layerNorm(p.x, p.w, p.b, p.y, p.mean, p.rstd, p.dim, p.eps, p.t.dtype, p.t.cast);
  return p.y;
}

/** layerNorm off the JavaScript thread; resolves to the same array. */
export function layerNormAsync<D extends DataArray>(
  x: D,
  weight: Param<D> | null,
  bias: Param<D> | null,
  ...options: OptionsArg<D, LayerNormOptions<D>>
): Promise<Data<D>>;
export function layerNormAsync(x: DataArray, weight: DataArray | null, bias: DataArray | null, options?: LayerNormOptions<any>): Promise<DataArray> {
  return settle(() => {
    const p = planLayerNorm(x, weight, bias, options);
    return [asyncKernels.layerNormAsync(p.x, p.w, p.b, p.y, p.mean, p.rstd, p.dim, p.eps, p.t.dtype, p.t.cast), p.y];
  });
}

function planLayerNorm(x: DataArray, weight: DataArray | null, bias: DataArray | null, options: LayerNormOptions | undefined) {
  const kind = checkData('x', x);
  const o = checkOptions<LayerNormOptions>(options);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const w = checkParam('weight', weight, t, true);
  const b = checkParam('bias', bias, t, true);
  const dim = checkDim(o.dim, w ?? b, w ? 'weight' : 'bias');
  if (w) checkLength('weight', w, dim, 'dim');
  if (b) checkLength('bias', b, dim, 'dim');
  const rows = checkRowsMultiple(x, dim);
  const eps = checkEps(o.eps);
  const out = checkArray('options.out', o.out, kind, x.length, 'x.length', true);
  const mean = checkArray('options.mean', o.mean, t.stat, rows, 'rows', true);
  const rstd = checkArray('options.rstd', o.rstd, t.stat, rows, 'rows', true);
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
  return { x, w, b, y: out ?? allocLike(kind, x.length), mean, rstd, dim, eps, t };
}

// ---------------------------------------------------------------------------------------------------------
// addRmsNorm

/**
 * The pre-norm decoder block's fused step: residual += x (in place, rounded to the element type), then
 * out = rmsNorm(residual, weight, options), in one pass over memory. `out` may be x (FlashInfer's
 * fused_add_rmsnorm convention); it must not be residual. Same options as rmsNorm.
 */
export function addRmsNorm<D extends DataArray>(
  x: D,
  residual: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormOptions<D>>
): Data<D>;
export function addRmsNorm(x: DataArray, residual: DataArray, weight: DataArray | null, options?: RmsNormOptions<any>): DataArray {
  const p = planAddRmsNorm(x, residual, weight, options);
  kernels.addRmsNorm(p.x, p.res, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial, p.t.dtype, p.t.cast);
  return p.y;
}

/** addRmsNorm off the JavaScript thread; resolves to the output array. */
export function addRmsNormAsync<D extends DataArray>(
  x: D,
  residual: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormOptions<D>>
): Promise<Data<D>>;
export function addRmsNormAsync(x: DataArray, residual: DataArray, weight: DataArray | null, options?: RmsNormOptions<any>): Promise<DataArray> {
  return settle(() => {
    const p = planAddRmsNorm(x, residual, weight, options);
    const done = asyncKernels.addRmsNormAsync(p.x, p.res, p.w, p.bias, p.y, p.rstd, p.dim, p.eps, p.offset, p.partial, p.t.dtype, p.t.cast);
    return [done, p.y];
  });
}

function planAddRmsNorm(x: DataArray, residual: DataArray, weight: DataArray | null, options: RmsNormOptions | undefined) {
  const kind = checkData('x', x);
  const o = checkOptions<RmsNormOptions>(options);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const res = checkKind('residual', residual, kind, false)!;
  const w = checkParam('weight', weight, t, true);
  const dim = checkDim(o.dim, w);
  if (w) checkLength('weight', w, dim, 'dim');
  const rows = checkRowsMultiple(x, dim);
  checkLength('residual', res, x.length, 'x.length');
  const eps = checkEps(o.eps);
  const bias = checkParam('options.bias', o.bias, t, true);
  if (bias) checkLength('options.bias', bias, dim, 'dim');
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const out = checkArray('options.out', o.out, kind, x.length, 'x.length', true);
  const rstd = checkArray('options.rstd', o.rstd, t.stat, rows, 'rows', true);
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
  return { x, res, w, bias, y: out ?? allocLike(kind, x.length), rstd, dim, eps, offset, partial, t };
}

// ---------------------------------------------------------------------------------------------------------
// Backward passes

/** Checks shared by both backward passes; returns what they have in common. */
function checkBackwardCommon(dy: DataArray, x: DataArray, weight: DataArray | null, o: RmsNormBackwardOptions | LayerNormBackwardOptions) {
  const kind = checkData('dy', dy);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const xs = checkKind('x', x, kind, false)!;
  const w = checkParam('weight', weight, t, true);
  const dim = checkDim(o.dim, w);
  if (w) checkLength('weight', w, dim, 'dim');
  const rows = checkRowsMultiple(dy, dim, 'dy');
  checkLength('x', xs, dy.length, 'dy.length');
  const eps = checkEps(o.eps);
  return { t, xs, w, dim, rows, eps };
}

function checkGradOutputs(o: RmsNormBackwardOptions | LayerNormBackwardOptions, t: CallTypes, n: number, dim: number) {
  return {
    dx: checkArray('options.dx', o.dx, t.data, n, 'dy.length', true),
    dweight: checkArray('options.dweight', o.dweight, t.stat, dim, 'dim', true),
    dbias: checkArray('options.dbias', o.dbias, t.stat, dim, 'dim', true),
    accumulate: checkBoolean('options.accumulate', o.accumulate),
  };
}

function allocGrads(
  g: { dx: DataArray | null; dweight: DataArray | null; dbias: DataArray | null },
  t: CallTypes,
  n: number,
  dim: number,
  w: DataArray | null,
): Gradients<DataArray> {
  return {
    dx: g.dx ?? allocLike(t.data, n),
    dweight: g.dweight ?? (w ? allocLike(t.stat, dim) : null),
    dbias: g.dbias ?? allocLike(t.stat, dim),
  } as Gradients<DataArray>;
}

/**
 * Gradients of rmsNorm with respect to x, weight and bias, given dL/dy. Pass the forward pass's `rstd` to
 * skip recomputing it. With `accumulate`, dweight/dbias are added to rather than overwritten (for gradient
 * accumulation over micro-batches).
 */
export function rmsNormBackward<D extends DataArray>(
  dy: D,
  x: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormBackwardOptions<D>>
): Gradients<D>;
export function rmsNormBackward(dy: DataArray, x: DataArray, weight: DataArray | null, options?: RmsNormBackwardOptions<any>): Gradients<DataArray> {
  const p = planRmsNormBackward(dy, x, weight, options);
  const { g } = p;
  kernels.rmsNormBackward(dy, p.xs, p.w, p.rstd, g.dx, g.dweight, g.dbias, p.dim, p.eps, p.offset, p.partial, p.accumulate, p.t.dtype, p.t.cast);
  return g;
}

/** rmsNormBackward off the JavaScript thread. */
export function rmsNormBackwardAsync<D extends DataArray>(
  dy: D,
  x: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormBackwardOptions<D>>
): Promise<Gradients<D>>;
export function rmsNormBackwardAsync(dy: DataArray, x: DataArray, weight: DataArray | null, options?: RmsNormBackwardOptions<any>): Promise<Gradients<DataArray>> {
  return settle(() => {
    const p = planRmsNormBackward(dy, x, weight, options);
    const { g } = p;
    const done = asyncKernels.rmsNormBackwardAsync(dy, p.xs, p.w, p.rstd, g.dx, g.dweight, g.dbias, p.dim, p.eps, p.offset, p.partial, p.accumulate, p.t.dtype, p.t.cast);
    return [done, g];
  });
}

function planRmsNormBackward(dy: DataArray, x: DataArray, weight: DataArray | null, options: RmsNormBackwardOptions | undefined) {
  const o = checkOptions<RmsNormBackwardOptions>(options);
  const { t, xs, w, dim, rows, eps } = checkBackwardCommon(dy, x, weight, o);
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const rstd = checkArray('options.rstd', o.rstd, t.stat, rows, 'rows', true);
  const g = checkGradOutputs(o, t, dy.length, dim);
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
  return { t, xs, w, rstd, dim, eps, offset, partial, accumulate: g.accumulate, g: allocGrads(g, t, dy.length, dim, w) };
}

/**
 * Gradients of layerNorm with respect to x, weight and bias, given dL/dy. Pass the forward pass's `mean` and
 * `rstd` to skip recomputing them.
 */
export function layerNormBackward<D extends DataArray>(
  dy: D,
  x: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, LayerNormBackwardOptions<D>>
): Gradients<D>;
export function layerNormBackward(dy: DataArray, x: DataArray, weight: DataArray | null, options?: LayerNormBackwardOptions<any>): Gradients<DataArray> {
  const p = planLayerNormBackward(dy, x, weight, options);
  const { g } = p;
  kernels.layerNormBackward(dy, p.xs, p.w, p.mean, p.rstd, g.dx, g.dweight, g.dbias, p.dim, p.eps, p.accumulate, p.t.dtype, p.t.cast);
  return g;
}

/** layerNormBackward off the JavaScript thread. */
export function layerNormBackwardAsync<D extends DataArray>(
  dy: D,
  x: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, LayerNormBackwardOptions<D>>
): Promise<Gradients<D>>;
export function layerNormBackwardAsync(dy: DataArray, x: DataArray, weight: DataArray | null, options?: LayerNormBackwardOptions<any>): Promise<Gradients<DataArray>> {
  return settle(() => {
    const p = planLayerNormBackward(dy, x, weight, options);
    const { g } = p;
    const done = asyncKernels.layerNormBackwardAsync(dy, p.xs, p.w, p.mean, p.rstd, g.dx, g.dweight, g.dbias, p.dim, p.eps, p.accumulate, p.t.dtype, p.t.cast);
    return [done, g];
  });
}

function planLayerNormBackward(dy: DataArray, x: DataArray, weight: DataArray | null, options: LayerNormBackwardOptions | undefined) {
  const o = checkOptions<LayerNormBackwardOptions>(options);
  const { t, xs, w, dim, rows, eps } = checkBackwardCommon(dy, x, weight, o);
  const mean = checkArray('options.mean', o.mean, t.stat, rows, 'rows', true);
  const rstd = checkArray('options.rstd', o.rstd, t.stat, rows, 'rows', true);
  const g = checkGradOutputs(o, t, dy.length, dim);
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
  return { t, xs, w, mean, rstd, dim, eps, accumulate: g.accumulate, g: allocGrads(g, t, dy.length, dim, w) };
}

// ---------------------------------------------------------------------------------------------------------
// Conversions between float32 and half-precision bits: round to nearest even, NaN stays NaN, overflow goes to
// infinity (float16), subnormals are kept.

const enum Direction {
  ToBFloat16 = 0,
  FromBFloat16 = 1,
  ToFloat16 = 2,
  FromFloat16 = 3,
}

function convert<R extends Float32Array | Uint16Array>(direction: Direction, src: unknown, out: unknown): R {
  const toHalf = direction === Direction.ToBFloat16 || direction === Direction.ToFloat16;
  const srcKind: Kind = toHalf ? 1 : 3;
  const dstKind: Kind = toHalf ? 3 : 1;
  if (kindOf(src) !== srcKind) throw invalidType('src', `a ${toHalf ? 'Float32Array' : 'Uint16Array'}`, src);
  const s = checkKind('src', src, srcKind, false)!;
  const o = checkArray('out', out, dstKind, s.length, 'src.length', true);
  if (o && !native) checkOverlaps([{ name: 'src', a: s, output: false }, { name: 'out', a: o, output: true }]);
  const dst = o ?? allocLike(dstKind, s.length);
  (binding ?? convertFallback).convert(direction, s as Float32Array | Uint16Array, dst as Float32Array | Uint16Array);
  return dst as R;
}

/** float32 to bfloat16 bits. Returns `out` when given (same length as src), else a new Uint16Array. */
export function toBFloat16(src: Float32Array, out?: Uint16Array | null): Uint16Array {
  return convert(Direction.ToBFloat16, src, out);
}
/** bfloat16 bits to float32 (exact). */
export function fromBFloat16(src: Uint16Array, out?: Float32Array | null): Float32Array {
  return convert(Direction.FromBFloat16, src, out);
}
/** float32 to IEEE float16 bits. */
export function toFloat16(src: Float32Array, out?: Uint16Array | null): Uint16Array {
  return convert(Direction.ToFloat16, src, out);
}
/** IEEE float16 bits to float32 (exact). */
export function fromFloat16(src: Uint16Array, out?: Float32Array | null): Float32Array {
  return convert(Direction.FromFloat16, src, out);
}
