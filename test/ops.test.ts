// layerNorm, addRmsNorm and both backward passes against float64 references, on every backend.
import { describe, expect, it } from 'vitest';
import { addRmsNorm, layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from '../dist/index.js';
import { fallback } from '../dist/fallback.js';
import {
  finiteDifference,
  maxRelError,
  maxUlpError,
  randomArray,
  referenceLayerNorm,
  referenceLayerNormBackward,
  referenceRmsNorm,
  referenceRmsNormBackward,
  rng,
  type FloatArray,
} from './reference';

const LENGTHS = [1, 2, 3, 7, 15, 16, 17, 31, 33, 97, 1536, 2560, 4096, 4097];
type Ctor = { new (n: number): FloatArray; new (a: ArrayLike<number>): FloatArray; name: string };
const TYPES: Ctor[] = [Float32Array, Float64Array];
const ulpBudget = (T: Ctor) => (T === Float32Array ? 4 : 64);
// Gradients are sums of products of several rounded terms: compared norm-wise, relative to the largest value.
const gradTolerance = (T: Ctor) => (T === Float32Array ? 2e-6 : 1e-12);

/**
 * (|x| + |mean|) * rstd * |w| + |b|: the scale each LayerNorm output's rounding is relative to (x - mean is
 * known to a unit in the last place of the larger of the two).
 */
function lnScale(
  x: FloatArray,
  w: FloatArray | null,
  b: FloatArray | null,
  mean: Float64Array,
  rstd: Float64Array,
  dim: number,
) {
  return Float64Array.from(x, (v, i) => {
    const r = Math.floor(i / dim);
    return (
      (Math.abs(v) + Math.abs(mean[r]!)) * rstd[r]! * (w ? Math.abs(w[i % dim]!) : 1) + (b ? Math.abs(b[i % dim]!) : 0)
    );
  });
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe.each(TYPES)('layerNorm %s', (T) => {
  it.each(LENGTHS)('dim %i against the float64 reference, with and without affine terms', (dim) => {
    const rows = 3;
    const x = randomArray(T, rows * dim, dim + 100, -3, 5);
    const w = randomArray(T, dim, dim + 101, 0.5, 1.5);
    const b = randomArray(T, dim, dim + 102, -1, 1);
    for (const [weight, bias] of [
      [w, b],
      [w, null],
      [null, b],
      [null, null],
    ] as const) {
      const mean = new T(rows);
      const rstd = new T(rows);
      const y = layerNorm(x, weight, bias, { dim, mean, rstd });
      const ref = referenceLayerNorm(x, weight, bias, { dim });
      expect(maxUlpError(y, ref.y, lnScale(x, weight, bias, ref.mean, ref.rstd, dim))).toBeLessThanOrEqual(
        ulpBudget(T),
      );
      expect(
        maxUlpError(
          mean,
          new T(ref.mean),
          Float64Array.from(ref.mean, (m, r) => Math.abs(m) + 1 / ref.rstd[r]!),
        ),
      ).toBeLessThanOrEqual(ulpBudget(T));
      expect(maxUlpError(rstd, new T(ref.rstd))).toBeLessThanOrEqual(ulpBudget(T));
    }
  });

  it('stays accurate when |mean| is 1e4 times the standard deviation (within 1e-5 of the row scale)', () => {
    for (const dim of [16, 97, 4096]) {
      const r = rng(dim);
      const x = new T(4 * dim);
      for (let i = 0; i < x.length; i++) x[i] = (Math.floor(i / dim) % 2 ? -1 : 1) * 1e4 + (r() * 2 - 1);
      const y = layerNorm(x, null, null, { dim });
      const ref = referenceLayerNorm(x, null, null, { dim });
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i]! - ref.y[i]!));
      // Outputs are O(1) (normalized): absolute error is error relative to the row's scale.
      expect(worst).toBeLessThan(T === Float32Array ? 1e-5 : 1e-9);
      // and a 1e6 offset still leaves usable results
      const far = x.map((v) => v * 100);
      const yFar = layerNorm(far, null, null, { dim });
      const refFar = referenceLayerNorm(far, null, null, { dim });
      expect(maxRelError(yFar, refFar.y)).toBeLessThan(T === Float32Array ? 1e-3 : 1e-9);
    }
  });

  it('writes in place, on views, and keeps NaN in its row; constant rows give 0, or NaN with eps 0', () => {
    const dim = 33;
    const backing = randomArray(T, 4 * dim + 3, 9);
    const x = backing.subarray(3);
    const expected = layerNorm(x, null, null, { dim });
    const inPlace = x.slice();
    expect(layerNorm(inPlace, null, null, { dim, out: inPlace })).toBe(inPlace);
    expect(Array.from(inPlace)).toEqual(Array.from(expected));
    const withNaN = x.slice();
    withNaN[dim + 4] = NaN;
    const y = layerNorm(withNaN, null, null, { dim });
    expect(Array.from(y.subarray(dim, 2 * dim)).every(Number.isNaN)).toBe(true);
    expect(Array.from(y.subarray(0, dim))).toEqual(Array.from(expected.subarray(0, dim)));
    const constant = new T(dim).fill(3);
    expect(Array.from(layerNorm(constant, null, null, { dim }))).toEqual(new Array(dim).fill(0));
    expect(Array.from(layerNorm(constant, null, null, { dim, eps: 0 })).every(Number.isNaN)).toBe(true);
  });

  it('handles rows whose sums leave the float range', () => {
    const scales = T === Float32Array ? [1e-40, 1e-20, 1e20, 3e38] : [1e-310, 1e-160, 1e160, 1e300];
    for (const scale of scales) {
      const dim = 64;
      const x = randomArray(T, 2 * dim, 5, -1, 1).map((v) => v * scale);
      const y = layerNorm(x, null, null, { dim, eps: 0 });
      const ref = referenceLayerNorm(x, null, null, { dim, eps: 0 });
      expect(
        maxUlpError(y, ref.y, lnScale(x, null, null, ref.mean, ref.rstd, dim)),
        `scale ${scale}`,
      ).toBeLessThanOrEqual(ulpBudget(T));
    }
  });

  it('normalizes constant rows to 0 at every magnitude (eps > 0), including where eps vanishes next to x^2', () => {
    const values = T === Float32Array ? [1e-40, 1, 3e38, -3e38] : [1e-310, 1, 1e160, 1e300, -1.7e308];
    for (const v of values) {
      // Exactly zero: the mean of a constant row is the constant itself (see also "extreme rows" below).
      const y = layerNorm(new T(8).fill(v), null, null, { dim: 8 });
      expect(
        Array.from(y).every((u) => u === 0),
        `${v}: ${Array.from(y)}`,
      ).toBe(true);
    }
  });

  it('needs dim from weight, bias or options', () => {
    const x = new T(8);
    expect(layerNorm(x, null, new T(4)).length).toBe(8);
    expect(() => layerNorm(x, null, null)).toThrow(/"options.dim".*weight and bias are null/);
  });
});

