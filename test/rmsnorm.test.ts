// rmsNorm against the float64 reference, on every backend (see vitest.config.mts).
import { describe, expect, it } from 'vitest';
import { backend, rmsNorm } from '../dist/index.js';
import { binding, calibration } from '../dist/backend.js';
import { fallback } from '../dist/fallback.js';
import { maxUlpError, randomArray, referenceRmsNorm, rng, type FloatArray } from './reference';
import { expectedIsa, nativeRequested } from './setup';

const LENGTHS = [1, 2, 3, 7, 15, 16, 17, 31, 33, 97, 1536, 2560, 4096, 4097];
const TYPES = [Float32Array, Float64Array] as const;
type Ctor = (typeof TYPES)[number];

// Error budgets, in units of the last place of the storage type. float32: a rounded rstd, the two products and
// the float32 summation of squares (see native/kernels/numerics.h) stay under 4 ulp; float64: the rounding of a sum of
// thousands of squares, 64 ulp = 1.4e-14, seven times inside the contract's 1e-13 relative.
const ULP_BUDGET = { Float32Array: 4, Float64Array: 64 } as const;
const budget = (c: Ctor) => ULP_BUDGET[c.name as keyof typeof ULP_BUDGET];

/** Scale each output's rounding is measured against: |x * rstd * w| + |bias| (bias may cancel). */
function errorScale(
  x: FloatArray,
  w: FloatArray | null,
  bias: FloatArray | null,
  rstd: Float64Array,
  dim: number,
  offset = 0,
) {
  const s = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = i % dim;
    s[i] = Math.abs(x[i]! * rstd[Math.floor(i / dim)]! * (w ? offset + w[c]! : 1)) + (bias ? Math.abs(bias[c]!) : 0);
  }
  return s;
}

it('runs the backend this project asked for', () => {
  expect(backend().isa).toBe(expectedIsa());
  expect(backend().native).toBe(nativeRequested);
});

