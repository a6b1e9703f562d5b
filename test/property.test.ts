// Property-based and differential tests of every op, on every backend (see vitest.config.mts): random shapes,
// options and rows (ordinary, subnormal, near overflow, constant, zero, with NaN and infinities), every array a
// view at an odd offset of a guarded backing array. Each call is checked against the float64 reference of
// test/reference.ts element by element, run the same way on the fallback's positional kernels, and run again
// through the async twin, which must give the same bits. Settings: test/property-config.ts.
//
// Every output of a finite row is checked except one whose value before the bias, (x - mean) * rstd *
// (offset + w), leaves the element type's range; intermediates beyond it are not excused (a value past the
// first k of a partial rmsNorm with x * rstd far past the largest value and a small weight, a LayerNorm row
// spanning more than the largest value, rows of subnormals).
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addRmsNorm,
  addRmsNormAsync,
  layerNorm,
  layerNormAsync,
  layerNormBackward,
  layerNormBackwardAsync,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
} from '../dist/index.js';
import { fallback } from '../dist/fallback.js';
import { count, params, runs, seed, tally } from './property-config';
import {
  budget,
  Checker,
  guarded,
  isF32,
  matrix,
  maxOf,
  rowRecipe,
  sameBits,
  subOf,
  TYPES,
  ulpOf,
  untouchedOutside,
  vectorRecipe,
  vectorValues,
  type Ctor,
} from './property-numeric';
import { accurateSum, type FloatArray } from './reference';

afterAll(() => {
  if (process.env.RMSNORM_PROPERTY_REPORT)
    console.log(
      `property.test.ts (${process.env.RMSNORM_TEST_BACKEND}, seed ${seed}, ${runs} runs): ${JSON.stringify(tally)}`,
    );
});

const dims = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 40 }) },
  { weight: 2, arbitrary: fc.constantFrom(47, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 1025) },
);

/** A forward call's shape and options (values are drawn from the recipes). */
function forwardCase(T: Ctor, o: { moderate?: boolean } = {}) {
  return dims.chain((dim) =>
    fc.record({
      dim: fc.constant(dim),
      rows: fc.array(rowRecipe(T, dim, { nonFinite: !o.moderate, moderate: o.moderate }), {
        minLength: 0,
        maxLength: 4,
      }),
      residualRows: fc.array(rowRecipe(T, dim, { nonFinite: !o.moderate, moderate: o.moderate }), {
        minLength: 4,
        maxLength: 4,
      }),
      weight: fc.option(vectorRecipe(), { nil: null }),
      bias: fc.option(vectorRecipe(), { nil: null }),
      offset: fc.oneof(fc.constant(0), fc.constantFrom(1, -1, 0.5), fc.float({ min: -8, max: 8, noNaN: true })),
      partial: fc.oneof(
        { weight: 2, arbitrary: fc.constant(1) },
        { weight: 1, arbitrary: fc.constantFrom(0.25, 0.5, 1e-9) },
        { weight: 1, arbitrary: fc.double({ min: 1e-6, max: 1, noNaN: true }) },
      ),
      eps: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(1e-5, 0, 1e-12, 0.5, 1e30) },
        { weight: 1, arbitrary: fc.double({ min: 0, max: 1e3, noNaN: true }) },
      ),
      out: fc.constantFrom('new', 'view', 'inPlace'),
      stats: fc.boolean(),
      at: fc.tuple(fc.nat(5), fc.nat(5), fc.nat(5), fc.nat(5), fc.nat(5), fc.nat(5), fc.nat(5)),
    }),
  );
}

/** x * 2^e, exact whenever the result is a normal number. */
function scale2(x: number, e: number): number {
  for (; e > 1000; e -= 1000) x *= 2 ** 1000;
  for (; e < -1000; e += 1000) x *= 2 ** -1000;
  return x * 2 ** e;
}

/** [m, e] with v = m * 2^e and 1 <= |m| < 2, for finite non-zero v (exact). */
function split(v: number): [number, number] {
  let e = Math.floor(Math.log2(Math.abs(v)));
  let m = scale2(v, -e);
  if (Math.abs(m) >= 2) [m, e] = [m / 2, e + 1];
  if (Math.abs(m) < 1) [m, e] = [m * 2, e - 1];
  return [m, e];
}

