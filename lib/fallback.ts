// The pure-TypeScript implementation: the same entry points and the same algorithms as the native kernels
// (native/kernels/), used when no native binary loads or when RMSNORM_BACKEND=js. JavaScript arithmetic is
// float64, so float32 rows are computed entirely in double and rounded once on store.
import type { AsyncKernels, Calibration, Converter, DataArray, Kernels } from '../binding';
import { allocLike, changedWhileRunning, kindOf, partialCount } from './validate';

type FloatArray = Float32Array | Float64Array;
type Arr = FloatArray | null;

const SAFE_SUM_MIN = 2 ** -969; // see native/kernels/numerics.h: at or above this no underflowed square matters

/** x * 2^e, exact whenever the result is a normal number. */
function scale2(x: number, e: number): number {
  for (; e > 1022; e -= 1022) x *= 2 ** 1022;
  for (; e < -1022; e += 1022) x *= 2 ** -1022;
  return x * 2 ** e;
}

function exponentOf(m: number): number {
  return Math.floor(Math.log2(m)); // any nearby power of two works: it only keeps the scaled sums in range
}

/**
 * d * 2^-e * r * f for finite non-zero d and r, with no intermediate overflow or underflow: d, f and the
 * product of d with r are brought near 1 by exact powers of two, which are applied once at the end
 * (forward.cc's mul_exp).
 */
function mulExp(d: number, e: number, r: number, f: number): number {
  const ed = exponentOf(Math.abs(d));
  const p = scale2(d, -ed) * r;
  const ep = exponentOf(Math.abs(p));
  const ef = f - f === 0 && f !== 0 ? exponentOf(Math.abs(f)) : 0;
  return scale2(scale2(p, -ep) * scale2(f, -ef), ed + ep + ef - e);
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

/** A row's statistics: rstd = r * 2^-e, and outputs are (x * 2^-ce - meanS) * 2^(ce - e) * r. */
interface RowScale {
  mean: number;
  /** The mean times 2^-ce (= mean where ce is 0), with the fraction a subnormal mean loses. */
  meanS: number;
  ce: number;
  r: number;
  e: number;
}

/**
 * RMSNorm statistics of one row. Rows whose sum of squares overflows or underflows float64 are summed again
 * scaled by a power of two (exact), and the power is carried to the output.
 */
function rmsScale(x: FloatArray, base: number, k: number, eps: number, s: RowScale): void {
  let ss = sumSquares(x, base, k);
  s.mean = 0;
  s.meanS = 0;
  s.ce = 0;
  s.e = 0;
  if ((ss >= SAFE_SUM_MIN && ss <= Number.MAX_VALUE) || ss !== ss) {
    s.r = 1 / Math.sqrt(ss / k + eps);
    return;
  }
  let m = 0;
  for (let i = 0; i < k; i++) m = Math.max(m, Math.abs(x[base + i]!));
  if (m === 0 || m === Infinity) {
    s.r = 1 / Math.sqrt(ss / k + eps);
    return;
  }
  const e = exponentOf(m);
  ss = 0;
  for (let i = 0; i < k; i++) {
    const v = scale2(x[base + i]!, -e);
    ss += v * v;
  }
  const t = scale2(eps, -2 * e);
  if (t === Infinity) {
    s.r = 1 / Math.sqrt(eps);
    return;
  }
  s.r = 1 / Math.sqrt(ss / k + t);
  s.e = e;
}

/** LayerNorm statistics of one row: mean, then the corrected two-pass variance, as in native/kernels/numerics.h. */
function layerNormScale(x: FloatArray, base: number, n: number, eps: number, s: RowScale): void {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[base + i]!;
  const mean = sum / n;
  let sq = 0;
  let lin = 0;
  for (let i = 0; i < n; i++) {
    const d = x[base + i]! - mean;
    sq += d * d;
    lin += d;
  }
  s.mean = mean;
  s.meanS = mean;
  s.ce = 0;
  s.e = 0;
  // sq === 0 may be a constant row or float64 deviations whose squares underflowed, and a NaN sq a NaN or an
  // infinity in the row or a float64 sum that overflowed: the rescaled path below tells them apart (numerics.h
  // skips it for float32 data, where only a constant row gives 0 and only NaN or infinite data NaN).
  const inRange = mean - mean === 0 && sq <= Number.MAX_VALUE && sq >= SAFE_SUM_MIN;
  if (inRange) {
    const variance = (sq - (lin * lin) / n) / n;
    // A variance of 0: the mean corrected by the deviations' sum, as in numerics.h (a constant row's mean is
    // then the constant itself, not a few units off it).
    if (variance <= 0) s.mean = s.meanS = mean + lin / n;
    s.r = 1 / Math.sqrt(Math.max(variance, 0) + eps);
    return;
  }
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(x[base + i]!)); // NaN if the row holds one
  if (m === 0 || !(m <= Number.MAX_VALUE)) {
    s.r = 1 / Math.sqrt(eps); // zeros; or NaN or an infinity, where the mean is NaN or infinite: NaN out
    return;
  }
  const e = exponentOf(m);
  let sumS = 0;
  for (let i = 0; i < n; i++) sumS += scale2(x[base + i]!, -e);
  let meanS = sumS / n;
  let sqS = 0;
  let linS = 0;
  for (let i = 0; i < n; i++) {
    const d = scale2(x[base + i]!, -e) - meanS;
    sqS += d * d;
    linS += d;
  }
  const varS = (sqS - (linS * linS) / n) / n;
  if (varS <= 0) meanS += linS / n;
  s.mean = scale2(meanS, e);
  s.meanS = s.mean;
  const t = scale2(eps, -2 * e);
  // eps dominates (t overflowed), or the row is constant: var + eps is eps itself, rstd 1/sqrt(eps) unscaled.
  // A row below eps's square root keeps its scaled mean (its mean may be subnormal).
  if (t === Infinity || !(varS > 0)) {
    s.r = 1 / Math.sqrt(eps);
    if (t === Infinity) {
      s.meanS = meanS;
      s.ce = e;
    }
    return;
  }
  s.r = 1 / Math.sqrt(varS + t);
  s.meanS = meanS;
  s.ce = e;
  s.e = e;
}