describe.each(TYPES)('%s', (T) => {
  const name = T.name;

  it.each(LENGTHS)(`dim %i, with and without weight: within budget of the float64 reference (${name})`, (dim) => {
    const rows = 3;
    const x = randomArray(T, rows * dim, dim * 7 + 1);
    const w = randomArray(T, dim, dim * 7 + 2, 0.5, 1.5);
    for (const weight of [w, null]) {
      const rstd = new T(rows);
      const y = rmsNorm(x, weight, { dim, rstd });
      expect(y).toBeInstanceOf(T);
      expect(y.length).toBe(x.length);
      const ref = referenceRmsNorm(x, weight, { dim });
      expect(maxUlpError(y, ref.y)).toBeLessThanOrEqual(budget(T));
      expect(maxUlpError(rstd, new T(ref.rstd))).toBeLessThanOrEqual(budget(T));
    }
  });

  it.each(LENGTHS)(`dim %i with bias, offset, partial, eps (${name})`, (dim) => {
    const rows = 2;
    const x = randomArray(T, rows * dim, dim * 11 + 3, -3, 3);
    const w = randomArray(T, dim, dim * 11 + 4, -1, 1);
    const bias = randomArray(T, dim, dim * 11 + 5, -1, 1);
    for (const opts of [
      { bias },
      { offset: 1 },
      { offset: 1, bias },
      { partial: 0.25 },
      { partial: 0.5, bias, offset: -0.5 },
      { partial: 1e-9 },
      { eps: 0 },
      { eps: 1e-2 },
    ]) {
      const rstd = new T(rows);
      const y = rmsNorm(x, w, { ...opts, rstd });
      const ref = referenceRmsNorm(x, w, { dim, ...opts });
      const scale = errorScale(x, w, opts.bias ?? null, ref.rstd, dim, opts.offset);
      expect(maxUlpError(y, ref.y, scale), JSON.stringify({ dim, ...opts, bias: !!opts.bias })).toBeLessThanOrEqual(
        budget(T),
      );
      expect(maxUlpError(rstd, new T(ref.rstd))).toBeLessThanOrEqual(budget(T));
    }
  });

  it('returns options.out, and computes in place when out is x', () => {
    const dim = 97;
    const x = randomArray(T, dim * 4, 5);
    const w = randomArray(T, dim, 6);
    const expected = rmsNorm(x, w);
    const out = new T(x.length);
    expect(rmsNorm(x, w, { out })).toBe(out);
    expect(Array.from(out)).toEqual(Array.from(expected));
    const copy = x.slice();
    expect(rmsNorm(copy, w, { out: copy })).toBe(copy);
    expect(Array.from(copy)).toEqual(Array.from(expected));
  });

  it('reads and writes subarray views at odd offsets', () => {
    for (const dim of [7, 33, 1536, 4097]) {
      const rows = 3;
      const backing = randomArray(T, rows * dim + 50, dim + 9);
      const x = backing.subarray(3, 3 + rows * dim);
      const wBacking = randomArray(T, dim + 5, dim + 10, 0.5, 1.5);
      const w = wBacking.subarray(1, 1 + dim);
      const bias = randomArray(T, dim + 2, dim + 11).subarray(2);
      const outBacking = new T(rows * dim + 7).fill(42);
      const out = outBacking.subarray(5, 5 + rows * dim);
      const rstdBacking = new T(rows + 2).fill(42);
      const rstd = rstdBacking.subarray(1, 1 + rows);
      rmsNorm(x, w, { bias, out, rstd });
      const ref = referenceRmsNorm(x, w, { dim, bias });
      expect(maxUlpError(out, ref.y, errorScale(x, w, bias, ref.rstd, dim))).toBeLessThanOrEqual(budget(T));
      expect(maxUlpError(rstd, new T(ref.rstd))).toBeLessThanOrEqual(budget(T));
      // Nothing outside the views was touched.
      expect(Array.from(outBacking.subarray(0, 5))).toEqual([42, 42, 42, 42, 42]);
      expect(Array.from(outBacking.subarray(5 + rows * dim))).toEqual([42, 42]);
      expect([rstdBacking[0], rstdBacking[rows + 1]]).toEqual([42, 42]);
      // In place on a view.
      const inPlace = x.slice();
      rmsNorm(inPlace, w, { bias, out: inPlace });
      expect(Array.from(inPlace)).toEqual(Array.from(out));
    }
  });

  it('handles zero rows (empty x) and a single element', () => {
    expect(rmsNorm(new T(0), new T(4)).length).toBe(0);
    const one = rmsNorm(T.from([-3]), null, { dim: 1, eps: 0 });
    expect(one[0]).toBe(-1);
  });

  it('gives NaN for an all-zero row with eps = 0 (as PyTorch), and exact zeros with eps > 0', () => {
    const y = rmsNorm(new T(8), null, { dim: 8, eps: 0 });
    expect(Array.from(y).every(Number.isNaN)).toBe(true);
    const z = rmsNorm(new T(8), null, { dim: 8 });
    expect(Array.from(z)).toEqual(new Array(8).fill(0));
  });

  it('keeps NaN and Inf inside their own row', () => {
    const dim = 37;
    const rows = 4;
    const x = randomArray(T, rows * dim, 77);
    x[dim * 1 + 5] = NaN;
    x[dim * 2 + 36] = Infinity;
    x[dim * 3 + 0] = -Infinity;
    const y = rmsNorm(x, null, { dim });
    const ref = referenceRmsNorm(x, null, { dim });
    expect(maxUlpError(y.subarray(0, dim), ref.y.subarray(0, dim))).toBeLessThanOrEqual(budget(T));
    expect(Array.from(y.subarray(dim, 2 * dim)).every(Number.isNaN)).toBe(true);
    // Inf row: rstd = 0, finite values become 0, the Inf itself NaN, as in float64.
    expect(maxUlpError(y.subarray(2 * dim), ref.y.subarray(2 * dim))).toBe(0);
  });
});