describe.each(TYPES)('addRmsNorm %s', (T) => {
  it.each([1, 7, 16, 97, 4096, 4097])('dim %i: residual += x rounded to the type, then rmsNorm of it', (dim) => {
    const rows = 3;
    const x = randomArray(T, rows * dim, dim, -2, 2);
    const residual = randomArray(T, rows * dim, dim + 1, -2, 2);
    const w = randomArray(T, dim, dim + 2, 0.5, 1.5);
    const bias = randomArray(T, dim, dim + 3, -1, 1);
    for (const opts of [{}, { bias }, { offset: 1, partial: 0.5 }]) {
      const res = residual.slice();
      const rstd = new T(rows);
      const y = addRmsNorm(x, res, w, { ...opts, rstd });
      const sum = new T(rows * dim);
      for (let i = 0; i < sum.length; i++) sum[i] = residual[i]! + x[i]!;
      expect(Array.from(res)).toEqual(Array.from(sum));
      const ref = referenceRmsNorm(sum, w, { dim, ...opts });
      expect(maxUlpError(rstd, new T(ref.rstd))).toBeLessThanOrEqual(ulpBudget(T));
      const separate = rmsNorm(sum, w, opts);
      expect(
        maxUlpError(
          y,
          separate,
          Float64Array.from(separate, (v, i) => Math.abs(v) + ('bias' in opts ? Math.abs(bias[i % dim]!) : 0)),
        ),
      ).toBeLessThanOrEqual(ulpBudget(T));
    }
  });

  it('may write its output over x (fused_add_rmsnorm convention)', () => {
    const dim = 97;
    const x = randomArray(T, 2 * dim, 1);
    const res = randomArray(T, 2 * dim, 2);
    const expectedRes = res.slice();
    const expected = addRmsNorm(x.slice(), expectedRes, null, { dim });
    const inPlace = x.slice();
    expect(addRmsNorm(inPlace, res, null, { dim, out: inPlace })).toBe(inPlace);
    expect(Array.from(inPlace)).toEqual(Array.from(expected));
    expect(Array.from(res)).toEqual(Array.from(expectedRes));
  });

  it('refuses residual aliasing x or out, without touching anything', () => {
    const dim = 8;
    const buf = randomArray(T, 4 * dim, 3);
    const before = Array.from(buf);
    expect(() => addRmsNorm(buf.subarray(0, dim), buf.subarray(0, dim), null, { dim })).toThrow(
      /"residual" argument must not overlap "x"/,
    );
    const res = buf.subarray(dim, 2 * dim);
    expect(() => addRmsNorm(buf.subarray(0, dim), res, null, { dim, out: res })).toThrow(/must not overlap/);
    expect(Array.from(buf)).toEqual(before);
  });
});

