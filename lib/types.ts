// The public types of the API: array types, the options of each op, results and the backend description.
import type { Isa } from './loader';

export type FloatArray = Float32Array | Float64Array;
/** Data arrays: float32, float64, or the bits of bfloat16/float16 values (with options.dtype). */
export type DataArray = Float32Array | Float64Array | Uint16Array;

/** Storage of half-precision data in a Uint16Array: bfloat16 or IEEE float16 bits. */
export type HalfDType = 'bfloat16' | 'float16';
/**
 * 'fp32' (default): everything in float32, one rounding to the storage type at the end. 'llama': x * rstd is
 * rounded to the storage type, then multiplied by the weight and rounded again (Hugging Face Llama/Granite).
 */
export type CastMode = 'fp32' | 'llama';

/** Data-shaped arrays (out, residual, dy, dx) of a call whose x is D: D's own array type. */
export type Data<D extends DataArray> = D extends Uint16Array
  ? Uint16Array
  : D extends Float32Array
    ? Float32Array
    : Float64Array;
/** Parameters (weight, bias): x's type; for half data Float32Array or Uint16Array. */
export type Param<D extends DataArray> = D extends Uint16Array ? Float32Array | Uint16Array : Data<D>;
/** Statistics (rstd, mean) and parameter gradients (dweight, dbias): Float32Array for half data. */
export type Stat<D extends DataArray> = D extends Uint16Array ? Float32Array : Data<D>;
/** The array type of every other array argument of a call whose x is T: Float32Array for Float32Array, etc. */
export type SameFloat<T extends FloatArray> = Data<T>;

/**
 * Where the rows are (every op): row r of x starts at x[r * xRowStride]; within a row, `heads` groups of dim
 * values start every `headStride` elements, each normalized on its own with the same weight. The elements
 * between rows and between heads are never read or written.
 */
export interface LayoutOptions {
  /** Rows. Default: every whole row in x (dense: x.length / rowSpan, which must divide; with xRowStride,
   * floor((x.length - rowSpan) / xRowStride) + 1), where rowSpan = (heads - 1) * headStride + dim. */
  rows?: number;
  /** Groups of dim values per row, each normalized on its own (per-head QK-norm). Default 1. */
  heads?: number;
  /** Elements from one head's start to the next (>= dim). Default dim. */
  headStride?: number;
}

/** Options every op takes for half data: dtype is required with a Uint16Array. */
export interface PrecisionOptions {
  dtype?: HalfDType;
  castMode?: CastMode;
}

/** The trailing options parameter: required, with a dtype, for Uint16Array data. */
export type OptionsArg<D extends DataArray, O> = D extends Uint16Array
  ? [options: O & { dtype: HalfDType }]
  : [options?: O];

export interface RmsNormOptions<D extends DataArray = DataArray> extends PrecisionOptions, LayoutOptions {
  /** Elements from one row of x to the next (>= rowSpan). Default rowSpan (dense). */
  xRowStride?: number;
  /** Elements from one row of out to the next; only with options.out (a new out is dense). Default rowSpan. */
  outRowStride?: number;
  /** addRmsNorm: elements from one row of residual to the next. Default rowSpan. */
  residualRowStride?: number;
  /** addRmsNorm: residual += x * residualScale (Granite's residual_multiplier), rounded once. Default 1. */
  residualScale?: number;
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

export interface LayerNormOptions<D extends DataArray = DataArray> extends PrecisionOptions, LayoutOptions {
  /** Elements from one row of x to the next (>= rowSpan). Default rowSpan (dense). */
  xRowStride?: number;
  /** Elements from one row of out to the next; only with options.out. Default rowSpan. */
  outRowStride?: number;
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

/** The row strides of a backward pass (dx only with options.dx: a new dx is dense). */
export interface BackwardLayoutOptions extends LayoutOptions {
  dyRowStride?: number;
  xRowStride?: number;
  dxRowStride?: number;
}

export interface RmsNormBackwardOptions<D extends DataArray = DataArray>
  extends PrecisionOptions, BackwardLayoutOptions {
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

export interface LayerNormBackwardOptions<D extends DataArray = DataArray>
  extends PrecisionOptions, BackwardLayoutOptions {
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