describe('extreme magnitudes: the sum of squares must not overflow or underflow a result', () => {
  const f32Scales = [1e-45, 1e-40, 1e-38, 1e-30, 1e-20, 1e-19, 1e-10, 1, 1e10, 1e19, 1e20, 1e30, 1e38, 3e38];
  it.each(f32Scales)('float32 rows of magnitude %d, eps 0 and 1e-5', (scale) => {
    for (const dim of [1, 17, 4096]) {
      const x = new Float32Array(2 * dim);
      const r = rng(dim);
      for (let i = 0; i < x.length; i++) x[i] = (r() * 2 - 1) * Math.min(scale, 3.4e38);
      const w = randomArray(Float32Array, dim, 3, 0.5, 1.5);
      for (const eps of [0, 1e-5]) {
        const rstd = new Float32Array(2);
        const y = rmsNorm(x, w, { eps, rstd });
        const ref = referenceRmsNorm(x, w, { dim, eps });
        expect(maxUlpError(y, ref.y), `scale ${scale} dim ${dim} eps ${eps}`).toBeLessThanOrEqual(4);
        if (eps === 0) expect(Array.from(y).every((v, i) => Number.isFinite(v) && (v !== 0 || x[i] === 0))).toBe(true);
        expect(maxUlpError(rstd, new Float32Array(ref.rstd))).toBeLessThanOrEqual(4);
      }
    }
  });

  it('float32 rows mixing 1e-40 and 3e38', () => {
    const x = Float32Array.from([1e-40, 3e38, -2e38, 1e-30, 5, -3e38, 1e-45, 7e37]);
    const y = rmsNorm(x, null, { dim: 8, eps: 0 });
    expect(maxUlpError(y, referenceRmsNorm(x, null, { dim: 8, eps: 0 }).y)).toBeLessThanOrEqual(4);
  });

  const f64Scales = [5e-324, 1e-310, 1e-300, 1e-200, 1e-160, 1e-154, 1, 1e154, 1e160, 1e200, 1e300, 1.7e308];
  it.each(f64Scales)('float64 rows of magnitude %d, eps 0 and 1e-5', (scale) => {
    for (const dim of [1, 17, 4096]) {
      const x = new Float64Array(2 * dim);
      const r = rng(dim + 1);
      for (let i = 0; i < x.length; i++) x[i] = (r() * 2 - 1) * scale;
      for (const eps of [0, 1e-5]) {
        const y = rmsNorm(x, null, { dim, eps });
        const ref = referenceRmsNorm(x, null, { dim, eps });
        expect(maxUlpError(y, ref.y), `scale ${scale} dim ${dim} eps ${eps}`).toBeLessThanOrEqual(64);
      }
    }
  });
});

// On a native project this compares the two implementations; on the js project, the facade with its kernels.
describe('the backend in use and the fallback kernels agree', () => {
  it.each(TYPES)('%s on every option combination', (T) => {
    for (const dim of [1, 15, 16, 17, 97, 4097]) {
      const x = randomArray(T, 2 * dim, dim);
      const w = randomArray(T, dim, dim + 1);
      const bias = randomArray(T, dim, dim + 2);
      for (const [weight, b, offset, partial] of [
        [w, null, 0, 1],
        [null, null, 0, 1],
        [w, bias, 1, 1],
        [null, bias, 0, 0.3],
        [w, bias, 0.5, 0.7],
      ] as const) {
        const native = rmsNorm(x, weight, { dim, bias: b, offset, partial });
        const js = new T(x.length);
        fallback.rmsNorm(x, weight, b, js, null, dim, 1e-5, offset, partial, 0, 0, x.length / dim, 1, dim, dim, dim);
        const ref = referenceRmsNorm(x, weight, { dim, bias: b, offset, partial });
        const scale = errorScale(x, weight, b, ref.rstd, dim, offset);
        expect(maxUlpError(native, js, scale)).toBeLessThanOrEqual(2 * budget(T));
      }
    }
  });
});

// The binding's calibration entry (not public API): the benchmark times it with an op's arguments as the floor
// under that op's call, so it must exist on every backend, accept any arguments, and do nothing.
describe('the calibration entry noop', () => {
  it("exists on the backend in use, returns undefined for rmsNorm's arguments and writes nothing", () => {
    expect(typeof calibration.noop).toBe('function');
    if (nativeRequested) expect(binding?.noop).toBe(calibration.noop);
    else expect(binding).toBeNull();
    const x = randomArray(Float32Array, 16, 3);
    const w = randomArray(Float32Array, 16, 4);
    const out = new Float32Array(16).fill(7);
    // The 11 arguments of a dense rmsNorm call, as lib/ops.gen.ts passes them to the kernels.
    expect(calibration.noop(x, w, null, out, null, 16, 1e-5, 0, 1, 0, 0)).toBeUndefined();
    expect(Array.from(out)).toEqual(new Array<number>(16).fill(7));
    // Any arguments at all, none read.
    expect(calibration.noop()).toBeUndefined();
    expect(calibration.noop('not an array', {}, -1, ...new Array<number>(40).fill(NaN))).toBeUndefined();
  });
});