// 1024 and 4096: rows a multiple of 4 KiB apart, which the native kernels take in groups of two rather than four.
describe.each(TYPES)('rmsNormBackward %s', (T) => {
  it.each([1, 3, 7, 16, 17, 97, 1024, 1536, 4096, 4097])('dim %i against the analytic float64 gradients', (dim) => {
    const rows = 5;
    const x = randomArray(T, rows * dim, dim + 7, -2, 2);
    const dy = randomArray(T, rows * dim, dim + 8, -1, 1);
    const w = randomArray(T, dim, dim + 9, 0.5, 1.5);
    for (const opts of [{}, { offset: 1 }, { partial: 0.25 }, { partial: 0.5, offset: -0.5, eps: 0.1 }]) {
      for (const weight of [w, null]) {
        if (!weight && 'offset' in opts) continue;
        const g = rmsNormBackward(dy, x, weight, { dim, ...opts });
        const ref = referenceRmsNormBackward(dy, x, weight, { dim, ...opts });
        // dx = rstd * g - (a correction that can cancel it): its error is relative to the first term's size.
        const rstdMax = maxAbs(referenceRmsNorm(x, null, { dim, ...opts }).rstd);
        const weff = weight ? maxAbs(weight.map((v) => v + ('offset' in opts ? opts.offset! : 0))) : 1;
        const termScale = maxAbs(dy) * weff * rstdMax;
        expect(maxRelError(g.dx, ref.dx, termScale), JSON.stringify(opts)).toBeLessThan(gradTolerance(T));
        expect(maxRelError(g.dbias, ref.dbias)).toBeLessThan(gradTolerance(T));
        if (weight) expect(maxRelError(g.dweight!, ref.dweight)).toBeLessThan(gradTolerance(T));
        else expect(g.dweight).toBeNull();
      }
    }
  });

  it('reuses the forward rstd, writes dx over dy, and accumulates into given buffers', () => {
    const dim = 33;
    const rows = 4;
    const x = randomArray(T, rows * dim, 1);
    const dy = randomArray(T, rows * dim, 2);
    const w = randomArray(T, dim, 3, 0.5, 1.5);
    const rstd = new T(rows);
    rmsNorm(x, w, { rstd });
    const fresh = rmsNormBackward(dy, x, w);
    const reused = rmsNormBackward(dy, x, w, { rstd });
    expect(maxRelError(reused.dx, fresh.dx)).toBeLessThan(gradTolerance(T));
    const dyCopy = dy.slice();
    const dweight = new T(dim).fill(1);
    const dbias = new T(dim).fill(2);
    const inPlace = rmsNormBackward(dyCopy, x, w, { dx: dyCopy, dweight, dbias, accumulate: true });
    expect(inPlace.dx).toBe(dyCopy);
    expect(inPlace.dweight).toBe(dweight);
    expect(Array.from(dyCopy)).toEqual(Array.from(fresh.dx));
    expect(
      maxRelError(
        dweight,
        fresh.dweight!.map((v) => v + 1),
      ),
    ).toBeLessThan(gradTolerance(T));
    expect(
      maxRelError(
        dbias,
        fresh.dbias.map((v) => v + 2),
      ),
    ).toBeLessThan(gradTolerance(T));
    // Without accumulate the buffers are overwritten.
    rmsNormBackward(dy, x, w, { dweight, dbias });
    expect(Array.from(dweight)).toEqual(Array.from(fresh.dweight!));
  });

  it('gives the same bits on every call (reductions in a fixed order)', () => {
    const dim = 256;
    const rows = 300;
    const x = randomArray(T, rows * dim, 11);
    const dy = randomArray(T, rows * dim, 12);
    const w = randomArray(T, dim, 13);
    const a = rmsNormBackward(dy, x, w);
    const b = rmsNormBackward(dy, x, w);
    expect(Array.from(b.dweight!)).toEqual(Array.from(a.dweight!));
    expect(Array.from(b.dbias)).toEqual(Array.from(a.dbias));
    expect(Array.from(b.dx)).toEqual(Array.from(a.dx));
  });
});

