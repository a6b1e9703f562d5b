// Training modules shaped like torch.nn.RMSNorm / torch.nn.LayerNorm: parameters, forward, backward that
// accumulates parameter gradients, zeroGrad. They hold their parameters in the dtype they were made with and
// save what backward needs (the input and the forward statistics, not copies: do not modify the input
// between forward and backward).
import {
  layerNorm,
  layerNormAsync,
  layerNormBackward,
  layerNormBackwardAsync,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
} from './ops';
import type { FloatArray } from './types';
import {
  checkOffset,
  checkOptions,
  checkPartial,
  checkEps,
  invalidType,
  invalidValue,
  kindOf,
  outOfRange,
} from './validate';

export type DType = 'float32' | 'float64';

export interface RMSNormModuleOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Learnable weight (initialized so that offset + weight = 1). Default true. */
  affine?: boolean;
  /** Learnable bias (initialized to 0). Default false. */
  bias?: boolean;
  /** Added to the weight: y = x * rstd * (offset + weight). Default 0; needs affine. */
  offset?: number;
  /** pRMSNorm fraction of each row used for the statistic. Default 1. */
  partial?: number;
  /** Element type of the parameters and of the inputs. Default 'float32'. */
  dtype?: DType;
}

export interface LayerNormModuleOptions {
  eps?: number;
  /** Learnable weight (ones) and, with bias, learnable bias (zeros). Default true. */
  affine?: boolean;
  /** Default true. */
  bias?: boolean;
  dtype?: DType;
}

function checkModuleDim(dim: unknown): number {
  if (typeof dim !== 'number') throw invalidType('dim', 'of type number', dim);
  if (!Number.isInteger(dim) || dim < 1 || dim > 0xffffffff) {
    throw outOfRange('dim', 'be a positive integer no greater than 4294967295', String(dim));
  }
  return dim;
}

function checkFlag(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw invalidType(name, 'of type boolean', v);
  return v;
}

function checkDType(v: unknown): DType {
  if (v === undefined) return 'float32';
  if (v !== 'float32' && v !== 'float64')
    throw invalidValue('options.dtype', `must be 'float32' or 'float64', received ${JSON.stringify(v)}`);
  return v;
}

function alloc(dtype: DType, n: number, fill = 0): FloatArray {
  const a = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  return fill === 0 ? a : a.fill(fill);
}

function checkInput(name: string, v: unknown, dtype: DType, dim: number): FloatArray {
  const want = dtype === 'float32' ? 1 : 2;
  if (kindOf(v) !== want)
    throw invalidType(name, `a ${dtype === 'float32' ? 'Float32Array' : 'Float64Array'} (the module's dtype)`, v);
  const a = v as FloatArray;
  if (a.length % dim !== 0)
    throw outOfRange(name, `have a length that is a multiple of dim (${dim})`, `length ${a.length}`);
  return a;
}

abstract class NormModule {
  readonly dim: number;
  readonly eps: number;
  readonly dtype: DType;
  /** Learnable scale (length dim), or null without affine. */
  readonly weight: FloatArray | null;
  /** Learnable shift (length dim), or null. */
  readonly bias: FloatArray | null;
  /** Accumulated dL/dweight since the last zeroGrad(). */
  readonly weightGrad: FloatArray | null;
  /** Accumulated dL/dbias since the last zeroGrad(). */
  readonly biasGrad: FloatArray | null;
  protected saved: { x: FloatArray; mean: FloatArray | null; rstd: FloatArray } | null = null;

  protected constructor(dim: number, eps: number, dtype: DType, affine: boolean, bias: boolean, weightInit: number) {
    this.dim = dim;
    this.eps = eps;
    this.dtype = dtype;
    this.weight = affine ? alloc(dtype, dim, weightInit) : null;
    this.bias = bias ? alloc(dtype, dim) : null;
    this.weightGrad = affine ? alloc(dtype, dim) : null;
    this.biasGrad = bias ? alloc(dtype, dim) : null;
  }

  /** Resets weightGrad and biasGrad to zero. */
  zeroGrad(): void {
    this.weightGrad?.fill(0);
    this.biasGrad?.fill(0);
  }

  protected takeSaved(dy: unknown) {
    const saved = this.saved;
    if (!saved) throw invalidValue('dy', 'has no forward pass to go back through: call forward(x) before backward(dy)');
    const d = checkInput('dy', dy, this.dtype, this.dim);
    if (d.length !== saved.x.length)
      throw outOfRange('dy', `have length ${saved.x.length} (the forward input's length)`, `length ${d.length}`);
    return { d, saved };
  }
}

/** RMSNorm over the last dimension, like torch.nn.RMSNorm(dim, eps, elementwise_affine). */
export class RMSNorm extends NormModule {
  readonly offset: number;
  readonly partial: number;

  constructor(dim: number, options?: RMSNormModuleOptions) {
    const o = checkOptions<RMSNormModuleOptions>(options);
    const d = checkModuleDim(dim);
    const affine = checkFlag('options.affine', o.affine, true);
    const offset = checkOffset(o.offset, affine ? new Float32Array(1) : null);
    super(d, checkEps(o.eps), checkDType(o.dtype), affine, checkFlag('options.bias', o.bias, false), 1 - offset);
    this.offset = offset;
    this.partial = checkPartial(o.partial);
  }

