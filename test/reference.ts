// An independent float64 reference for the numerical tests, written for clarity, not speed. It scales each
// row by its largest magnitude before squaring (unconditionally, unlike the kernels), so it stays accurate for
// float64 rows whose squares over- or underflow.
import { rng } from './fixtures/xorshift.cjs';

/** Deterministic pseudo-random values, so a failure reproduces (test/fixtures/xorshift.cjs). */
export { rng };

export type FloatArray = Float32Array | Float64Array;

export interface RefOptions {
  dim: number;
  eps?: number;
  bias?: ArrayLike<number> | null;
  offset?: number;
  partial?: number;
}

export interface RefResult {
  y: Float64Array;
  rstd: Float64Array;
}

/** Neumaier's compensated sum: error independent of the length, so the reference is not the weak link. */
export function accurateSum(values: ArrayLike<number>): number {
  let sum = 0;
  let c = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const t = sum + v;
    c += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return Number.isFinite(sum) ? sum + c : sum;
}

export function referenceRmsNorm(x: ArrayLike<number>, weight: ArrayLike<number> | null, o: RefOptions): RefResult {
  const { dim } = o;
  const eps = o.eps ?? 1e-5;
  const offset = o.offset ?? 0;
  const k = Math.min(dim, Math.max(1, Math.ceil((o.partial ?? 1) * dim)));
  const rows = x.length / dim;
  const y = new Float64Array(x.length);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: dim }, (_, i) => x[r * dim + i]!);
    let m = 0;
    for (let i = 0; i < k; i++) m = Math.max(m, Math.abs(row[i]!));
    // rstd = q / m with q = 1 / sqrt(sum((x/m)^2)/k + eps/m^2); the row's outputs are (x/m) * q.
    let unit: (v: number) => number;
    let rs: number;
    if (!Number.isFinite(m) || Number.isNaN(m)) {
      rs = 1 / Math.sqrt(accurateSum(row.slice(0, k).map((v) => v * v)) / k + eps);
      unit = (v) => v * rs;
    } else if (m === 0) {
      rs = 1 / Math.sqrt(eps);
      unit = (v) => v * rs;
    } else {
      const s = accurateSum(row.slice(0, k).map((v) => (v / m) ** 2));
      const t = eps === 0 ? 0 : eps / (m * m);
      if (!Number.isFinite(t)) {
        rs = 1 / Math.sqrt(eps);
        unit = (v) => v * rs;
      } else {
        const q = 1 / Math.sqrt(s / k + t);
        rs = q / m;
        unit = (v) => (v / m) * q;
      }
    }
    rstd[r] = rs;
    for (let i = 0; i < dim; i++) {
      let v = unit(row[i]!);
      if (weight) v *= offset + weight[i]!;
      if (o.bias) v += o.bias[i]!;
      y[r * dim + i] = v;
    }
  }
  return { y, rstd };
}

/** Smallest positive normal and unit roundoff of a storage type. */
export function typeLimits(a: FloatArray): { tiny: number; ulp: number; sub: number } {
  return a instanceof Float32Array
    ? { tiny: 2 ** -126, ulp: 2 ** -23, sub: 2 ** -149 }
    : { tiny: 2 ** -1022, ulp: 2 ** -52, sub: 2 ** -1074 };
}

/**
 * Largest error of `got` against `want`, in units of the last place of the storage type, each error measured
 * against `scale[i]` (the magnitude the element's rounding errors are relative to; |want| by default).
 * Subnormal results are measured in absolute units of the smallest subnormal. NaN must match NaN and ±Inf
 * must match exactly.
 */
export function maxUlpError(got: FloatArray, want: ArrayLike<number>, scale?: ArrayLike<number>): number {
  const { tiny, ulp, sub } = typeLimits(got);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Number.isNaN(w) || Number.isNaN(g)) {
      if (!(Number.isNaN(w) && Number.isNaN(g))) return Infinity;
      continue;
    }
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (g !== w) return Infinity;
      continue;
    }
    const s = Math.max(Math.abs(scale ? scale[i]! : w), Math.abs(w));
    const unit = s >= tiny ? 2 ** Math.floor(Math.log2(s)) * ulp : sub;
    worst = Math.max(worst, Math.abs(g - w) / unit);
  }
  return worst;
}