describe('rmsNormBackward at extreme magnitudes keeps the statistic term', () => {
  it.each([1e-30, 1e-10, 1e10, 1e30, 1e37])('float32 rows of magnitude %d', (scale) => {
    for (const dim of [1, 3, 17, 300]) {
      const x = randomArray(Float32Array, 2 * dim, dim, -1, 1).map((v) => v * scale);
      const dy = randomArray(Float32Array, 2 * dim, dim + 1, -1, 1);
      const w = randomArray(Float32Array, dim, dim + 2, 0.5, 1.5);
      const g = rmsNormBackward(dy, x, w, { offset: 0.25 });
      const ref = referenceRmsNormBackward(dy, x, w, { dim, offset: 0.25 });
      // Relative to the size of dx's terms, rstd * |dy * (offset + w)|.
      const termScale = maxAbs(dy) * 1.75 * maxAbs(referenceRmsNorm(x, null, { dim }).rstd);
      expect(maxRelError(g.dx, ref.dx, termScale), `dim ${dim}`).toBeLessThan(1e-6);
    }
  });
});

describe.each(TYPES)('layerNormBackward %s', (T) => {
  it.each([1, 2, 7, 16, 17, 97, 1024, 1536, 4096, 4097])('dim %i against the analytic float64 gradients', (dim) => {
    const rows = 5;
    const x = randomArray(T, rows * dim, dim + 17, -2, 3);
    const dy = randomArray(T, rows * dim, dim + 18, -1, 1);
    const w = randomArray(T, dim, dim + 19, 0.5, 1.5);
    for (const weight of [w, null]) {
      for (const eps of [1e-5, 0.5]) {
        const g = layerNormBackward(dy, x, weight, { dim, eps });
        const ref = referenceLayerNormBackward(dy, x, weight, { dim, eps });
        // dx = rstd * (g - mean(g) - xhat * mean(g xhat)) can cancel to far below its terms (entirely for dim
        // 1 and 2): its error is relative to the terms' size.
        const termScale =
          maxAbs(dy) * (weight ? maxAbs(weight) : 1) * maxAbs(referenceLayerNorm(x, null, null, { dim, eps }).rstd);
        expect(maxRelError(g.dx, ref.dx, termScale)).toBeLessThan(gradTolerance(T) * 4);
        expect(maxRelError(g.dbias, ref.dbias)).toBeLessThan(gradTolerance(T));
        if (weight) expect(maxRelError(g.dweight!, ref.dweight)).toBeLessThan(gradTolerance(T));
      }
    }
  });

  it('reuses the forward mean and rstd', () => {
    const dim = 40;
    const x = randomArray(T, 3 * dim, 21);
    const dy = randomArray(T, 3 * dim, 22);
    const mean = new T(3);
    const rstd = new T(3);
    layerNorm(x, null, null, { dim, mean, rstd });
    const a = layerNormBackward(dy, x, null, { dim });
    const b = layerNormBackward(dy, x, null, { dim, mean, rstd });
    expect(maxRelError(b.dx, a.dx)).toBeLessThan(gradTolerance(T) * 10);
  });
});