/**
 * With partial < 1 a value past the first k may be far larger than those that make rstd, and its x * rstd
 * overflow float64 where the output is finite: possible only where rstd > 1, and then the tail's sum of
 * squares bounds its largest magnitude (forward.cc's tail_may_overflow). float32 data never overflows double.
 */
function tailMayOverflow(x: FloatArray, base: number, k: number, n: number, s: RowScale): boolean {
  if (k === n || x instanceof Float32Array || s.e !== 0 || !(s.r > 1)) return false;
  const ss = sumSquares(x, base + k, n - k);
  return !(ss * s.r * s.r < 2 ** 1020);
}

function rstdOf(s: RowScale): number {
  return s.e === 0 ? s.r : scale2(s.r, -s.e);
}

/**
 * y[base..base+n) = ((x * 2^-ce - meanS) * 2^(ce - e) * r) * (offset + w) + b. Rescaled rows, and rows where
 * the caller found an intermediate might overflow (`careful`), take the element-by-element path of mulExp.
 * `centered`: a LayerNorm row, scaled before the mean is subtracted (x - mean itself may overflow).
 */
function writeRow(
  x: FloatArray,
  y: FloatArray,
  base: number,
  n: number,
  w: Arr,
  b: Arr,
  offset: number,
  s: RowScale,
  centered: boolean,
  careful = false,
): void {
  const { mean, e, ce } = s;
  if (e !== 0 || ce !== 0 || careful) {
    const r = s.r;
    const de = centered ? e - ce : e;
    for (let i = 0; i < n; i++) {
      let d = x[base + i]!;
      if (centered) d = scale2(d, -ce) - s.meanS;
      const f = w ? offset + w[i]! : 1;
      let v = d - d === 0 && d !== 0 && r - r === 0 && r !== 0 ? mulExp(d, de, r, f) : scale2(d, -de) * r * f;
      if (b) v += b[i]!;
      y[base + i] = v;
    }
    return;
  }
  const r = s.r;
  if (w && b) for (let i = 0; i < n; i++) y[base + i] = (x[base + i]! - mean) * r * (offset + w[i]!) + b[i]!;
  else if (w) for (let i = 0; i < n; i++) y[base + i] = (x[base + i]! - mean) * r * (offset + w[i]!);
  else if (b) for (let i = 0; i < n; i++) y[base + i] = (x[base + i]! - mean) * r + b[i]!;
  else for (let i = 0; i < n; i++) y[base + i] = (x[base + i]! - mean) * r;
}