/** n values drawn uniformly from [lo, hi) by the seeded generator, in an array of the given type. */
export function randomArray<C extends Float32ArrayConstructor | Float64ArrayConstructor>(
  ctor: C,
  n: number,
  seed: number,
  lo?: number,
  hi?: number,
): InstanceType<C>;
export function randomArray<T extends FloatArray>(
  ctor: { new (n: number): T },
  n: number,
  seed: number,
  lo?: number,
  hi?: number,
): T;
export function randomArray(
  ctor: { new (n: number): FloatArray },
  n: number,
  seed: number,
  lo = -2,
  hi = 2,
): FloatArray {
  const r = rng(seed);
  const a = new ctor(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export interface RefLayerNorm {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

/** LayerNorm in float64: compensated two-pass moments of the row scaled by its largest magnitude. */
export function referenceLayerNorm(
  x: ArrayLike<number>,
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  o: { dim: number; eps?: number },
): RefLayerNorm {
  const { dim } = o;
  const eps = o.eps ?? 1e-5;
  const rows = x.length / dim;
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: dim }, (_, i) => x[r * dim + i]!);
    let m = 0;
    for (const v of row) m = Math.max(m, Math.abs(v));
    const s = m > 0 && Number.isFinite(m) ? m : 1;
    const scaled = row.map((v) => v / s);
    const mu = accurateSum(scaled) / dim;
    const dev = scaled.map((v) => v - mu);
    const variance = accurateSum(dev.map((d) => d * d)) / dim;
    const t = eps === 0 ? 0 : eps / (s * s);
    let q: number;
    let unit: (i: number) => number;
    if (!Number.isFinite(t)) {
      q = 1 / Math.sqrt(eps);
      rstd[r] = q;
      unit = (i) => (row[i]! - mu * s) * q;
    } else {
      q = 1 / Math.sqrt(variance + t);
      rstd[r] = q / s;
      unit = (i) => dev[i]! * q;
    }
    mean[r] = mu * s;
    for (let i = 0; i < dim; i++) {
      let v = unit(i);
      if (weight) v *= weight[i]!;
      if (bias) v += bias[i]!;
      y[r * dim + i] = v;
    }
  }
  return { y, mean, rstd };
}

export interface RefGrads {
  dx: Float64Array;
  dweight: Float64Array;
  dbias: Float64Array;
}

/** The analytic RMSNorm gradients in float64 (see native/kernels/backward.cc for the formulas). */
export function referenceRmsNormBackward(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  weight: ArrayLike<number> | null,
  o: { dim: number; eps?: number; offset?: number; partial?: number },
): RefGrads {
  const { dim } = o;
  const offset = o.offset ?? 0;
  const k = Math.min(dim, Math.max(1, Math.ceil((o.partial ?? 1) * dim)));
  const { rstd } = referenceRmsNorm(x, null, { dim, eps: o.eps, partial: o.partial });
  const dx = new Float64Array(x.length);
  const dweight = new Float64Array(dim);
  const dbias = new Float64Array(dim);
  for (let r = 0; r < rstd.length; r++) {
    const rs = rstd[r]!;
    const g = (i: number) => dy[r * dim + i]! * (weight ? offset + weight[i]! : 1);
    const dot = accurateSum(Array.from({ length: dim }, (_, i) => g(i) * x[r * dim + i]!));
    for (let i = 0; i < dim; i++) {
      const xi = x[r * dim + i]!;
      dx[r * dim + i] = rs * g(i) - (i < k ? (xi * rs * rs * rs * dot) / k : 0);
      dweight[i]! += dy[r * dim + i]! * xi * rs;
      dbias[i]! += dy[r * dim + i]!;
    }
  }
  return { dx, dweight, dbias };
}

/** The analytic LayerNorm gradients in float64. */
export function referenceLayerNormBackward(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  weight: ArrayLike<number> | null,
  o: { dim: number; eps?: number },
): RefGrads {
  const { dim } = o;
  const { mean, rstd } = referenceLayerNorm(x, null, null, o);
  const dx = new Float64Array(x.length);
  const dweight = new Float64Array(dim);
  const dbias = new Float64Array(dim);
  for (let r = 0; r < rstd.length; r++) {
    const rs = rstd[r]!;
    const xhat = (i: number) => (x[r * dim + i]! - mean[r]!) * rs;
    const g = (i: number) => dy[r * dim + i]! * (weight ? weight[i]! : 1);
    const a = accurateSum(Array.from({ length: dim }, (_, i) => g(i))) / dim;
    const b = accurateSum(Array.from({ length: dim }, (_, i) => g(i) * xhat(i))) / dim;
    for (let i = 0; i < dim; i++) {
      dx[r * dim + i] = rs * (g(i) - a - xhat(i) * b);
      dweight[i]! += dy[r * dim + i]! * xhat(i);
      dbias[i]! += dy[r * dim + i]!;
    }
  }
  return { dx, dweight, dbias };
}

/**
 * Central finite differences of L(p) = sum(dy * f(p)) with respect to each element of p (modified in place and
 * restored), in float64: an independent check of the analytic gradients.
 */
export function finiteDifference(
  p: Float64Array,
  dy: ArrayLike<number>,
  f: () => ArrayLike<number>,
  h = 1e-6,
): Float64Array {
  const grad = new Float64Array(p.length);
  const loss = () => {
    const y = f();
    return accurateSum(Array.from({ length: y.length }, (_, i) => dy[i]! * y[i]!));
  };
  for (let i = 0; i < p.length; i++) {
    const keep = p[i]!;
    const step = h * Math.max(1, Math.abs(keep));
    p[i] = keep + step;
    const up = loss();
    p[i] = keep - step;
    const down = loss();
    p[i] = keep;
    grad[i] = (up - down) / (2 * step);
  }
  return grad;
}

/** Largest |got - want| relative to the largest |want| or to `atLeast` if larger (a norm-wise relative error). */
export function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>, atLeast = 0): number {
  let scale = atLeast;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    const d = Math.abs(got[i]! - want[i]!);
    err = Math.max(err, Number.isNaN(d) ? Infinity : d);
  }
  return scale === 0 ? err : err / scale;
}

/** The error `call` throws (undefined when it returns). */
export function thrownBy(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  return undefined;
}