// Rows whose intermediates leave the element type where the outputs do not, constant rows and rows of
// subnormals: inputs the kernels once got wrong (README, "Numerical contract").
describe('extreme rows: every finite output within the contract', () => {
  type Opts = {
    dim?: number;
    eps?: number;
    partial?: number;
    bias?: FloatArray;
    offset?: number;
    out?: FloatArray;
    rstd?: FloatArray;
  };
  type F64Opts = Parameters<typeof rmsNorm<Float64Array>>[2];
  type Op = (x: FloatArray, w: FloatArray | null, o: Opts) => FloatArray;
  // addRmsNorm of x onto a zero residual normalizes x itself: both forms are checked.
  const forms: [string, Op][] = [
    ['rmsNorm', (x, w, o) => rmsNorm(x as Float64Array, w as Float64Array | null, o as F64Opts)],
    [
      'addRmsNorm',
      (x, w, o) =>
        addRmsNorm(
          x as Float64Array,
          new (x.constructor as Ctor)(x.length) as Float64Array,
          w as Float64Array | null,
          o as F64Opts,
        ),
    ],
  ];

  it.each(forms)('%s, float32, partial < 1: a value past the first k whose x * rstd is beyond 3.4e38', (_, op) => {
    const x = Float32Array.from([1e-30, 3e38, 1, 1]);
    const w = Float32Array.from([1, 1e-30, 1, 1]);
    const rstd = new Float32Array(1);
    const y = op(x, w, { partial: 0.25, rstd });
    expect(Math.abs(y[1]! / 9.486833e10 - 1)).toBeLessThan(1e-6);
    const ref = referenceRmsNorm(x, w, { dim: 4, partial: 0.25 });
    expect(maxUlpError(y, ref.y)).toBeLessThanOrEqual(4);
    expect(maxUlpError(rstd, new Float32Array(ref.rstd))).toBeLessThanOrEqual(4);
    // Longer rows (k = 25 of 100): huge values in the vector body and in the tail, each under a tiny weight,
    // with a bias and an offset, written in place.
    const dim = 100;
    const huge = [30, 47, 99];
    const xl = randomArray(Float32Array, 2 * dim, 41, -1, 1).map((v, i) => (i % dim < 25 ? v * 1e-20 : v));
    for (const i of [30, 47, 99, 130, 199]) xl[i] = (i % 2 ? -3.4e38 : 3e38) * (1 - i / 1000);
    const wl = randomArray(Float32Array, dim, 42, 0.5, 1.5).map((v, i) => (huge.includes(i) ? v * 1e-30 : v));
    const bl = randomArray(Float32Array, dim, 43, -1, 1);
    const want = referenceRmsNorm(xl, wl, { dim, partial: 0.25, bias: bl, offset: 1e-31 });
    const yl = xl.slice();
    op(yl, wl, { dim, partial: 0.25, bias: bl, offset: 1e-31, out: yl });
    expect(Array.from(yl).every(Number.isFinite)).toBe(true);
    const scale = Float64Array.from(want.y, (v, i) => Math.abs(v - bl[i % dim]!) + Math.abs(bl[i % dim]!));
    expect(maxUlpError(yl, want.y, scale)).toBeLessThanOrEqual(4);
  });

  it.each(forms)('%s, float64, partial < 1: x * rstd beyond 1.8e308, in rows rescaled or not', (_, op) => {
    // eps 0 and k = 1: rstd = 1 / |x0|, so y = x * (w / |x0|).
    for (const x0 of [1e-300, 1e-100, -3e-200]) {
      const x = Float64Array.from([x0, 1e300, 1, -1.7e308]);
      const w = Float64Array.from([1, 1e-300, 1, 1e-310]);
      const rstd = new Float64Array(1);
      const y = op(x, w, { partial: 0.25, eps: 0, rstd });
      const want = Array.from(x, (v, i) => v * (w[i]! / Math.abs(x0)));
      expect(maxUlpError(y, want), `x0 ${x0}: ${Array.from(y)}`).toBeLessThanOrEqual(4);
      expect(maxUlpError(rstd, [1 / Math.abs(x0)])).toBeLessThanOrEqual(4);
    }
    // The first k all zeros: rstd = 1 / sqrt(eps).
    const x = new Float64Array(256);
    x[202] = 1.7976931348623157e308;
    x[3] = -1e300;
    const w = new Float64Array(256).fill(1e-30);
    const y = op(x, w, { partial: 1e-6, eps: 1e-12 });
    expect(
      maxUlpError(
        y,
        Array.from(x, (v, i) => v * (w[i]! / Math.sqrt(1e-12))),
      ),
    ).toBeLessThanOrEqual(4);
  });

  /** (|x| rstd + |mean| rstd) |w| + |b|: the scale of each LayerNorm output's rounding, with no overflow on the way. */
  const lnScaleOf = (
    x: FloatArray,
    w: FloatArray | null,
    b: FloatArray | null,
    ref: { mean: Float64Array; rstd: Float64Array },
    dim: number,
  ) =>
    Float64Array.from(x, (v, i) => {
      const r = Math.floor(i / dim);
      const centered = Math.abs(v) * ref.rstd[r]! + Math.abs(ref.mean[r]!) * ref.rstd[r]!;
      return centered * (w ? Math.abs(w[i % dim]!) : 1) + (b ? Math.abs(b[i % dim]!) : 0);
    });

  it.each(TYPES)('layerNorm of %s rows spanning more than the largest value, or whose sum overflows', (T) => {
    const max = T === Float32Array ? 3.4e38 : 1.7e308;
    const dim = 1000;
    const x = new T(3 * dim).fill(-max);
    x[0] = max; // [max, -max x 999]: y[0] = sqrt(999)
    for (let i = 0; i < dim; i++) x[dim + i] = (i % 3 ? max : -max) * (0.5 + (0.5 * ((i * 7919) % 1000)) / 1000);
    for (let i = 0; i < dim; i++) x[2 * dim + i] = max * (0.9 + (0.1 * ((i * 104729) % 1000)) / 1000); // the sum overflows float64
    const w = randomArray(T, dim, 44, 0.5, 1.5);
    const b = randomArray(T, dim, 45, -1, 1);
    for (const [weight, bias] of [
      [null, null],
      [w, b],
    ] as const) {
      const mean = new T(3);
      const rstd = new T(3);
      const y = layerNorm(x, weight, bias, { dim, mean, rstd });
      const ref = referenceLayerNorm(x, weight, bias, { dim });
      if (!weight) expect(Math.abs(y[0]! / Math.sqrt(999) - 1)).toBeLessThan(1e-6);
      expect(maxUlpError(y, ref.y, lnScaleOf(x, weight, bias, ref, dim))).toBeLessThanOrEqual(ulpBudget(T));
      expect(
        maxUlpError(
          mean,
          new T(ref.mean),
          Float64Array.from(ref.mean, (m) => Math.abs(m) + max),
        ),
      ).toBeLessThanOrEqual(ulpBudget(T));
      expect(maxUlpError(rstd, new T(ref.rstd))).toBeLessThanOrEqual(ulpBudget(T));
    }
    // Four values: max + max overflows float64's sum, and max - (-max) either type's x - mean.
    const four = new T([max, max, -max, max / 2]);
    const ref4 = referenceLayerNorm(four, null, null, { dim: 4, eps: 0 });
    const y4 = layerNorm(four, null, null, { dim: 4, eps: 0 });
    expect(maxUlpError(y4, ref4.y, lnScaleOf(four, null, null, ref4, 4))).toBeLessThanOrEqual(ulpBudget(T));
  });

  it.each(TYPES)(
    'layerNorm of rows of %s subnormals keeps the fraction of the mean below the smallest subnormal',
    (T) => {
      const f32 = T === Float32Array;
      const subExp = f32 ? -149 : -1074;
      const dim = 97;
      const r = rng(46);
      // Rows of integer multiples k_i of the smallest subnormal, so that exact outputs follow from integers:
      // x - mean = (n k_i - sum k) / n units, var + eps is var (eps 0) or eps (var is below 1e-70).
      const rows = [[1, 2, 4], [1, 3, 4], Array.from({ length: dim }, () => Math.round((r() * 2 - 1) * 2 ** 20))];
      const w = randomArray(T, dim, 47, 0.5, 1.5);
      for (const k of rows) {
        const n = k.length;
        const x = new T(k.map((v) => v * 2 ** (subExp + 60) * 2 ** -60));
        const sum = k.reduce((a, v) => a + v, 0);
        const dev = k.map((v) => n * v - sum); // exact: far below 2^53
        const sd = Math.sqrt(dev.reduce((a, d) => a + d * d, 0) / n);
        for (const eps of [0, 1e-5]) {
          for (const weight of [null, w.subarray(0, n)]) {
            const y = layerNorm(x, weight, null, { dim: n, eps });
            const want = dev.map((d, i) => {
              const v =
                (eps === 0 ? d / sd : (d / n / Math.sqrt(eps)) * 2 ** (subExp + 60) * 2 ** -60) *
                (weight ? weight[i]! : 1);
              return f32 ? Math.fround(v) : v;
            });
            // With eps 0 the outputs are O(1): within the budget of the row's largest. With eps 1e-5 they are
            // x / sqrt(eps), subnormal or nearly: within a unit or two of the smallest subnormal.
            const scale = eps === 0 ? new Float64Array(n).fill(Math.max(...want.map(Math.abs))) : undefined;
            const budgetHere = eps === 0 ? ulpBudget(T) : 2;
            expect(
              maxUlpError(y, want, scale),
              `${T.name} n ${n} eps ${eps}: ${Array.from(y)} vs ${want}`,
            ).toBeLessThanOrEqual(budgetHere);
          }
        }
      }
    },
  );

  it.each(TYPES)('layerNorm of constant %s rows: exactly 0 with eps > 0, however small, and NaN with eps 0', (T) => {
    const values =
      T === Float32Array
        ? [1e-45, 1e-40, 0.1, 1 / 3, 7, 1e20, 3e38, -3.4e38]
        : [5e-324, 1e-310, 0.1, 1 / 3, 1e160, 8.932893682118844e248, 1e300, -1.7976931348623157e308];
    for (const v of values) {
      for (const dim of [1, 3, 8, 33, 511, 1000]) {
        const x = new T(dim).fill(v);
        const w = randomArray(T, dim, dim, 100, 1000);
        for (const eps of [1e-5, 2.17e-169, 5e-324]) {
          const mean = new T(1);
          const y = layerNorm(x, w, null, { dim, eps, mean });
          expect(
            Array.from(y).every((u) => u === 0),
            `${v} dim ${dim} eps ${eps}: ${y[0]}`,
          ).toBe(true);
          expect(mean[0]).toBe(T === Float32Array ? Math.fround(v) : v);
        }
        expect(Array.from(layerNorm(x, null, null, { dim, eps: 0 })).every(Number.isNaN), `${v} dim ${dim} eps 0`).toBe(
          true,
        );
      }
    }
  });
});

