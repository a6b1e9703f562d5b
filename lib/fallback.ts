// The pure-TypeScript implementation: the same entry points and the same algorithm as the native kernels
// (native/kernels.cc), used when no native binary loads or when RMSNORM_BACKEND=js. JavaScript arithmetic is
// float64, so float32 rows are computed entirely in double and rounded once on store.
import type { FloatArray, Kernels } from '../binding';
import { partialCount } from './validate';

const SAFE_SUM_MIN = 2 ** -969; // see kernels.cc: at or above this no underflowed square matters

/** x * 2^e, exact whenever the result is a normal number. */
function scale2(x: number, e: number): number {
  for (; e > 1022; e -= 1022) x *= 2 ** 1022;
  for (; e < -1022; e += 1022) x *= 2 ** -1022;
  return x * 2 ** e;
}

/** Sum of squares of x[base .. base+k), four accumulators as in the native kernels. */
function sumSquares(x: FloatArray, base: number, k: number): number {
  let a0 = 0;
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  let i = 0;
  for (; i + 4 <= k; i += 4) {
    const v0 = x[base + i]!;
    const v1 = x[base + i + 1]!;
    const v2 = x[base + i + 2]!;
    const v3 = x[base + i + 3]!;
    a0 += v0 * v0;
    a1 += v1 * v1;
    a2 += v2 * v2;
    a3 += v3 * v3;
  }
  for (; i < k; i++) {
    const v = x[base + i]!;
    a0 += v * v;
  }
  return a0 + a1 + (a2 + a3);
}

/**
 * The reciprocal RMS of one row as r * 2^-e. Rows whose sum of squares overflows or underflows float64 are
 * summed again scaled by a power of two (exact), and the power is carried to the output.
 */
function rowScale(x: FloatArray, base: number, k: number, eps: number, out: { r: number; e: number }): void {
  let ss = sumSquares(x, base, k);
  out.e = 0;
  if ((ss >= SAFE_SUM_MIN && ss <= Number.MAX_VALUE) || ss !== ss) {
    out.r = 1 / Math.sqrt(ss / k + eps);
    return;
  }
  let m = 0;
  for (let i = 0; i < k; i++) m = Math.max(m, Math.abs(x[base + i]!));
  if (m === 0 || m === Infinity) {
    out.r = 1 / Math.sqrt(ss / k + eps);
    return;
  }
  const e = Math.floor(Math.log2(m));
  ss = 0;
  for (let i = 0; i < k; i++) {
    const v = scale2(x[base + i]!, -e);
    ss += v * v;
  }
  const t = scale2(eps, -2 * e);
  if (t === Infinity) {
    out.r = 1 / Math.sqrt(eps);
    return;
  }
  out.r = 1 / Math.sqrt(ss / k + t);
  out.e = e;
}

export const fallback: Kernels = {
  rmsNorm(x, weight, bias, out, rstd, dim, eps, offset, partial) {
    const rows = x.length / dim;
    const k = partialCount(partial, dim);
    const s = { r: 0, e: 0 };
    for (let row = 0; row < rows; row++) {
      const base = row * dim;
      rowScale(x, base, k, eps, s);
      const e = s.e;
      const r = e === 0 ? s.r : scale2(s.r, -e);
      if (rstd) rstd[row] = r;
      if (e !== 0) {
        for (let i = 0; i < dim; i++) {
          let v = scale2(x[base + i]!, -e) * s.r;
          if (weight) v *= offset + weight[i]!;
          if (bias) v += bias[i]!;
          out[base + i] = v;
        }
      } else if (weight && bias) {
        for (let i = 0; i < dim; i++) out[base + i] = x[base + i]! * r * (offset + weight[i]!) + bias[i]!;
      } else if (weight) {
        for (let i = 0; i < dim; i++) out[base + i] = x[base + i]! * r * (offset + weight[i]!);
      } else if (bias) {
        for (let i = 0; i < dim; i++) out[base + i] = x[base + i]! * r + bias[i]!;
      } else {
        for (let i = 0; i < dim; i++) out[base + i] = x[base + i]! * r;
      }
    }
  },
};