/** Column sums of dweight/dbias contributions, in double, then stored (or added) once per column. */
function storeGrad(target: Arr, sums: Float64Array, accumulate: boolean): void {
  if (!target) return;
  for (let j = 0; j < sums.length; j++) target[j] = accumulate ? target[j]! + sums[j]! : sums[j]!;
}

/** The float32/float64 kernels (positional arguments as in binding.d.ts, without dtype and castMode). */
const floatKernels = {
  rmsNorm(
    x: FloatArray,
    weight: Arr,
    bias: Arr,
    out: FloatArray,
    rstd: Arr,
    dim: number,
    eps: number,
    offset: number,
    partial: number,
  ) {
    const rows = x.length / dim;
    const k = partialCount(partial, dim);
    const s: RowScale = { mean: 0, meanS: 0, ce: 0, r: 0, e: 0 };
    for (let row = 0; row < rows; row++) {
      const base = row * dim;
      rmsScale(x, base, k, eps, s);
      if (rstd) rstd[row] = rstdOf(s);
      writeRow(x, out, base, dim, weight, bias, offset, s, false, tailMayOverflow(x, base, k, dim, s));
    }
  },

  layerNorm(x: FloatArray, weight: Arr, bias: Arr, out: FloatArray, mean: Arr, rstd: Arr, dim: number, eps: number) {
    const rows = x.length / dim;
    const s: RowScale = { mean: 0, meanS: 0, ce: 0, r: 0, e: 0 };
    for (let row = 0; row < rows; row++) {
      const base = row * dim;
      layerNormScale(x, base, dim, eps, s);
      if (rstd) rstd[row] = rstdOf(s);
      if (mean) mean[row] = s.mean;
      writeRow(x, out, base, dim, weight, bias, 0, s, true);
    }
  },

  addRmsNorm(
    x: FloatArray,
    residual: FloatArray,
    weight: Arr,
    bias: Arr,
    out: FloatArray,
    rstd: Arr,
    dim: number,
    eps: number,
    offset: number,
    partial: number,
    residualScale: number,
  ) {
    const rows = x.length / dim;
    const k = partialCount(partial, dim);
    const s: RowScale = { mean: 0, meanS: 0, ce: 0, r: 0, e: 0 };
    for (let row = 0; row < rows; row++) {
      const base = row * dim;
      // In double, rounded once to the element type on store (as the native kernels do).
      if (residualScale === 1) for (let i = base; i < base + dim; i++) residual[i] = residual[i]! + x[i]!;
      else for (let i = base; i < base + dim; i++) residual[i] = residual[i]! + x[i]! * residualScale;
      rmsScale(residual, base, k, eps, s);
      if (rstd) rstd[row] = rstdOf(s);
      writeRow(residual, out, base, dim, weight, bias, offset, s, false, tailMayOverflow(residual, base, k, dim, s));
    }
  },

  rmsNormBackward(
    dy: FloatArray,
    x: FloatArray,
    weight: Arr,
    rstd: Arr,
    dx: FloatArray,
    dweight: Arr,
    dbias: Arr,
    dim: number,
    eps: number,
    offset: number,
    partial: number,
    accumulate: boolean,
  ) {
    const rows = x.length / dim;
    const k = partialCount(partial, dim);
    const dw = new Float64Array(dweight ? dim : 0);
    const db = new Float64Array(dbias ? dim : 0);
    const s: RowScale = { mean: 0, meanS: 0, ce: 0, r: 0, e: 0 };
    for (let row = 0; row < rows; row++) {
      const base = row * dim;
      let r: number;
      if (rstd) {
        r = rstd[row]!;
      } else {
        rmsScale(x, base, k, eps, s);
        r = rstdOf(s);
      }
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += dy[base + i]! * (weight ? offset + weight[i]! : 1) * x[base + i]!;
      // dx = rstd * (g - xhat * q), xhat = x * rstd, q = rstd * dot / k: no factor leaves the data's scale.
      const q = (r * dot) / k;
      for (let i = 0; i < dim; i++) {
        const g = dy[base + i]!;
        const xhat = x[base + i]! * r;
        if (dweight) dw[i] = dw[i]! + g * xhat;
        if (dbias) db[i] = db[i]! + g;
        const gw = g * (weight ? offset + weight[i]! : 1);
        dx[base + i] = r * (i < k ? gw - xhat * q : gw);
      }
    }
    storeGrad(dweight, dw, accumulate);
    storeGrad(dbias, db, accumulate);
  },

  layerNormBackward(
    dy: FloatArray,
    x: FloatArray,
    weight: Arr,
    mean: Arr,
    rstd: Arr,
    dx: FloatArray,
    dweight: Arr,
    dbias: Arr,
    dim: number,
    eps: number,
    accumulate: boolean,
  ) {
    const rows = x.length / dim;
    const dw = new Float64Array(dweight ? dim : 0);
    const db = new Float64Array(dbias ? dim : 0);
    const s: RowScale = { mean: 0, meanS: 0, ce: 0, r: 0, e: 0 };
    for (let row = 0; row < rows; row++) {
      const base = row * dim;
      // xhat = (x * 2^-ce - mu) * 2^(ce - e) * r and dx = (r * (g - a - xhat * b)) * 2^-e: e and ce are
      // non-zero for float64 rows rescaled by layerNormScale (x - mean, or rstd itself, may leave float64's range).
      let mu: number;
      let r: number;
      let e = 0;
      let ce = 0;
      if (mean && rstd) {
        mu = mean[row]!;
        r = rstd[row]!;
      } else {
        layerNormScale(x, base, dim, eps, s);
        mu = s.meanS;
        r = s.r;
        e = s.e;
        ce = s.ce;
      }
      const xhatOf =
        e === 0 && ce === 0
          ? (i: number) => (x[base + i]! - mu) * r
          : (i: number) => scale2((scale2(x[base + i]!, -ce) - mu) * r, ce - e);
      let sg = 0;
      let sgx = 0;
      for (let i = 0; i < dim; i++) {
        const g = dy[base + i]! * (weight ? weight[i]! : 1);
        sg += g;
        sgx += g * xhatOf(i);
      }
      const a = sg / dim;
      const b = sgx / dim;
      for (let i = 0; i < dim; i++) {
        const gy = dy[base + i]!;
        const xhat = xhatOf(i);
        if (dweight) dw[i] = dw[i]! + gy * xhat;
        if (dbias) db[i] = db[i]! + gy;
        const g = gy * (weight ? weight[i]! : 1);
        dx[base + i] = e === 0 ? r * (g - a - xhat * b) : scale2(r * (g - a - xhat * b), -e);
      }
    }
    storeGrad(dweight, dw, accumulate);
    storeGrad(dbias, db, accumulate);
  },
};