/** a * b * 2^e as [m, e'] (a * b * 2^e = m * 2^e'), with no overflow or underflow on the way. */
function product(a: number, b: number, e: number): [number, number] {
  if (!Number.isFinite(a) || !Number.isFinite(b) || a === 0 || b === 0) return [a * b, e];
  const [ma, ea] = split(a);
  const [mb, eb] = split(b);
  return [ma * mb, ea + eb + e];
}

/**
 * The float64 reference of each row: rstd, mean and the normalized values (before weight and bias), computed
 * on the row scaled by an exact power of two near its largest magnitude, with compensated sums. (It differs
 * from test/reference.ts, which divides by the largest magnitude itself, in keeping full precision when that
 * magnitude squared is subnormal.) Each normalized value is given as normedM * 2^normedE, exact where it
 * leaves float64's range (x * rstd of a huge value past the first k of a partial rmsNorm, which a small weight
 * may bring back).
 */
function reference(op: 'rms' | 'ln', x: FloatArray, dim: number, eps: number, partial: number) {
  const rows = dim === 0 ? 0 : x.length / dim;
  const k = op === 'rms' ? Math.min(dim, Math.max(1, Math.ceil(partial * dim))) : dim;
  const normedM = new Float64Array(x.length);
  const normedE = new Float64Array(x.length);
  const rstd = new Float64Array(rows);
  // rstd = rstdQ * 2^-rstdE, exact where rstd itself overflows float64 (rows of subnormals); meanS and
  // absMeanS are the mean and the mean magnitude times 2^-rstdE, exact where those underflow.
  const rstdQ = new Float64Array(rows);
  const rstdE = new Float64Array(rows);
  const meanS = new Float64Array(rows);
  const absMeanS = new Float64Array(rows);
  const mean = new Float64Array(rows);
  const absMean = new Float64Array(rows);
  const setNormed = (j: number, [m, ex]: [number, number]) => {
    normedM[j] = m;
    normedE[j] = ex;
  };
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * dim, (r + 1) * dim));
    let m = 0;
    for (let i = 0; i < k; i++) m = Math.max(m, Math.abs(row[i]!));
    // The sum may overflow float64: then the terms are divided first.
    const absSum = accurateSum(row.map(Math.abs));
    absMean[r] = Number.isFinite(absSum) ? absSum / dim : accurateSum(row.map((v) => Math.abs(v) / dim));
    if (!Number.isFinite(m) || m === 0) {
      // NaN, an infinity or all zeros among the first k: the plain formula in IEEE arithmetic.
      const mu = op === 'ln' ? accurateSum(row) / dim : 0;
      const dev = row.map((v) => v - mu);
      const rs = 1 / Math.sqrt(accurateSum(dev.slice(0, k).map((d) => d * d)) / k + eps);
      rstd[r] = rstdQ[r] = rs;
      mean[r] = meanS[r] = mu;
      absMeanS[r] = absMean[r]!;
      // (d * rs itself may overflow past the first k, all zeros there.)
      dev.forEach((d, i) => setNormed(r * dim + i, product(d, rs, 0)));
      continue;
    }
    const e = Math.floor(Math.log2(m));
    const xs = row.map((v) => scale2(v, -e));
    const mu = op === 'ln' ? accurateSum(xs) / dim : 0;
    const dev = xs.map((v) => v - mu);
    const ss = accurateSum(dev.slice(0, k).map((d) => d * d)) / k;
    const t = scale2(eps, -2 * e);
    const q = t === Infinity ? 0 : 1 / Math.sqrt(ss + (t < 2 ** -1000 ? 0 : t));
    if (t === Infinity) {
      // eps dwarfs the row: rstd = 1 / sqrt(eps) to double precision.
      const rs = 1 / Math.sqrt(eps);
      rstd[r] = rstdQ[r] = rs;
      mean[r] = meanS[r] = scale2(mu, e);
      absMeanS[r] = absMean[r]!;
      // (x * 2^-e - mean * 2^-e) * 2^e * rstd: a value past the first k may be huge, and the mean of a row
      // of subnormals keeps its fraction only scaled.
      dev.forEach((d, i) => setNormed(r * dim + i, Number.isFinite(d) ? product(d, rs, e) : product(row[i]!, rs, 0)));
      continue;
    }
    rstd[r] = scale2(q, -e);
    rstdQ[r] = q;
    rstdE[r] = e;
    mean[r] = scale2(mu, e);
    meanS[r] = mu;
    absMeanS[r] = accurateSum(xs.map(Math.abs)) / dim;
    // rmsNorm: x * 2^-e * q from x itself, since a value past the first k may be too large or too small to
    // scale by 2^-e on its own.
    dev.forEach((d, i) => setNormed(r * dim + i, op === 'rms' ? product(row[i]!, q, -e) : product(d, q, 0)));
  }
  return { normedM, normedE, rstd, rstdQ, rstdE, mean, meanS, absMean, absMeanS };
}

