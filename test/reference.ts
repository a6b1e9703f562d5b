// An independent float64 reference for the numerical tests, written for clarity, not speed. It scales each
// row by its largest magnitude before squaring (unconditionally, unlike the kernels), so it stays accurate for
// float64 rows whose squares over- or underflow.
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

/** Deterministic pseudo-random values (xorshift), so a failure reproduces. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export function randomArray<T extends FloatArray>(ctor: { new (n: number): T }, n: number, seed: number, lo = -2, hi = 2): T {
  const r = rng(seed);
  const a = new ctor(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}