// ---------------------------------------------------------------------------------------------------------
// Half precision: the bit rules of native/simd.h, then the float32 kernels on decoded copies. Arithmetic is
// float32 as in the native kernels: results are rounded to float32 first, then to the storage type.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}
function f32ToBf16(v: number): number {
  f32[0] = v;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40; // NaN: keep sign, quiet
  return ((u + 0x7fff + ((u >>> 16) & 1)) / 65536) | 0;
}
function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  if (exp === 0) return sign * man * 2 ** -24;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}
function f32ToF16(v: number): number {
  f32[0] = v;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff); // NaN, quiet
  if (a >= 0x477ff000) return sign | 0x7c00; // rounds past 65504: infinity
  if (a >= 0x38800000) {
    const r = a - 0x38000000; // rebias exponent 127 -> 15
    return sign | (((r + 0xfff + ((r >>> 13) & 1)) / 8192) | 0);
  }
  // Subnormal float16 (or zero): round a * 2^24 to an integer, ties to even.
  const scaled = Math.abs(f32[0]!) * 16777216;
  let q = Math.floor(scaled);
  const rest = scaled - q;
  if (rest > 0.5 || (rest === 0.5 && q & 1)) q++;
  return sign | q;
}

type Codec = { decode: (h: number) => number; encode: (v: number) => number };
const codecs: Record<number, Codec> = {
  1: { decode: bf16ToF32, encode: f32ToBf16 },
  2: { decode: f16ToF32, encode: f32ToF16 },
};