/**
 * Checks a forward op's outputs against the reference: y element by element, rstd and mean per row.
 * `data` holds the values the statistics are taken over (x, or addRmsNorm's new residual).
 */
function checkForward(
  c: Checker,
  T: Ctor,
  op: 'rms' | 'ln',
  data: FloatArray,
  dim: number,
  p: { w: FloatArray | null; b: FloatArray | null; offset: number; eps: number; partial: number },
  got: { y: FloatArray; rstd: FloatArray | null; mean: FloatArray | null },
  label: string,
) {
  const ref = reference(op, data, dim, p.eps, p.partial);
  const B = budget(T);
  const max = maxOf(T);
  const offset = op === 'rms' ? p.offset : 0;
  for (let r = 0; r < ref.rstd.length; r++) {
    const row = data.subarray(r * dim, (r + 1) * dim);
    const finiteRow = row.every(Number.isFinite);
    // NaN or an infinity must stay in its row; LayerNorm documents no values for such a row.
    if (op === 'ln' && !finiteRow) continue;
    count(`${label} rows`);
    // eps = 0 with a constant row: 0 / 0, NaN throughout (the mean is the constant itself, not a rounding away).
    if (op === 'ln' && p.eps === 0 && row.every((v) => v === row[0])) {
      for (let i = 0; i < dim; i++)
        c.close(`${label} y[${r}, ${i}] (constant row, eps 0)`, got.y[r * dim + i]!, NaN, 0);
      continue;
    }
    let rstd = ref.rstd[r]!;
    let rstdQ = ref.rstdQ[r]!;
    let rstdE = ref.rstdE[r]!;
    let mean = ref.mean[r]!;
    let meanS = ref.meanS[r]!;
    let absMeanS = ref.absMeanS[r]!;
    // A constant row (eps > 0): x - mean is exactly 0, var 0, rstd 1 / sqrt(eps). test/reference.ts rescales
    // eps by the row's magnitude first, which underflows for tiny eps or huge rows and gives NaN instead.
    const constant = op === 'ln' && p.eps > 0 && finiteRow && row.every((v) => v === row[0]);
    if (constant) {
      mean = row[0]!;
      rstd = rstdQ = 1 / Math.sqrt(p.eps);
      rstdE = 0;
      meanS = mean;
      absMeanS = ref.absMean[r]!;
    }
    if (got.rstd) c.close(`${label} rstd[${r}]`, got.rstd[r]!, rstd, B * ulpOf(T, rstd));
    // The mean's error is relative to the mean of the magnitudes (the sum may cancel).
    const absMean = ref.absMean[r]!;
    if (got.mean) c.close(`${label} mean[${r}]`, got.mean[r]!, mean, B * ulpOf(T, Math.abs(mean) + absMean + 1 / rstd));
    for (let i = 0; i < dim; i++) {
      const xi = row[i]!;
      const wv = p.w ? p.w[i]! : 0;
      const wi = p.w ? offset + wv : 1;
      const bi = p.b ? p.b[i]! : 0;
      const wMag = p.w ? Math.abs(offset) + Math.abs(wv) : 1;
      // normed = nm * 2^ne: the products below are exact-range even where normed alone overflows float64.
      const nm = constant ? 0 : ref.normedM[r * dim + i]!;
      const ne = constant ? 0 : ref.normedE[r * dim + i]!;
      const unbiased = scale2(...product(nm, wi, ne));
      // An output whose value before the bias leaves T's range is not checked (the bias could bring it back;
      // the kernels do not try). Intermediates past T's range are no excuse.
      if (Number.isFinite(nm) && (Math.abs(wi) > max || Math.abs(unbiased) > max)) continue;
      const want = unbiased + bi;
      // (|x| + |mean| + mean |x|) * rstd, with rstd = rstdQ * 2^-rstdE and each term scaled by 2^-rstdE first:
      // rstd itself or the sum may overflow float64, and the means of rows of subnormals underflow.
      const scale = (scale2(Math.abs(xi), -rstdE) + Math.abs(meanS) + absMeanS) * rstdQ * wMag + Math.abs(bi);
      const scaleNormed = scale2(Math.abs(nm) * wMag, ne) + Math.abs(bi);
      // Error budget relative to the scale of the terms; for rmsNorm that is |x * rstd| (times the weight),
      // exact even when rstd itself overflows.
      const s = op === 'rms' ? scaleNormed : Number.isFinite(scale) ? scale : scaleNormed;
      // Subnormal intermediates lose absolute precision: a product that underflows, times the weight after it.
      const tol = B * ulpOf(T, s) + 2 * subOf(T) * (Math.abs(wi) + 1);
      c.close(`${label} y[${r}, ${i}]`, got.y[r * dim + i]!, want, tol);
    }
  }
}