describe('gradients against float64 finite differences', () => {
  const dim = 7;
  const rows = 3;
  const x = randomArray(Float64Array, rows * dim, 31, -2, 2);
  const dy = randomArray(Float64Array, rows * dim, 32, -1, 1);
  const w = randomArray(Float64Array, dim, 33, 0.5, 1.5);
  const b = randomArray(Float64Array, dim, 34, -1, 1);

  it.each([{}, { offset: 1 }, { partial: 0.5 }, { eps: 0.3, partial: 0.3 }])('rmsNorm %j', (opts) => {
    const f = () => rmsNorm(x, w, { ...opts, bias: b });
    const g = rmsNormBackward(dy, x, w, opts);
    expect(maxRelError(g.dx, finiteDifference(x, dy, f))).toBeLessThan(1e-7);
    expect(maxRelError(g.dweight!, finiteDifference(w, dy, f))).toBeLessThan(1e-7);
    expect(maxRelError(g.dbias, finiteDifference(b, dy, f))).toBeLessThan(1e-7);
  });

  it.each([1e-5, 0.3])('layerNorm eps %d', (eps) => {
    const f = () => layerNorm(x, w, b, { eps });
    const g = layerNormBackward(dy, x, w, { eps });
    expect(maxRelError(g.dx, finiteDifference(x, dy, f))).toBeLessThan(1e-7);
    expect(maxRelError(g.dweight!, finiteDifference(w, dy, f))).toBeLessThan(1e-7);
    expect(maxRelError(g.dbias, finiteDifference(b, dy, f))).toBeLessThan(1e-7);
  });
});