function decode(a: DataArray | null, codec: Codec): Float32Array | null {
  if (a === null) return null;
  if (a instanceof Float32Array) return a;
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = codec.decode(a[i]!);
  return out;
}
function encodeInto(src: ArrayLike<number>, dst: DataArray, codec: Codec): void {
  for (let i = 0; i < src.length; i++) dst[i] = codec.encode(src[i]!);
}

/**
 * castMode 'llama' on one row: h = round_T(fround(c * r32)), y = round_T(fround(fround(offset + w) * h) + b),
 * with c = x (RMSNorm) or fround(fround(x - hi) - lo) (LayerNorm, mean = hi + lo): the rule the native
 * kernels follow with float32 registers.
 */
function llamaRow(
  x: Float32Array,
  out: DataArray,
  base: number,
  dim: number,
  w: Float32Array | null,
  b: Float32Array | null,
  offset: number,
  mean: number,
  rstd: number,
  codec: Codec,
): void {
  const r32 = Math.fround(rstd);
  const hi = Math.fround(mean);
  const lo = Math.fround(mean - hi);
  const off = Math.fround(offset);
  for (let i = 0; i < dim; i++) {
    const c = mean === 0 ? x[base + i]! : Math.fround(Math.fround(x[base + i]! - hi) - lo);
    let v = codec.decode(codec.encode(Math.fround(c * r32)));
    if (w) v = Math.fround(v * Math.fround(off + w[i]!));
    if (b) v = Math.fround(v + b[i]!);
    out[base + i] = codec.encode(v);
  }
}