describe.each(TYPES)('%s forward ops: every backend and the fallback against the float64 reference', (T) => {
  const name = T.name;

  it(`rmsNorm, and rmsNormAsync gives the same bits (${name})`, async () => {
    await fc.assert(
      fc.asyncProperty(forwardCase(T), async (k) => {
        const { dim } = k;
        const x0 = matrix(T, dim, k.rows);
        const n = x0.length;
        const rows = k.rows.length;
        const x = guarded(T, n, k.at[0], x0);
        const w = k.weight ? guarded(T, dim, k.at[1], vectorValues(T, dim, k.weight)) : null;
        const b = k.bias ? guarded(T, dim, k.at[2], vectorValues(T, dim, k.bias)) : null;
        const out = k.out === 'view' ? guarded(T, n, k.at[3]) : null;
        const rstd = k.stats ? guarded(T, rows, k.at[4]) : null;
        const offset = w ? k.offset : 0;
        const opts = {
          dim,
          eps: k.eps,
          partial: k.partial,
          offset,
          bias: b?.view ?? null,
          rstd: rstd?.view ?? null,
          out: k.out === 'inPlace' ? x.view : (out?.view ?? null),
        };
        const y = rmsNorm(x.view, w?.view ?? null, opts);
        count('rmsNorm calls');
        const c = new Checker(T);
        for (const g of [x, w, b, out, rstd]) if (g && !untouchedOutside(g)) c.fail('wrote outside a view');
        if (k.out !== 'inPlace' && !sameBits(x.view, x0)) c.fail('x was written');
        const p = { w: w?.view ?? null, b: b?.view ?? null, offset, eps: k.eps, partial: k.partial };
        checkForward(c, T, 'rms', x0, dim, p, { y, rstd: rstd?.view ?? null, mean: null }, 'rmsNorm');
        // The fallback's positional kernel on the same inputs.
        const yJs = new T(n);
        const rstdJs = new T(rows);
        fallback.rmsNorm(x0, p.w, p.b, yJs, rstdJs, dim, k.eps, offset, k.partial, 0, 0, rows, 1, dim, dim, dim);
        checkForward(c, T, 'rms', x0, dim, p, { y: yJs, rstd: rstdJs, mean: null }, 'fallback rmsNorm');
        // The async twin, on fresh copies: the same bits.
        const xa = x0.slice();
        const rstdA = rstd ? new T(rows) : null;
        const ya = await rmsNormAsync(xa, p.w, { ...opts, rstd: rstdA, out: k.out === 'inPlace' ? xa : null });
        if (!sameBits(ya, y) || !sameBits(rstdA, rstd?.view ?? null))
          c.fail('rmsNormAsync gave other bits than rmsNorm');
        c.done({ T: name, ...k });
      }),
      params(`rmsNorm ${name}`),
    );
  });

  it(`layerNorm, and layerNormAsync gives the same bits (${name})`, async () => {
    await fc.assert(
      fc.asyncProperty(forwardCase(T), async (k) => {
        const { dim } = k;
        const x0 = matrix(T, dim, k.rows);
        const n = x0.length;
        const rows = k.rows.length;
        const x = guarded(T, n, k.at[0], x0);
        const w = k.weight ? guarded(T, dim, k.at[1], vectorValues(T, dim, k.weight)) : null;
        const b = k.bias ? guarded(T, dim, k.at[2], vectorValues(T, dim, k.bias)) : null;
        const out = k.out === 'view' ? guarded(T, n, k.at[3]) : null;
        const mean = k.stats ? guarded(T, rows, k.at[4]) : null;
        const rstd = k.stats ? guarded(T, rows, k.at[5]) : null;
        const opts = {
          dim,
          eps: k.eps,
          mean: mean?.view ?? null,
          rstd: rstd?.view ?? null,
          out: k.out === 'inPlace' ? x.view : (out?.view ?? null),
        };
        const y = layerNorm(x.view, w?.view ?? null, b?.view ?? null, opts);
        count('layerNorm calls');
        const c = new Checker(T);
        for (const g of [x, w, b, out, mean, rstd]) if (g && !untouchedOutside(g)) c.fail('wrote outside a view');
        if (k.out !== 'inPlace' && !sameBits(x.view, x0)) c.fail('x was written');
        const p = { w: w?.view ?? null, b: b?.view ?? null, offset: 0, eps: k.eps, partial: 1 };
        checkForward(c, T, 'ln', x0, dim, p, { y, rstd: rstd?.view ?? null, mean: mean?.view ?? null }, 'layerNorm');
        const yJs = new T(n);
        const meanJs = new T(rows);
        const rstdJs = new T(rows);
        fallback.layerNorm(x0, p.w, p.b, yJs, meanJs, rstdJs, dim, k.eps, 0, 0, rows, 1, dim, dim, dim);
        checkForward(c, T, 'ln', x0, dim, p, { y: yJs, rstd: rstdJs, mean: meanJs }, 'fallback layerNorm');
        const xa = x0.slice();
        const meanA = mean ? new T(rows) : null;
        const rstdA = rstd ? new T(rows) : null;
        const ya = await layerNormAsync(xa, p.w, p.b, {
          ...opts,
          mean: meanA,
          rstd: rstdA,
          out: k.out === 'inPlace' ? xa : null,
        });
        if (!sameBits(ya, y) || !sameBits(meanA, mean?.view ?? null) || !sameBits(rstdA, rstd?.view ?? null))
          c.fail('layerNormAsync gave other bits than layerNorm');
        c.done({ T: name, ...k });
      }),
      params(`layerNorm ${name}`),
    );
  });

  it(`addRmsNorm: residual += x exactly rounded, then rmsNorm of it; the async twin gives the same bits (${name})`, async () => {
    await fc.assert(
      fc.asyncProperty(forwardCase(T), async (k) => {
        const { dim } = k;
        const x0 = matrix(T, dim, k.rows);
        const n = x0.length;
        const rows = k.rows.length;
        const res0 = matrix(T, dim, k.residualRows.slice(0, rows));
        const x = guarded(T, n, k.at[0], x0);
        const res = guarded(T, n, k.at[6], res0);
        const w = k.weight ? guarded(T, dim, k.at[1], vectorValues(T, dim, k.weight)) : null;
        const b = k.bias ? guarded(T, dim, k.at[2], vectorValues(T, dim, k.bias)) : null;
        const out = k.out === 'view' ? guarded(T, n, k.at[3]) : null;
        const rstd = k.stats ? guarded(T, rows, k.at[4]) : null;
        const offset = w ? k.offset : 0;
        const opts = {
          dim,
          eps: k.eps,
          partial: k.partial,
          offset,
          bias: b?.view ?? null,
          rstd: rstd?.view ?? null,
          out: k.out === 'inPlace' ? x.view : (out?.view ?? null),
        };
        const y = addRmsNorm(x.view, res.view, w?.view ?? null, opts);
        count('addRmsNorm calls');
        const c = new Checker(T);
        for (const g of [x, res, w, b, out, rstd]) if (g && !untouchedOutside(g)) c.fail('wrote outside a view');
        const sum = new T(n);
        for (let i = 0; i < n; i++) sum[i] = res0[i]! + x0[i]!; // one rounding to T: exact for float32 through double
        if (
          !sameBits(res.view, sum) &&
          !Array.from(res.view).every((v, i) => v === sum[i] || (Number.isNaN(v) && Number.isNaN(sum[i]!)))
        ) {
          c.fail('residual is not residual + x rounded to the element type');
        }
        const p = { w: w?.view ?? null, b: b?.view ?? null, offset, eps: k.eps, partial: k.partial };
        checkForward(c, T, 'rms', sum, dim, p, { y, rstd: rstd?.view ?? null, mean: null }, 'addRmsNorm');
        const resJs = res0.slice();
        const yJs = new T(n);
        fallback.addRmsNorm(
          x0,
          resJs,
          p.w,
          p.b,
          yJs,
          null,
          dim,
          k.eps,
          offset,
          k.partial,
          0,
          0,
          n / dim,
          1,
          dim,
          dim,
          dim,
          dim,
          1,
        );
        checkForward(c, T, 'rms', sum, dim, p, { y: yJs, rstd: null, mean: null }, 'fallback addRmsNorm');
        const xa = x0.slice();
        const resA = res0.slice();
        const rstdA = rstd ? new T(rows) : null;
        const ya = await addRmsNormAsync(xa, resA, p.w, { ...opts, rstd: rstdA, out: k.out === 'inPlace' ? xa : null });
        if (!sameBits(ya, y) || !sameBits(resA, res.view) || !sameBits(rstdA, rstd?.view ?? null))
          c.fail('addRmsNormAsync gave other bits than addRmsNorm');
        c.done({ T: name, ...k });
      }),
      params(`addRmsNorm ${name}`),
    );
  });

  it(`rows are independent: a row gives the same bits alone as among others, whatever the others hold (${name})`, () => {
    fc.assert(
      fc.property(forwardCase(T), fc.nat(), (k, pick) => {
        if (k.rows.length === 0) return;
        const { dim } = k;
        const x = matrix(T, dim, k.rows);
        const r = pick % k.rows.length;
        const row = x.slice(r * dim, (r + 1) * dim);
        const w = k.weight ? vectorValues(T, dim, k.weight) : null;
        const b = k.bias ? vectorValues(T, dim, k.bias) : null;
        const o = { dim, eps: k.eps, partial: k.partial, offset: w ? k.offset : 0, bias: b };
        expect(sameBits(rmsNorm(x, w, o).subarray(r * dim, (r + 1) * dim), rmsNorm(row, w, o))).toBe(true);
        expect(
          sameBits(
            layerNorm(x, w, b, { dim, eps: k.eps }).subarray(r * dim, (r + 1) * dim),
            layerNorm(row, w, b, { dim, eps: k.eps }),
          ),
        ).toBe(true);
        count('row-independence calls', 4);
      }),
      params(`rows ${name}`),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Backward passes, on moderate values: gradients against the analytic float64 ones, element by element,
// relative to the sum of the magnitudes of their terms.

function backwardCase(T: Ctor) {
  return dims.chain((dim) =>
    fc.record({
      dim: fc.constant(dim),
      x: fc.array(rowRecipe(T, dim, { nonFinite: false, moderate: true }), { minLength: 1, maxLength: 4 }),
      dy: fc.array(rowRecipe(T, dim, { nonFinite: false, moderate: true }), { minLength: 4, maxLength: 4 }),
      weight: fc.option(
        fc.record({
          scale: fc.constantFrom(1, 0.5, 4),
          seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
          zeros: fc.boolean(),
        }),
        { nil: null },
      ),
      offset: fc.oneof(fc.constant(0), fc.constantFrom(1, -0.5)),
      partial: fc.oneof(fc.constant(1), fc.constantFrom(0.25, 0.5), fc.double({ min: 1e-3, max: 1, noNaN: true })),
      eps: fc.constantFrom(1e-5, 1e-3, 0.5),
      saved: fc.boolean(),
      inPlace: fc.boolean(),
      accumulate: fc.boolean(),
      grads: fc.boolean(),
      at: fc.tuple(fc.nat(5), fc.nat(5), fc.nat(5), fc.nat(5)),
    }),
  );
}

interface Grad {
  dx: Float64Array;
  dxMag: Float64Array;
  dw: Float64Array;
  dwMag: Float64Array;
  db: Float64Array;
  dbMag: Float64Array;
}

/** Analytic gradients from the given per-row statistics, with the magnitude of each result's terms. */
function refBackward(
  op: 'rms' | 'ln',
  dy: FloatArray,
  x: FloatArray,
  w: FloatArray | null,
  dim: number,
  offset: number,
  k: number,
  mean: ArrayLike<number>,
  rstd: ArrayLike<number>,
): Grad {
  const n = x.length;
  const g: Grad = {
    dx: new Float64Array(n),
    dxMag: new Float64Array(n),
    dw: new Float64Array(dim),
    dwMag: new Float64Array(dim),
    db: new Float64Array(dim),
    dbMag: new Float64Array(dim),
  };
  const dwTerms: number[][] = Array.from({ length: dim }, () => []);
  const dbTerms: number[][] = Array.from({ length: dim }, () => []);
  for (let r = 0; r < rstd.length; r++) {
    const rs = rstd[r]!;
    const mu = mean[r]!;
    const gi = (i: number) => dy[r * dim + i]! * (w ? offset + w[i]! : 1);
    const xs = (i: number) => x[r * dim + i]!;
    if (op === 'rms') {
      const terms = Array.from({ length: dim }, (_, i) => gi(i) * xs(i));
      const dot = accurateSum(terms);
      const dotMag = accurateSum(terms.map(Math.abs));
      for (let i = 0; i < dim; i++) {
        g.dx[r * dim + i] = rs * gi(i) - (i < k ? (xs(i) * rs * rs * rs * dot) / k : 0);
        g.dxMag[r * dim + i] = Math.abs(rs * gi(i)) + (i < k ? (Math.abs(xs(i)) * rs * rs * rs * dotMag) / k : 0);
        dwTerms[i]!.push(dy[r * dim + i]! * xs(i) * rs);
        dbTerms[i]!.push(dy[r * dim + i]!);
      }
    } else {
      const xhat = (i: number) => (xs(i) - mu) * rs;
      const gs = Array.from({ length: dim }, (_, i) => gi(i));
      const gx = Array.from({ length: dim }, (_, i) => gi(i) * xhat(i));
      const a = accurateSum(gs) / dim;
      const bb = accurateSum(gx) / dim;
      const aMag = accurateSum(gs.map(Math.abs)) / dim;
      const bMag = accurateSum(gx.map(Math.abs)) / dim;
      for (let i = 0; i < dim; i++) {
        const xh = xhat(i);
        g.dx[r * dim + i] = rs * (gi(i) - a - xh * bb);
        // The terms, plus what the rounding of x - mean (relative to |x| + |mean|) carries into xhat.
        g.dxMag[r * dim + i] =
          rs * (Math.abs(gi(i)) + aMag + Math.abs(xh) * bMag) + rs * (Math.abs(xs(i)) + Math.abs(mu)) * rs * bMag;
        dwTerms[i]!.push(dy[r * dim + i]! * xh);
        dbTerms[i]!.push(dy[r * dim + i]!);
        g.dwMag[i]! += Math.abs(dy[r * dim + i]!) * (Math.abs(xs(i)) + Math.abs(mu)) * rs;
      }
    }
  }
  for (let i = 0; i < dim; i++) {
    g.dw[i] = accurateSum(dwTerms[i]!);
    g.dwMag[i]! += accurateSum(dwTerms[i]!.map(Math.abs));
    g.db[i] = accurateSum(dbTerms[i]!);
    g.dbMag[i] = accurateSum(dbTerms[i]!.map(Math.abs));
  }
  return g;
}

describe.each(TYPES)('%s backward passes: every backend and the fallback against the analytic gradients', (T) => {
  const name = T.name;
  const tol = isF32(T) ? 3e-6 : 1e-13;

  for (const op of ['rms', 'ln'] as const) {
    const opName = op === 'rms' ? 'rmsNormBackward' : 'layerNormBackward';
    it(`${opName}, and its async twin gives the same bits (${name})`, async () => {
      await fc.assert(
        fc.asyncProperty(backwardCase(T), async (k) => {
          const { dim } = k;
          const rows = k.x.length;
          const x0 = matrix(T, dim, k.x);
          const dy0 = matrix(T, dim, k.dy.slice(0, rows));
          const n = x0.length;
          const w = k.weight ? vectorValues(T, dim, k.weight, 0.25) : null;
          const offset = op === 'rms' && w ? k.offset : 0;
          const kk = Math.min(dim, Math.max(1, Math.ceil(k.partial * dim)));
          const partial = op === 'rms' ? k.partial : 1;
          // Statistics: saved from the forward pass (rounded to T, as it stores them) or recomputed.
          const fwdMean = new T(rows);
          const fwdRstd = new T(rows);
          if (op === 'rms') rmsNorm(x0, null, { dim, eps: k.eps, partial, rstd: fwdRstd });
          else layerNorm(x0, null, null, { dim, eps: k.eps, mean: fwdMean, rstd: fwdRstd });
          const exact = reference(op, x0, dim, k.eps, partial);
          const mean = k.saved ? fwdMean : exact.mean;
          const rstd = k.saved ? fwdRstd : exact.rstd;
          const ref = refBackward(op, dy0, x0, w, dim, offset, op === 'rms' ? kk : dim, mean, rstd);

          const dy = guarded(T, n, k.at[0], dy0);
          const x = guarded(T, n, k.at[1], x0);
          const dx = k.inPlace ? null : guarded(T, n, k.at[2]);
          const prevW = vectorValues(T, dim, { scale: 1, seed: 7, zeros: false });
          const prevB = vectorValues(T, dim, { scale: 1, seed: 8, zeros: false });
          const dweight = k.grads ? guarded(T, dim, k.at[3], prevW) : null;
          const dbias = k.grads ? guarded(T, dim, k.at[3] + 1, prevB) : null;
          const opts = {
            dim,
            eps: k.eps,
            dx: k.inPlace ? dy.view : (dx?.view ?? null),
            dweight: dweight?.view ?? null,
            dbias: dbias?.view ?? null,
            accumulate: k.accumulate,
            ...(op === 'rms'
              ? { offset, partial, rstd: k.saved ? fwdRstd : null }
              : k.saved
                ? { mean: fwdMean, rstd: fwdRstd }
                : {}),
          };
          const got =
            op === 'rms' ? rmsNormBackward(dy.view, x.view, w, opts) : layerNormBackward(dy.view, x.view, w, opts);
          count(`${opName} calls`);
          const c = new Checker(T);
          for (const g of [dy, x, dx, dweight, dbias]) if (g && !untouchedOutside(g)) c.fail('wrote outside a view');
          if (!sameBits(x.view, x0) || (!k.inPlace && !sameBits(dy.view, dy0))) c.fail('an input was written');
          const check = (
            label: string,
            gr: { dx: FloatArray; dweight: FloatArray | null; dbias: FloatArray },
            withBuffers: boolean,
          ) => {
            for (let i = 0; i < n; i++)
              c.close(`${label} dx[${i}]`, gr.dx[i]!, ref.dx[i]!, tol * ref.dxMag[i]! + 2 * ulpOf(T, ref.dx[i]!));
            const acc = withBuffers && k.accumulate;
            for (let i = 0; i < dim; i++) {
              if (gr.dweight) {
                const want = (acc ? prevW[i]! : 0) + ref.dw[i]!;
                c.close(
                  `${label} dweight[${i}]`,
                  gr.dweight[i]!,
                  want,
                  tol * (ref.dwMag[i]! + (acc ? Math.abs(prevW[i]!) : 0)) + 2 * ulpOf(T, want),
                );
              }
              const want = (acc ? prevB[i]! : 0) + ref.db[i]!;
              c.close(
                `${label} dbias[${i}]`,
                gr.dbias[i]!,
                want,
                tol * (ref.dbMag[i]! + (acc ? Math.abs(prevB[i]!) : 0)) + 2 * ulpOf(T, want),
              );
            }
          };
          if (w && !got.dweight) c.fail('no dweight with a weight');
          check(opName, got, k.grads);
          // The fallback's positional kernel.
          const js = { dx: new T(n), dweight: new T(dim), dbias: new T(dim) };
          if (op === 'rms')
            fallback.rmsNormBackward(
              dy0,
              x0,
              w,
              k.saved ? fwdRstd : null,
              js.dx,
              js.dweight,
              js.dbias,
              dim,
              k.eps,
              offset,
              partial,
              false,
              0,
              0,
              n / dim,
              1,
              dim,
              dim,
              dim,
              dim,
            );
          else
            fallback.layerNormBackward(
              dy0,
              x0,
              w,
              k.saved ? fwdMean : null,
              k.saved ? fwdRstd : null,
              js.dx,
              js.dweight,
              js.dbias,
              dim,
              k.eps,
              false,
              0,
              0,
              n / dim,
              1,
              dim,
              dim,
              dim,
              dim,
            );
          check(`fallback ${opName}`, js, false);
          // The async twin, on fresh buffers: the same bits.
          const dyA = dy0.slice();
          const dwA = k.grads ? prevW.slice() : null;
          const dbA = k.grads ? prevB.slice() : null;
          const optsA = { ...opts, dx: k.inPlace ? dyA : null, dweight: dwA, dbias: dbA };
          const ga =
            op === 'rms'
              ? await rmsNormBackwardAsync(dyA, x0.slice(), w, optsA)
              : await layerNormBackwardAsync(dyA, x0.slice(), w, optsA);
          if (!sameBits(ga.dx, got.dx) || !sameBits(ga.dweight, got.dweight) || !sameBits(ga.dbias, got.dbias))
            c.fail(`${opName}Async gave other bits`);
          c.done({ T: name, ...k });
        }),
        params(`${opName} ${name}`),
      );
    });
  }
});