// On a native project: the native kernels against the TypeScript ones; on the js project, the facade
// against its own kernels called directly.
describe.each(TYPES)('the backend in use and the fallback kernels agree (%s)', (T) => {
  it('on every op', () => {
    for (const dim of [5, 16, 33, 1000]) {
      const rows = 3;
      const n = rows * dim;
      const x = randomArray(T, n, dim);
      const r0 = randomArray(T, n, dim + 1);
      const dy = randomArray(T, n, dim + 2);
      const w = randomArray(T, dim, dim + 3, 0.5, 1.5);
      const bias = randomArray(T, dim, dim + 4);

      const ln = layerNorm(x, w, bias);
      const lnJs = new T(n);
      fallback.layerNorm(x, w, bias, lnJs, null, null, dim, 1e-5, 0, 0, n / dim, 1, dim, dim, dim);
      expect(maxRelError(ln, lnJs)).toBeLessThan(T === Float32Array ? 1e-6 : 1e-14);

      const resNative = r0.slice();
      const add = addRmsNorm(x, resNative, w, { bias, partial: 0.6 });
      const resJs = r0.slice();
      const addJs = new T(n);
      fallback.addRmsNorm(x, resJs, w, bias, addJs, null, dim, 1e-5, 0, 0.6, 0, 0, n / dim, 1, dim, dim, dim, dim, 1);
      expect(Array.from(resNative)).toEqual(Array.from(resJs));
      expect(maxRelError(add, addJs)).toBeLessThan(T === Float32Array ? 1e-6 : 1e-14);

      const g = rmsNormBackward(dy, x, w, { offset: 0.5, partial: 0.7 });
      const dx = new T(n);
      const dw = new T(dim);
      const db = new T(dim);
      fallback.rmsNormBackward(
        dy,
        x,
        w,
        null,
        dx,
        dw,
        db,
        dim,
        1e-5,
        0.5,
        0.7,
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
      expect(maxRelError(g.dx, dx)).toBeLessThan(gradTolerance(T));
      expect(maxRelError(g.dweight!, dw)).toBeLessThan(gradTolerance(T));
      expect(maxRelError(g.dbias, db)).toBeLessThan(gradTolerance(T));

      const h = layerNormBackward(dy, x, w);
      fallback.layerNormBackward(
        dy,
        x,
        w,
        null,
        null,
        dx,
        dw,
        db,
        dim,
        1e-5,
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
      expect(maxRelError(h.dx, dx)).toBeLessThan(gradTolerance(T) * 10);
      expect(maxRelError(h.dweight!, dw)).toBeLessThan(gradTolerance(T));
    }
  });
});