// The kernels over dense arrays (rows × dim, one head per row); `fallback` below brings other layouts to them.
const dense: Kernels = {
  rmsNorm(x, weight, bias, out, rstd, dim, eps, offset, partial, dtype, castMode) {
    if (!dtype)
      return floatKernels.rmsNorm(
        x as FloatArray,
        weight as Arr,
        bias as Arr,
        out as FloatArray,
        rstd as Arr,
        dim,
        eps,
        offset,
        partial,
      );
    const codec = codecs[dtype]!;
    const xf = decode(x, codec)!;
    const w = decode(weight, codec);
    const b = decode(bias, codec);
    const rows = x.length / dim;
    const r = rstd ? (rstd as Float32Array) : new Float32Array(rows);
    const yf = new Float32Array(x.length);
    floatKernels.rmsNorm(xf, w, b, yf, r, dim, eps, offset, partial);
    if (castMode === 1) {
      const k = partialCount(partial, dim);
      const s: RowScale = { mean: 0, meanS: 0, ce: 0, r: 0, e: 0 };
      for (let row = 0; row < rows; row++) {
        rmsScale(xf, row * dim, k, eps, s);
        llamaRow(xf, out, row * dim, dim, w, b, offset, 0, rstdOf(s), codec);
      }
    } else {
      encodeInto(yf, out, codec);
    }
  },

  layerNorm(x, weight, bias, out, mean, rstd, dim, eps, dtype, castMode) {
    if (!dtype)
      return floatKernels.layerNorm(
        x as FloatArray,
        weight as Arr,
        bias as Arr,
        out as FloatArray,
        mean as Arr,
        rstd as Arr,
        dim,
        eps,
      );
    const codec = codecs[dtype]!;
    const xf = decode(x, codec)!;
    const w = decode(weight, codec);
    const b = decode(bias, codec);
    const yf = new Float32Array(x.length);
    floatKernels.layerNorm(xf, w, b, yf, mean as Arr, rstd as Arr, dim, eps);
    if (castMode === 1) {
      const s: RowScale = { mean: 0, meanS: 0, ce: 0, r: 0, e: 0 };
      for (let row = 0; row < x.length / dim; row++) {
        layerNormScale(xf, row * dim, dim, eps, s);
        llamaRow(xf, out, row * dim, dim, w, b, 0, s.mean, rstdOf(s), codec);
      }
    } else {
      encodeInto(yf, out, codec);
    }
  },

  addRmsNorm(x, residual, weight, bias, out, rstd, dim, eps, offset, partial, dtype, castMode, ...layout) {
    const residualScale = layout[6] ?? 1;
    if (!dtype) {
      return floatKernels.addRmsNorm(
        x as FloatArray,
        residual as FloatArray,
        weight as Arr,
        bias as Arr,
        out as FloatArray,
        rstd as Arr,
        dim,
        eps,
        offset,
        partial,
        residualScale,
      );
    }
    const codec = codecs[dtype]!;
    // residual += x in float32 (x * residualScale in double), rounded once to the storage type; then rmsNorm
    // of the stored values.
    for (let i = 0; i < residual.length; i++) {
      const sum =
        residualScale === 1
          ? Math.fround(codec.decode(residual[i]!) + codec.decode(x[i]!))
          : codec.decode(residual[i]!) + codec.decode(x[i]!) * residualScale;
      residual[i] = codec.encode(sum);
    }
    const rows = x.length / dim;
    this.rmsNorm(residual, weight, bias, out, rstd, dim, eps, offset, partial, dtype, castMode, rows, 1, dim, dim, dim);
  },

  rmsNormBackward(dy, x, weight, rstd, dx, dweight, dbias, dim, eps, offset, partial, accumulate, dtype) {
    if (!dtype) {
      return floatKernels.rmsNormBackward(
        dy as FloatArray,
        x as FloatArray,
        weight as Arr,
        rstd as Arr,
        dx as FloatArray,
        dweight as Arr,
        dbias as Arr,
        dim,
        eps,
        offset,
        partial,
        accumulate,
      );
    }
    const codec = codecs[dtype]!;
    const dxf = new Float32Array(dx.length);
    floatKernels.rmsNormBackward(
      decode(dy, codec)!,
      decode(x, codec)!,
      decode(weight, codec),
      rstd as Arr,
      dxf,
      dweight as Arr,
      dbias as Arr,
      dim,
      eps,
      offset,
      partial,
      accumulate,
    );
    encodeInto(dxf, dx, codec);
  },

  layerNormBackward(dy, x, weight, mean, rstd, dx, dweight, dbias, dim, eps, accumulate, dtype) {
    if (!dtype) {
      return floatKernels.layerNormBackward(
        dy as FloatArray,
        x as FloatArray,
        weight as Arr,
        mean as Arr,
        rstd as Arr,
        dx as FloatArray,
        dweight as Arr,
        dbias as Arr,
        dim,
        eps,
        accumulate,
      );
    }
    const codec = codecs[dtype]!;
    const dxf = new Float32Array(dx.length);
    floatKernels.layerNormBackward(
      decode(dy, codec)!,
      decode(x, codec)!,
      decode(weight, codec),
      mean as Arr,
      rstd as Arr,
      dxf,
      dweight as Arr,
      dbias as Arr,
      dim,
      eps,
      accumulate,
    );
    encodeInto(dxf, dx, codec);
  },
};

// ---------------------------------------------------------------------------------------------------------
// Layouts: strided rows and heads. A call whose arrays are not dense gathers each array with rows into a dense
// copy of its (row, head) groups, runs the dense kernel, and writes the outputs' groups back: the elements
// between rows and heads are never read or written.

interface Groups {
  rows: number;
  heads: number;
  headStride: number;
  dim: number;
}

function isDense(g: Groups, a: DataArray, stride: number): boolean {
  return g.headStride === g.dim && stride === g.heads * g.dim && a.length === g.rows * stride;
}

/** The (row, head) groups of `a`, one after another. */
function gather(a: DataArray, stride: number, g: Groups): DataArray {
  const d = allocLike(kindOf(a), g.rows * g.heads * g.dim);
  let j = 0;
  for (let r = 0; r < g.rows; r++) {
    for (let h = 0; h < g.heads; h++) {
      const base = r * stride + h * g.headStride;
      for (let i = 0; i < g.dim; i++) d[j++] = a[base + i]!;
    }
  }
  return d;
}

/** Writes the groups gathered in `d` back to their places in `a`. */
function scatter(d: DataArray, a: DataArray, stride: number, g: Groups): void {
  let j = 0;
  for (let r = 0; r < g.rows; r++) {
    for (let h = 0; h < g.heads; h++) {
      const base = r * stride + h * g.headStride;
      for (let i = 0; i < g.dim; i++) a[base + i] = d[j++]!;
    }
  }
}

