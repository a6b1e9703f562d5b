// The ops: rmsNorm, layerNorm, addRmsNorm and the two backward passes, each as a sync function and an async
// twin over one plan. A plan checks every argument (lib/validate.ts, with each array as its slot in the op
// table describes it), allocates the outputs not given, and returns the kernel's arguments by role; the calls
// in lib/ops.gen.ts pass them on in the kernels' order.
import type { DataArray } from '../binding';
import { asyncKernels, kernels, native } from './backend';
import { OPS, type ArraySlot, type OpDescription } from './op-table';
import {
  callAddRmsNorm,
  callAddRmsNormAsync,
  callLayerNorm,
  callLayerNormAsync,
  callLayerNormBackward,
  callLayerNormBackwardAsync,
  callRmsNorm,
  callRmsNormAsync,
  callRmsNormBackward,
  callRmsNormBackwardAsync,
} from './ops.gen';
import type {
  Data,
  Gradients,
  LayerNormBackwardOptions,
  LayerNormOptions,
  OptionsArg,
  Param,
  RmsNormBackwardOptions,
  RmsNormOptions,
} from './types';
import {
  allocLike,
  checkBoolean,
  checkData,
  checkDim,
  checkLayout,
  checkLayoutOverlaps,
  checkResidualScale,
  checkRowStride,
  invalidValue,
  checkEps,
  checkOffset,
  checkOpOverlaps,
  checkOptions,
  checkPartial,
  checkSlot,
  checkSlotLength,
  checkSlotType,
  checkTypes,
  type CallTypes,
  type Footprint,
  type Layout,
  type Sizes,
} from './validate';

/** An op's slots by role. */
function slots<O extends OpDescription>(op: O): Record<O['arrays'][number]['role'], ArraySlot> {
  // Copies with every field, in one order: the checks then read objects of one shape (monomorphic for V8).
  const entries = op.arrays.map((a): [string, ArraySlot] => [
    a.role,
    {
      role: a.role,
      name: a.name,
      length: a.length,
      element: a.element,
      nullable: a.nullable,
      output: a.output,
      inPlace: a.inPlace,
      allocate: a.allocate,
    },
  ]);
  return Object.fromEntries(entries) as Record<O['arrays'][number]['role'], ArraySlot>;
}
const RMS = slots(OPS.rmsNorm);
const LN = slots(OPS.layerNorm);
const ADD = slots(OPS.addRmsNorm);
const RMS_BACK = slots(OPS.rmsNormBackward);
const LN_BACK = slots(OPS.layerNormBackward);

/**
 * The call's layout from its options (checkLayout), with the first array's row stride; records it in `s`
 * (statistics then have rows * heads entries).
 */
function layoutOf(
  o: object,
  strideOption: unknown,
  first: DataArray,
  firstName: string,
  strideName: string,
  s: Sizes,
): Layout {
  const layout = checkLayout(o, strideOption, s.dim, first, firstName, strideName);
  s.rows = layout.rows * layout.heads;
  s.layout = layout;
  return layout;
}

/** An output's row stride: its option when the output is given; a new output is dense (row stride rowSpan). */
function outStride(name: string, outName: string, v: unknown, given: DataArray | null, L: Layout): number {
  if (v === undefined) return L.rowSpan;
  if (!given) throw invalidValue(name, `applies only with ${outName} (a new array is dense)`);
  return checkRowStride(name, v, L.rowSpan, L.heads);
}

/** The length of a new array with rows: x's length for a dense call, else rows * rowSpan. */
function newLength(L: Layout, total: number): number {
  return L.dense ? total : L.rows * L.rowSpan;
}