  /** y = rmsNorm(x) with this module's parameters; saves x and rstd for backward. */
  forward<T extends FloatArray>(x: T): T;
  forward(x: FloatArray): FloatArray {
    const { xs, rstd, options } = this.forwardPlan(x);
    const y = rmsNorm(xs, this.weight, options);
    this.saved = { x: xs, mean: null, rstd };
    return y;
  }

  /** forward() off the JavaScript thread; the module saves x and rstd once it settles. */
  forwardAsync<T extends FloatArray>(x: T): Promise<T>;
  async forwardAsync(x: FloatArray): Promise<FloatArray> {
    const { xs, rstd, options } = this.forwardPlan(x);
    const y = await rmsNormAsync(xs, this.weight, options);
    this.saved = { x: xs, mean: null, rstd };
    return y;
  }

  /** dL/dx for the last forward input; adds dL/dweight and dL/dbias into weightGrad and biasGrad. */
  backward<T extends FloatArray>(dy: T): T;
  backward(dy: FloatArray): FloatArray {
    const { d, saved } = this.takeSaved(dy);
    return rmsNormBackward(d, saved.x, this.weight, this.backwardOptions(saved.rstd)).dx;
  }

  /** backward() off the JavaScript thread. */
  backwardAsync<T extends FloatArray>(dy: T): Promise<T>;
  async backwardAsync(dy: FloatArray): Promise<FloatArray> {
    const { d, saved } = this.takeSaved(dy);
    return (await rmsNormBackwardAsync(d, saved.x, this.weight, this.backwardOptions(saved.rstd))).dx;
  }

  private forwardPlan(x: FloatArray) {
    const xs = checkInput('x', x, this.dtype, this.dim);
    const rstd = alloc(this.dtype, xs.length / this.dim);
    const options = { dim: this.dim, eps: this.eps, bias: this.bias, offset: this.offset, partial: this.partial, rstd };
    return { xs, rstd, options };
  }

  private backwardOptions(rstd: FloatArray) {
    return {
      dim: this.dim,
      eps: this.eps,
      offset: this.offset,
      partial: this.partial,
      rstd,
      dweight: this.weightGrad,
      dbias: this.biasGrad,
      accumulate: true,
    };
  }
}

/** LayerNorm over the last dimension, like torch.nn.LayerNorm(dim, eps, elementwise_affine, bias). */
export class LayerNorm extends NormModule {
  constructor(dim: number, options?: LayerNormModuleOptions) {
    const o = checkOptions<LayerNormModuleOptions>(options);
    const affine = checkFlag('options.affine', o.affine, true);
    super(
      checkModuleDim(dim),
      checkEps(o.eps),
      checkDType(o.dtype),
      affine,
      affine && checkFlag('options.bias', o.bias, true),
      1,
    );
  }

  /** y = layerNorm(x) with this module's parameters; saves x, mean and rstd for backward. */
  forward<T extends FloatArray>(x: T): T;
  forward(x: FloatArray): FloatArray {
    const { xs, mean, rstd } = this.forwardPlan(x);
    const y = layerNorm(xs, this.weight, this.bias, { dim: this.dim, eps: this.eps, mean, rstd });
    this.saved = { x: xs, mean, rstd };
    return y;
  }

  /** forward() off the JavaScript thread; the module saves x and the statistics once it settles. */
  forwardAsync<T extends FloatArray>(x: T): Promise<T>;
  async forwardAsync(x: FloatArray): Promise<FloatArray> {
    const { xs, mean, rstd } = this.forwardPlan(x);
    const y = await layerNormAsync(xs, this.weight, this.bias, { dim: this.dim, eps: this.eps, mean, rstd });
    this.saved = { x: xs, mean, rstd };
    return y;
  }

  backward<T extends FloatArray>(dy: T): T;
  backward(dy: FloatArray): FloatArray {
    const { d, saved } = this.takeSaved(dy);
    return layerNormBackward(d, saved.x, this.weight, this.backwardOptions(saved.mean!, saved.rstd)).dx;
  }

  backwardAsync<T extends FloatArray>(dy: T): Promise<T>;
  async backwardAsync(dy: FloatArray): Promise<FloatArray> {
    const { d, saved } = this.takeSaved(dy);
    return (await layerNormBackwardAsync(d, saved.x, this.weight, this.backwardOptions(saved.mean!, saved.rstd))).dx;
  }

  private forwardPlan(x: FloatArray) {
    const xs = checkInput('x', x, this.dtype, this.dim);
    const rows = xs.length / this.dim;
    return { xs, mean: alloc(this.dtype, rows), rstd: alloc(this.dtype, rows) };
  }

  private backwardOptions(mean: FloatArray, rstd: FloatArray) {
    return {
      dim: this.dim,
      eps: this.eps,
      mean,
      rstd,
      dweight: this.weightGrad,
      dbias: this.biasGrad,
      accumulate: true,
    };
  }
}