export const fallback: Kernels = {
  rmsNorm(x, weight, bias, out, rstd, dim, eps, offset, partial, dtype, castMode, ...layout) {
    if (layout[0] === undefined)
      return dense.rmsNorm(x, weight, bias, out, rstd, dim, eps, offset, partial, dtype, castMode);
    const [rows, heads, headStride, xs, os] = layout as number[] as [number, number, number, number, number];
    const g = { rows, heads, headStride, dim };
    if (isDense(g, x, xs) && isDense(g, out, os)) {
      return dense.rmsNorm(
        x,
        weight,
        bias,
        out,
        rstd,
        dim,
        eps,
        offset,
        partial,
        dtype,
        castMode,
        rows,
        1,
        dim,
        dim,
        dim,
      );
    }
    const y = allocLike(kindOf(out), rows * heads * dim);
    const u = rows * heads;
    dense.rmsNorm(
      gather(x, xs, g),
      weight,
      bias,
      y,
      rstd,
      dim,
      eps,
      offset,
      partial,
      dtype,
      castMode,
      u,
      1,
      dim,
      dim,
      dim,
    );
    scatter(y, out, os, g);
  },

  layerNorm(x, weight, bias, out, mean, rstd, dim, eps, dtype, castMode, ...layout) {
    if (layout[0] === undefined) return dense.layerNorm(x, weight, bias, out, mean, rstd, dim, eps, dtype, castMode);
    const [rows, heads, headStride, xs, os] = layout as number[] as [number, number, number, number, number];
    const g = { rows, heads, headStride, dim };
    if (isDense(g, x, xs) && isDense(g, out, os)) {
      return dense.layerNorm(x, weight, bias, out, mean, rstd, dim, eps, dtype, castMode, rows, 1, dim, dim, dim);
    }
    const y = allocLike(kindOf(out), rows * heads * dim);
    const u = rows * heads;
    dense.layerNorm(gather(x, xs, g), weight, bias, y, mean, rstd, dim, eps, dtype, castMode, u, 1, dim, dim, dim);
    scatter(y, out, os, g);
  },

  addRmsNorm(x, residual, weight, bias, out, rstd, dim, eps, offset, partial, dtype, castMode, ...layout) {
    if (layout[0] === undefined)
      return dense.addRmsNorm(x, residual, weight, bias, out, rstd, dim, eps, offset, partial, dtype, castMode);
    const [rows, heads, headStride, xs, rs, os, scale] = layout as number[] as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const g = { rows, heads, headStride, dim };
    const u = rows * heads;
    if (isDense(g, x, xs) && isDense(g, residual, rs) && isDense(g, out, os)) {
      return dense.addRmsNorm(
        x,
        residual,
        weight,
        bias,
        out,
        rstd,
        dim,
        eps,
        offset,
        partial,
        dtype,
        castMode,
        u,
        1,
        dim,
        dim,
        dim,
        dim,
        scale,
      );
    }
    const res = gather(residual, rs, g);
    const y = allocLike(kindOf(out), u * dim);
    dense.addRmsNorm(
      gather(x, xs, g),
      res,
      weight,
      bias,
      y,
      rstd,
      dim,
      eps,
      offset,
      partial,
      dtype,
      castMode,
      u,
      1,
      dim,
      dim,
      dim,
      dim,
      scale,
    );
    scatter(res, residual, rs, g);
    scatter(y, out, os, g);
  },

  rmsNormBackward(
    dy,
    x,
    weight,
    rstd,
    dx,
    dweight,
    dbias,
    dim,
    eps,
    offset,
    partial,
    accumulate,
    dtype,
    castMode,
    ...layout
  ) {
    if (layout[0] === undefined)
      return dense.rmsNormBackward(
        dy,
        x,
        weight,
        rstd,
        dx,
        dweight,
        dbias,
        dim,
        eps,
        offset,
        partial,
        accumulate,
        dtype,
        castMode,
      );
    const [rows, heads, headStride, dys, xs, dxs] = layout as number[] as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const g = { rows, heads, headStride, dim };
    const u = rows * heads;
    if (isDense(g, dy, dys) && isDense(g, x, xs) && isDense(g, dx, dxs)) {
      return dense.rmsNormBackward(
        dy,
        x,
        weight,
        rstd,
        dx,
        dweight,
        dbias,
        dim,
        eps,
        offset,
        partial,
        accumulate,
        dtype,
        castMode,
        u,
        1,
        dim,
        dim,
        dim,
        dim,
      );
    }
    const d = allocLike(kindOf(dx), u * dim);
    dense.rmsNormBackward(
      gather(dy, dys, g),
      gather(x, xs, g),
      weight,
      rstd,
      d,
      dweight,
      dbias,
      dim,
      eps,
      offset,
      partial,
      accumulate,
      dtype,
      castMode,
      u,
      1,
      dim,
      dim,
      dim,
      dim,
    );
    scatter(d, dx, dxs, g);
  },

  layerNormBackward(dy, x, weight, mean, rstd, dx, dweight, dbias, dim, eps, accumulate, dtype, castMode, ...layout) {
    if (layout[0] === undefined)
      return dense.layerNormBackward(
        dy,
        x,
        weight,
        mean,
        rstd,
        dx,
        dweight,
        dbias,
        dim,
        eps,
        accumulate,
        dtype,
        castMode,
      );
    const [rows, heads, headStride, dys, xs, dxs] = layout as number[] as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const g = { rows, heads, headStride, dim };
    const u = rows * heads;
    if (isDense(g, dy, dys) && isDense(g, x, xs) && isDense(g, dx, dxs)) {
      return dense.layerNormBackward(
        dy,
        x,
        weight,
        mean,
        rstd,
        dx,
        dweight,
        dbias,
        dim,
        eps,
        accumulate,
        dtype,
        castMode,
        u,
        1,
        dim,
        dim,
        dim,
        dim,
      );
    }
    const d = allocLike(kindOf(dx), u * dim);
    dense.layerNormBackward(
      gather(dy, dys, g),
      gather(x, xs, g),
      weight,
      mean,
      rstd,
      d,
      dweight,
      dbias,
      dim,
      eps,
      accumulate,
      dtype,
      castMode,
      u,
      1,
      dim,
      dim,
      dim,
      dim,
    );
    scatter(d, dx, dxs, g);
  },
};