/** An array's footprint, for the overlap rules of a call with a layout. */
function fp(L: Layout, stride: number): Footprint {
  return { stride, span: L.rowSpan, rows: L.rows };
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

// Overlap checks (`if (!native) checkOpOverlaps(...)` below): the native module makes them itself, with the same
// messages, from the data pointers it reads anyway; in JavaScript each `.buffer` read costs as much as a whole
// small call, so only the fallback pays for them (and the native path does not even build their argument).

// Overload implementations take `options?: XOptions<any>`: the public overloads each carry the precise element
// types, which TypeScript cannot relate to one implementation signature through their conditional types.
/* eslint-disable @typescript-eslint/no-explicit-any */

// ---------------------------------------------------------------------------------------------------------
// rmsNorm

/**
 * RMSNorm over each row of x (rows × dim, row-major):
 *   rstd[r] = 1 / sqrt(mean_{i<k} x[r,i]^2 + eps),  y[r,i] = x[r,i] * rstd[r] * (offset + weight[i]) + bias[i]
 * Returns `options.out` when given, else a new array of x's type.
 */
export function rmsNorm<D extends DataArray>(
  x: D,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormOptions<D>>
): Data<D>;
export function rmsNorm(x: DataArray, weight: DataArray | null, options?: RmsNormOptions<any>): DataArray {
  const c = planRmsNorm(x, weight, options);
  callRmsNorm(kernels, c);
  return c.out;
}

/** rmsNorm off the JavaScript thread; resolves to the same array. Do not touch the arrays until it settles. */
export function rmsNormAsync<D extends DataArray>(
  x: D,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormOptions<D>>
): Promise<Data<D>>;
export function rmsNormAsync(
  x: DataArray,
  weight: DataArray | null,
  options?: RmsNormOptions<any>,
): Promise<DataArray> {
  return settle(() => {
    const c = planRmsNorm(x, weight, options);
    return [callRmsNormAsync(asyncKernels, c), c.out];
  });
}

function planRmsNorm(x: DataArray, weight: DataArray | null, options: RmsNormOptions | undefined) {
  const kind = checkData('x', x);
  const o = checkOptions<RmsNormOptions>(options);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const w = checkSlotType(RMS.weight, weight, t);
  const dim = checkDim(o.dim, w);
  const s: Sizes = { total: x.length, totalName: 'x.length', dim, rows: 0, layout: undefined };
  checkSlotLength(RMS.weight, w, s);
  const L = layoutOf(o, o.xRowStride, x, 'x', 'options.xRowStride', s);
  const xRowStride = L.stride;
  const eps = checkEps(o.eps);
  const bias = checkSlot(RMS.bias, o.bias, t, s);
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const out = checkSlotType(RMS.out, o.out, t);
  const outRowStride = outStride('options.outRowStride', 'options.out', o.outRowStride, out, L);
  checkSlotLength(RMS.out, out, s, outRowStride);
  const rstd = checkSlot(RMS.rstd, o.rstd, t, s);
  if (!native) {
    if (L.dense) checkOpOverlaps(OPS.rmsNorm, { x, weight: w, bias, out, rstd });
    else
      checkLayoutOverlaps(
        OPS.rmsNorm,
        { x, weight: w, bias, out, rstd },
        { x: fp(L, xRowStride), out: fp(L, outRowStride) },
      );
  }
  return {
    x,
    weight: w,
    bias,
    out: out ?? allocLike(kind, newLength(L, x.length)),
    rstd,
    dim,
    eps,
    offset,
    partial,
    dtype: t.dtype,
    castMode: t.cast,
    dense: L.dense,
    rows: L.rows,
    heads: L.heads,
    headStride: L.headStride,
    xRowStride,
    outRowStride,
  };
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
export function layerNorm(
  x: DataArray,
  weight: DataArray | null,
  bias: DataArray | null,
  options?: LayerNormOptions<any>,
): DataArray {
  const c = planLayerNorm(x, weight, bias, options);
  callLayerNorm(kernels, c);
  return c.out;
}

/** layerNorm off the JavaScript thread; resolves to the same array. */
export function layerNormAsync<D extends DataArray>(
  x: D,
  weight: Param<D> | null,
  bias: Param<D> | null,
  ...options: OptionsArg<D, LayerNormOptions<D>>
): Promise<Data<D>>;
export function layerNormAsync(
  x: DataArray,
  weight: DataArray | null,
  bias: DataArray | null,
  options?: LayerNormOptions<any>,
): Promise<DataArray> {
  return settle(() => {
    const c = planLayerNorm(x, weight, bias, options);
    return [callLayerNormAsync(asyncKernels, c), c.out];
  });
}

function planLayerNorm(
  x: DataArray,
  weight: DataArray | null,
  bias: DataArray | null,
  options: LayerNormOptions | undefined,
) {
  const kind = checkData('x', x);
  const o = checkOptions<LayerNormOptions>(options);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const w = checkSlotType(LN.weight, weight, t);
  const b = checkSlotType(LN.bias, bias, t);
  const dim = checkDim(o.dim, w ?? b, w ? 'weight' : 'bias');
  const s: Sizes = { total: x.length, totalName: 'x.length', dim, rows: 0, layout: undefined };
  checkSlotLength(LN.weight, w, s);
  checkSlotLength(LN.bias, b, s);
  const L = layoutOf(o, o.xRowStride, x, 'x', 'options.xRowStride', s);
  const xRowStride = L.stride;
  const eps = checkEps(o.eps);
  const out = checkSlotType(LN.out, o.out, t);
  const outRowStride = outStride('options.outRowStride', 'options.out', o.outRowStride, out, L);
  checkSlotLength(LN.out, out, s, outRowStride);
  const mean = checkSlot(LN.mean, o.mean, t, s);
  const rstd = checkSlot(LN.rstd, o.rstd, t, s);
  if (!native) {
    const arrays = { x, weight: w, bias: b, out, mean, rstd };
    if (L.dense) checkOpOverlaps(OPS.layerNorm, arrays);
    else checkLayoutOverlaps(OPS.layerNorm, arrays, { x: fp(L, xRowStride), out: fp(L, outRowStride) });
  }
  return {
    x,
    weight: w,
    bias: b,
    out: out ?? allocLike(kind, newLength(L, x.length)),
    mean,
    rstd,
    dim,
    eps,
    dtype: t.dtype,
    castMode: t.cast,
    dense: L.dense,
    rows: L.rows,
    heads: L.heads,
    headStride: L.headStride,
    xRowStride,
    outRowStride,
  };
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
export function addRmsNorm(
  x: DataArray,
  residual: DataArray,
  weight: DataArray | null,
  options?: RmsNormOptions<any>,
): DataArray {
  const c = planAddRmsNorm(x, residual, weight, options);
  callAddRmsNorm(kernels, c);
  return c.out;
}

/** addRmsNorm off the JavaScript thread; resolves to the output array. */
export function addRmsNormAsync<D extends DataArray>(
  x: D,
  residual: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormOptions<D>>
): Promise<Data<D>>;
export function addRmsNormAsync(
  x: DataArray,
  residual: DataArray,
  weight: DataArray | null,
  options?: RmsNormOptions<any>,
): Promise<DataArray> {
  return settle(() => {
    const c = planAddRmsNorm(x, residual, weight, options);
    return [callAddRmsNormAsync(asyncKernels, c), c.out];
  });
}

function planAddRmsNorm(
  x: DataArray,
  residual: DataArray,
  weight: DataArray | null,
  options: RmsNormOptions | undefined,
) {
  const kind = checkData('x', x);
  const o = checkOptions<RmsNormOptions>(options);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const res = checkSlotType(ADD.residual, residual, t)!;
  const w = checkSlotType(ADD.weight, weight, t);
  const dim = checkDim(o.dim, w);
  const s: Sizes = { total: x.length, totalName: 'x.length', dim, rows: 0, layout: undefined };
  checkSlotLength(ADD.weight, w, s);
  const L = layoutOf(o, o.xRowStride, x, 'x', 'options.xRowStride', s);
  const xRowStride = L.stride;
  const residualRowStride = checkRowStride('options.residualRowStride', o.residualRowStride, L.rowSpan, L.heads);
  checkSlotLength(ADD.residual, res, s, residualRowStride);
  const eps = checkEps(o.eps);
  const bias = checkSlot(ADD.bias, o.bias, t, s);
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const residualScale = checkResidualScale(o.residualScale);
  const out = checkSlotType(ADD.out, o.out, t);
  const outRowStride = outStride('options.outRowStride', 'options.out', o.outRowStride, out, L);
  checkSlotLength(ADD.out, out, s, outRowStride);
  const rstd = checkSlot(ADD.rstd, o.rstd, t, s);
  if (!native) {
    const arrays = { x, residual: res, weight: w, bias, out, rstd };
    if (L.dense) checkOpOverlaps(OPS.addRmsNorm, arrays);
    else
      checkLayoutOverlaps(OPS.addRmsNorm, arrays, {
        x: fp(L, xRowStride),
        residual: fp(L, residualRowStride),
        out: fp(L, outRowStride),
      });
  }
  return {
    x,
    residual: res,
    weight: w,
    bias,
    out: out ?? allocLike(kind, newLength(L, x.length)),
    rstd,
    dim,
    eps,
    offset,
    partial,
    dtype: t.dtype,
    castMode: t.cast,
    // residualScale travels with the layout: a call that sets it passes them all.
    dense: L.dense && residualScale === 1,
    rows: L.rows,
    heads: L.heads,
    headStride: L.headStride,
    xRowStride,
    residualRowStride,
    outRowStride,
    residualScale,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Backward passes

type BackSlots = typeof RMS_BACK | typeof LN_BACK;

/** Checks shared by both backward passes; returns what they have in common. */
function checkBackwardCommon(
  S: BackSlots,
  dy: DataArray,
  x: DataArray,
  weight: DataArray | null,
  o: RmsNormBackwardOptions | LayerNormBackwardOptions,
) {
  const kind = checkData('dy', dy);
  const t = checkTypes(kind, o.dtype, o.castMode);
  const xs = checkSlotType(S.x, x, t)!;
  const w = checkSlotType(S.weight, weight, t);
  const dim = checkDim(o.dim, w);
  const s: Sizes = { total: dy.length, totalName: 'dy.length', dim, rows: 0, layout: undefined };
  checkSlotLength(S.weight, w, s);
  const L = layoutOf(o, o.dyRowStride, dy, 'dy', 'options.dyRowStride', s);
  const dyRowStride = L.stride;
  const xRowStride = checkRowStride('options.xRowStride', o.xRowStride, L.rowSpan, L.heads);
  checkSlotLength(S.x, xs, s, xRowStride);
  const eps = checkEps(o.eps);
  return { t, xs, w, s, eps, L, dyRowStride, xRowStride };
}

/** The gradient outputs, checked; those not given are allocated (dweight only when there is a weight). */
function gradOutputs(
  S: BackSlots,
  o: RmsNormBackwardOptions | LayerNormBackwardOptions,
  t: CallTypes,
  s: Sizes,
  L: Layout,
) {
  const dx = checkSlotType(S.dx, o.dx, t);
  const dxRowStride = outStride('options.dxRowStride', 'options.dx', o.dxRowStride, dx, L);
  checkSlotLength(S.dx, dx, s, dxRowStride);
  const dweight = checkSlot(S.dweight, o.dweight, t, s);
  const dbias = checkSlot(S.dbias, o.dbias, t, s);
  const accumulate = checkBoolean('options.accumulate', o.accumulate);
  return { dx, dxRowStride, dweight, dbias, accumulate };
}

/** The result of a backward pass: its gradient arrays. */
function gradients(c: { dx: DataArray; dweight: DataArray | null; dbias: DataArray | null }): Gradients<DataArray> {
  return { dx: c.dx, dweight: c.dweight, dbias: c.dbias } as Gradients<DataArray>;
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
export function rmsNormBackward(
  dy: DataArray,
  x: DataArray,
  weight: DataArray | null,
  options?: RmsNormBackwardOptions<any>,
): Gradients<DataArray> {
  const c = planRmsNormBackward(dy, x, weight, options);
  callRmsNormBackward(kernels, c);
  return gradients(c);
}

/** rmsNormBackward off the JavaScript thread. */
export function rmsNormBackwardAsync<D extends DataArray>(
  dy: D,
  x: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, RmsNormBackwardOptions<D>>
): Promise<Gradients<D>>;
export function rmsNormBackwardAsync(
  dy: DataArray,
  x: DataArray,
  weight: DataArray | null,
  options?: RmsNormBackwardOptions<any>,
): Promise<Gradients<DataArray>> {
  return settle(() => {
    const c = planRmsNormBackward(dy, x, weight, options);
    return [callRmsNormBackwardAsync(asyncKernels, c), gradients(c)];
  });
}

function planRmsNormBackward(
  dy: DataArray,
  x: DataArray,
  weight: DataArray | null,
  options: RmsNormBackwardOptions | undefined,
) {
  const o = checkOptions<RmsNormBackwardOptions>(options);
  const { t, xs, w, s, eps, L, dyRowStride, xRowStride } = checkBackwardCommon(RMS_BACK, dy, x, weight, o);
  const offset = checkOffset(o.offset, w);
  const partial = checkPartial(o.partial);
  const rstd = checkSlot(RMS_BACK.rstd, o.rstd, t, s);
  const given = gradOutputs(RMS_BACK, o, t, s, L);
  if (!native) {
    const arrays = {
      dy,
      x: xs,
      weight: w,
      rstd,
      dx: given.dx,
      dweight: given.dweight,
      dbias: given.dbias,
    };
    if (L.dense) checkOpOverlaps(OPS.rmsNormBackward, arrays);
    else
      checkLayoutOverlaps(OPS.rmsNormBackward, arrays, {
        dy: fp(L, dyRowStride),
        x: fp(L, xRowStride),
        dx: fp(L, given.dxRowStride),
      });
  }
  const c = {
    dy,
    x: xs,
    weight: w,
    rstd,
    dx: given.dx ?? allocLike(t.data, newLength(L, s.total)),
    dweight: given.dweight ?? (w ? allocLike(t.stat, s.dim) : null),
    dbias: given.dbias ?? allocLike(t.stat, s.dim),
    dim: s.dim,
    eps,
    offset,
    partial,
    accumulate: given.accumulate,
    dtype: t.dtype,
    castMode: t.cast,
    dense: L.dense,
    rows: L.rows,
    heads: L.heads,
    headStride: L.headStride,
    dyRowStride,
    xRowStride,
    dxRowStride: given.dxRowStride,
  };
  return c;
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
export function layerNormBackward(
  dy: DataArray,
  x: DataArray,
  weight: DataArray | null,
  options?: LayerNormBackwardOptions<any>,
): Gradients<DataArray> {
  const c = planLayerNormBackward(dy, x, weight, options);
  callLayerNormBackward(kernels, c);
  return gradients(c);
}

/** layerNormBackward off the JavaScript thread. */
export function layerNormBackwardAsync<D extends DataArray>(
  dy: D,
  x: Data<D>,
  weight: Param<D> | null,
  ...options: OptionsArg<D, LayerNormBackwardOptions<D>>
): Promise<Gradients<D>>;
export function layerNormBackwardAsync(
  dy: DataArray,
  x: DataArray,
  weight: DataArray | null,
  options?: LayerNormBackwardOptions<any>,
): Promise<Gradients<DataArray>> {
  return settle(() => {
    const c = planLayerNormBackward(dy, x, weight, options);
    return [callLayerNormBackwardAsync(asyncKernels, c), gradients(c)];
  });
}

function planLayerNormBackward(
  dy: DataArray,
  x: DataArray,
  weight: DataArray | null,
  options: LayerNormBackwardOptions | undefined,
) {
  const o = checkOptions<LayerNormBackwardOptions>(options);
  const { t, xs, w, s, eps, L, dyRowStride, xRowStride } = checkBackwardCommon(LN_BACK, dy, x, weight, o);
  const mean = checkSlot(LN_BACK.mean, o.mean, t, s);
  const rstd = checkSlot(LN_BACK.rstd, o.rstd, t, s);
  const given = gradOutputs(LN_BACK, o, t, s, L);
  if (!native) {
    const arrays = {
      dy,
      x: xs,
      weight: w,
      mean,
      rstd,
      dx: given.dx,
      dweight: given.dweight,
      dbias: given.dbias,
    };
    if (L.dense) checkOpOverlaps(OPS.layerNormBackward, arrays);
    else
      checkLayoutOverlaps(OPS.layerNormBackward, arrays, {
        dy: fp(L, dyRowStride),
        x: fp(L, xRowStride),
        dx: fp(L, given.dxRowStride),
      });
  }
  const c = {
    dy,
    x: xs,
    weight: w,
    mean,
    rstd,
    dx: given.dx ?? allocLike(t.data, newLength(L, s.total)),
    dweight: given.dweight ?? (w ? allocLike(t.stat, s.dim) : null),
    dbias: given.dbias ?? allocLike(t.stat, s.dim),
    dim: s.dim,
    eps,
    accumulate: given.accumulate,
    dtype: t.dtype,
    castMode: t.cast,
    dense: L.dense,
    rows: L.rows,
    heads: L.heads,
    headStride: L.headStride,
    dyRowStride,
    xRowStride,
    dxRowStride: given.dxRowStride,
  };
  return c;
}