/** The calibration entry, as the native module's: takes any arguments, does nothing, returns undefined. */
export const calibrationFallback: Calibration = {
  noop() {},
};

/** The conversions of index.ts's toBFloat16 & co. */
export const convertFallback: Converter = {
  convert(direction, src, out) {
    const codec = codecs[direction < 2 ? 1 : 2]!;
    if (direction === 0 || direction === 2) encodeInto(src, out, codec);
    else for (let i = 0; i < src.length; i++) out[i] = codec.decode(src[i]!);
  },
};

/**
 * The fallback's async forms: JavaScript has no other thread to run them on, so each runs on the event loop in
 * a later macrotask (setImmediate) and resolves when done. Results are identical to the sync forms.
 */
export const fallbackAsync: AsyncKernels = {
  // Each call records its arrays now; one detached or resized before the work runs rejects with
  // ERR_INVALID_STATE and nothing is written (changedWhileRunning, lib/validate.ts).
  rmsNormAsync: (...args) => later(changedWhileRunning('rmsNorm', args), () => fallback.rmsNorm(...args)),
  layerNormAsync: (...args) => later(changedWhileRunning('layerNorm', args), () => fallback.layerNorm(...args)),
  addRmsNormAsync: (...args) => later(changedWhileRunning('addRmsNorm', args), () => fallback.addRmsNorm(...args)),
  rmsNormBackwardAsync: (...args) =>
    later(changedWhileRunning('rmsNormBackward', args), () => fallback.rmsNormBackward(...args)),
  layerNormBackwardAsync: (...args) =>
    later(changedWhileRunning('layerNormBackward', args), () => fallback.layerNormBackward(...args)),
};

function later(check: () => void, work: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    setImmediate(() => {
      try {
        check();
        work();
        resolve();
      } catch (error) {
        reject(error);
      }
    });
  });
}
