// bfloat16 and float16 storage: the conversions bit for bit, and every op within one storage ulp of the float64
// reference ('fp32' castMode) or bit for bit against a scalar model of the Llama rule ('llama').
import { describe, expect, it } from 'vitest';
import {
  addRmsNorm,
  fromBFloat16,
  fromFloat16,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  toBFloat16,
  toFloat16,
} from '../dist/index.js';
import {
  maxRelError,
  randomArray,
  referenceLayerNorm,
  referenceRmsNorm,
  referenceRmsNormBackward,
  rng,
  thrownBy,
} from './reference';

type DType = 'bfloat16' | 'float16';

// Independent decoders: bfloat16 through a DataView, float16 from its definition.
const view = new DataView(new ArrayBuffer(4));
function decodeBf16(h: number): number {
  view.setUint32(0, h << 16);
  return view.getFloat32(0);
}
function decodeF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}
const decoders = { bfloat16: decodeBf16, float16: decodeF16 };
const encoders = { bfloat16: toBFloat16, float16: toFloat16 };
const decodersNative = { bfloat16: fromBFloat16, float16: fromFloat16 };

/**
 * Reference rounding to a half type: the nearest finite value of the (sorted) grid, ties to the even bit
 * pattern; past the midpoint above the largest finite value, infinity.
 */
function referenceEncoder(dtype: DType) {
  const decode = decoders[dtype];
  const positives: { v: number; h: number }[] = [];
  for (let h = 0; h < 0x8000; h++) {
    const v = decode(h);
    if (Number.isFinite(v)) positives.push({ v, h });
  }
  const max = positives[positives.length - 1]!;
  const next = dtype === 'bfloat16' ? 2 ** 128 : 65536; // the first value past the largest finite one
  const overflow = (max.v + next) / 2;
  return (x: number): number => {
    if (Number.isNaN(x)) return NaN;
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a >= overflow) return sign | (dtype === 'bfloat16' ? 0x7f80 : 0x7c00);
    if (a >= max.v) return sign | max.h;
    let lo = 0;
    let hi = positives.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (positives[mid]!.v <= a) lo = mid;
      else hi = mid;
    }
    const below = positives[lo]!;
    const above = positives[hi]!;
    const dBelow = a - below.v;
    const dAbove = above.v - a;
    const pick = dBelow < dAbove ? below : dAbove < dBelow ? above : below.h % 2 === 0 ? below : above;
    return sign | pick.h;
  };
}

/** One unit in the last place of a half type at magnitude |v|. */
function halfUlp(dtype: DType, v: number): number {
  const mant = dtype === 'bfloat16' ? 7 : 10;
  const minNormal = dtype === 'bfloat16' ? 2 ** -126 : 2 ** -14;
  const a = Math.max(Math.abs(v), minNormal);
  return 2 ** (Math.floor(Math.log2(a)) - mant);
}

/** Largest error in half ulps of decoded `got` against `want`, each measured at the magnitude of scale[i]. */
function maxHalfUlpError(dtype: DType, got: Uint16Array, want: ArrayLike<number>, scale?: ArrayLike<number>): number {
  let worst = 0;
  const decode = decoders[dtype];
  for (let i = 0; i < got.length; i++) {
    const g = decode(got[i]!);
    const w = want[i]!;
    if (Number.isNaN(w) || Number.isNaN(g)) {
      if (!(Number.isNaN(w) && Number.isNaN(g))) return Infinity;
      continue;
    }
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (g !== w) return Infinity;
      continue;
    }
    worst = Math.max(worst, Math.abs(g - w) / halfUlp(dtype, Math.max(Math.abs(w), scale ? Math.abs(scale[i]!) : 0)));
  }
  return worst;
}

function randomHalf(dtype: DType, n: number, seed: number, lo = -2, hi = 2): Uint16Array {
  return encoders[dtype](randomArray(Float32Array, n, seed, lo, hi));
}

const DTYPES: DType[] = ['bfloat16', 'float16'];

describe.each(DTYPES)('%s conversions', (dtype) => {
  const decode = decoders[dtype];
  const encode = referenceEncoder(dtype);

  it('decodes every one of the 65536 bit patterns', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const got = decodersNative[dtype](all);
    for (let h = 0; h < 65536; h++) {
      const want = decode(h);
      if (Number.isNaN(want)) expect(Number.isNaN(got[h]!), `0x${h.toString(16)}`).toBe(true);
      else expect(Object.is(got[h], Math.fround(want)), `0x${h.toString(16)}`).toBe(true);
    }
  });

  it('encodes every half value back to itself, and every midpoint between neighbours to the even one', () => {
    const values: number[] = [];
    const want: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const v = decode(h);
      if (Number.isNaN(v)) continue;
      values.push(v);
      want.push(h);
    }
    // Midpoints of neighbouring finite values of the same sign (exact in float32 for both formats).
    for (let h = 0; h < 0x7fff; h++) {
      for (const sign of [0, 0x8000]) {
        const a = decode(sign | h);
        const b = decode(sign | (h + 1));
        if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
        const mid = (a + b) / 2;
        if (Math.fround(mid) !== mid) continue;
        values.push(mid);
        want.push(sign | (h % 2 === 0 ? h : h + 1));
      }
    }
    const got = encoders[dtype](Float32Array.from(values));
    let mismatches = 0;
    for (let i = 0; i < values.length; i++) if (got[i] !== want[i]) mismatches++;
    expect(mismatches).toBe(0);
    expect(values.length).toBeGreaterThan(dtype === 'bfloat16' ? 120000 : 120000);
  });

  it('rounds random floats, NaN, infinities, subnormals and overflow like the reference', () => {
    const r = rng(dtype === 'bfloat16' ? 1 : 2);
    const bits = new Uint32Array(200000);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(r() * 2 ** 32);
    const floats = new Float32Array(bits.buffer);
    const specials = Float32Array.from([
      NaN,
      -NaN,
      Infinity,
      -Infinity,
      0,
      -0,
      1e-45,
      -1e-45,
      1e-40,
      5.96e-8,
      2.98e-8,
      65504,
      65519.99,
      65520,
      65536,
      3.4028235e38,
      -3.4028235e38,
      3.3895314e38,
      3.3961e38,
    ]);
    for (const input of [floats, specials]) {
      const got = encoders[dtype](input);
      for (let i = 0; i < input.length; i++) {
        const want = encode(input[i]!);
        if (Number.isNaN(want)) {
          expect(Number.isNaN(decode(got[i]!)), `${input[i]}`).toBe(true);
        } else {
          expect(got[i], `${input[i]} -> 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`).toBe(want);
        }
      }
    }
  });

  it('writes into out, and refuses bad arguments', () => {
    const out = new Uint16Array(3);
    expect(encoders[dtype](Float32Array.from([1, 2, 3]), out)).toBe(out);
    expect(() => encoders[dtype](new Float64Array(3) as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
    expect(() => encoders[dtype](new Float32Array(3), new Uint16Array(2))).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }),
    );
    expect(() => decodersNative[dtype](new Uint16Array(2), new Float32Array(3))).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }),
    );
  });
});

describe.each(DTYPES)('%s ops in fp32 mode: within one storage ulp of the float64 reference', (dtype) => {
  const decode = decoders[dtype];
  const dec = (a: Uint16Array) => Array.from(a, decode);

  it.each([1, 7, 16, 17, 97, 1536, 4097])(
    'rmsNorm, dim %i, weight in the half type and in float32, bias, offset',
    (dim) => {
      const rows = 3;
      const x = randomHalf(dtype, rows * dim, dim);
      const wHalf = randomHalf(dtype, dim, dim + 1, 0.5, 1.5);
      const wF32 = randomArray(Float32Array, dim, dim + 2, 0.5, 1.5);
      const bias = randomHalf(dtype, dim, dim + 3, -1, 1);
      for (const [weight, opts] of [
        [wHalf, {}],
        [wF32, { partial: 0.5 }],
        [wHalf, { bias, offset: 1 }],
        [null, {}],
      ] as const) {
        const rstd = new Float32Array(rows);
        const o = { dim, dtype, rstd, ...opts };
        const y = rmsNorm(x, weight, o);
        expect(y).toBeInstanceOf(Uint16Array);
        const wd = weight instanceof Uint16Array ? dec(weight) : weight;
        const bd = 'bias' in opts ? dec(opts.bias) : null;
        const ref = referenceRmsNorm(dec(x), wd, {
          dim,
          bias: bd,
          offset: 'offset' in opts ? opts.offset : 0,
          partial: 'partial' in opts ? opts.partial : 1,
        });
        const scale = bd
          ? Float64Array.from(ref.y, (v, i) => Math.abs(v - bd[i % dim]!) + Math.abs(bd[i % dim]!))
          : undefined;
        expect(maxHalfUlpError(dtype, y, ref.y, scale)).toBeLessThanOrEqual(1);
        expect(maxRelError(rstd, ref.rstd)).toBeLessThan(1e-6);
      }
    },
  );

  it('layerNorm, addRmsNorm and both backward passes', () => {
    const dim = 97;
    const rows = 4;
    const x = randomHalf(dtype, rows * dim, 5, -3, 5);
    const w = randomHalf(dtype, dim, 6, 0.5, 1.5);
    const b = randomHalf(dtype, dim, 7, -1, 1);
    const ln = layerNorm(x, w, b, { dtype });
    const lnRef = referenceLayerNorm(dec(x), dec(w), dec(b), { dim });
    const lnScale = Float64Array.from(lnRef.y, (v, i) => Math.abs(v) + Math.abs(dec(b)[i % dim]!));
    expect(maxHalfUlpError(dtype, ln, lnRef.y, lnScale)).toBeLessThanOrEqual(1);

    const residual = randomHalf(dtype, rows * dim, 8);
    const res = residual.slice();
    const y = addRmsNorm(x, res, w, { dtype });
    const sum = dec(residual).map((v, i) => Math.fround(v + decode(x[i]!)));
    const sumHalf = encoders[dtype](Float32Array.from(sum));
    expect(Array.from(res)).toEqual(Array.from(sumHalf));
    expect(maxHalfUlpError(dtype, y, referenceRmsNorm(dec(sumHalf), dec(w), { dim }).y)).toBeLessThanOrEqual(1);

    const dy = randomHalf(dtype, rows * dim, 9, -1, 1);
    const g = rmsNormBackward(dy, x, w, { dtype });
    expect(g.dx).toBeInstanceOf(Uint16Array);
    expect(g.dweight).toBeInstanceOf(Float32Array);
    const ref = referenceRmsNormBackward(dec(dy), dec(x), dec(w), { dim });
    expect(
      maxHalfUlpError(
        dtype,
        g.dx,
        ref.dx,
        Float64Array.from(ref.dx, () => Math.max(...ref.dx.map(Math.abs))),
      ),
    ).toBeLessThanOrEqual(1);
    expect(maxRelError(g.dweight!, ref.dweight)).toBeLessThan(1e-5);
    expect(maxRelError(g.dbias, ref.dbias)).toBeLessThan(1e-5);
    const h = layerNormBackward(dy, x, w, { dtype });
    expect(h.dx).toBeInstanceOf(Uint16Array);
    expect(h.dbias).toBeInstanceOf(Float32Array);
  });
});

// bfloat16 shares float32's range, and with it the float32 kernels' extreme rows (README, "Numerical contract").
describe('bfloat16 extreme rows in fp32 mode', () => {
  const dtype = 'bfloat16';
  const dec = (a: Uint16Array) => Array.from(a, decodeBf16);

  it('rmsNorm with partial < 1: values past the first k whose x * rstd is beyond 3.4e38', () => {
    const x = toBFloat16(Float32Array.from([1e-30, 1e-25, 3e38, 1, -2e38, 0.5, 1e-20, 7]));
    const w = Float32Array.from([1, 1, 1e-30, 1, 1e-29, 1, 1, 1]);
    const y = rmsNorm(x, w, { dtype, partial: 0.25 });
    const ref = referenceRmsNorm(dec(x), w, { dim: 8, partial: 0.25 });
    expect(dec(y).every(Number.isFinite)).toBe(true);
    expect(maxHalfUlpError(dtype, y, ref.y)).toBeLessThanOrEqual(1);
  });

  /** The row's largest output: the scale of every output's rounding in a normalized row. */
  const rowScale = (y: Float64Array) => new Float64Array(y.length).fill(Math.max(...Array.from(y, Math.abs)));

  it('layerNorm of a row spanning more than the largest value', () => {
    const dim = 64;
    const row = new Float32Array(dim).fill(-3.3e38);
    row[0] = 3.3e38;
    const x = toBFloat16(row);
    for (const eps of [0, 1e-5]) {
      const ref = referenceLayerNorm(dec(x), null, null, { dim, eps });
      const y = layerNorm(x, null, null, { dim, dtype, eps });
      expect(maxHalfUlpError(dtype, y, ref.y, rowScale(ref.y)), `eps ${eps}`).toBeLessThanOrEqual(1);
    }
  });

  it('layerNorm of a row of subnormals', () => {
    const dim = 64;
    const x = toBFloat16(Float32Array.from({ length: dim }, (_, i) => (((i * 37) % 11) - 5) * 2 ** -133));
    const ref0 = referenceLayerNorm(dec(x), null, null, { dim, eps: 0 });
    const y0 = layerNorm(x, null, null, { dim, dtype, eps: 0 });
    expect(maxHalfUlpError(dtype, y0, ref0.y, rowScale(ref0.y))).toBeLessThanOrEqual(1);
    // With eps 1e-5 the outputs are subnormal themselves.
    const ref = referenceLayerNorm(dec(x), null, null, { dim, eps: 1e-5 });
    expect(maxHalfUlpError(dtype, layerNorm(x, null, null, { dim, dtype, eps: 1e-5 }), ref.y)).toBeLessThanOrEqual(1);
  });
});

describe.each(DTYPES)("%s castMode 'llama' matches its scalar model bit for bit", (dtype) => {
  const decode = decoders[dtype];
  const encode = referenceEncoder(dtype);

  // The rule (Hugging Face LlamaRMSNorm.forward with float32 compute): h = round_T(float32(x * rstd)), then
  // y = round_T(float32((offset + weight) * h)), where rstd is the float32 rstd the call reports.
  function model(
    x: Uint16Array,
    weight: Uint16Array | Float32Array | null,
    rstd: Float32Array,
    dim: number,
    offset = 0,
  ): Uint16Array {
    const y = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const r = rstd[Math.floor(i / dim)]!;
      let v = decode(encode(Math.fround(decode(x[i]!) * r)));
      if (weight) {
        const w = weight instanceof Uint16Array ? decode(weight[i % dim]!) : weight[i % dim]!;
        v = Math.fround(v * Math.fround(offset + w));
      }
      y[i] = encode(v);
    }
    return y;
  }

  it.each([1, 16, 97, 2560, 4096])('dim %i', (dim) => {
    const rows = 3;
    const x = randomHalf(dtype, rows * dim, dim + 40, -4, 4);
    for (const weight of [
      randomHalf(dtype, dim, dim + 41, 0.5, 1.5),
      randomArray(Float32Array, dim, dim + 42, 0.5, 1.5),
      null,
    ]) {
      const rstd = new Float32Array(rows);
      const y = rmsNorm(x, weight, { dim, dtype, castMode: 'llama', rstd });
      expect(Array.from(y)).toEqual(Array.from(model(x, weight, rstd, dim)));
      // and fp32 mode differs from it only by the extra rounding (within one ulp)
      const fp32 = rmsNorm(x, weight, { dim, dtype });
      let far = 0;
      for (let i = 0; i < y.length; i++)
        far = Math.max(far, Math.abs(decode(y[i]!) - decode(fp32[i]!)) / Math.abs(decode(fp32[i]!) || 1));
      expect(far).toBeLessThan(dtype === 'bfloat16' ? 2 ** -6 : 2 ** -9);
    }
  });

  it('with an offset (Gemma-style weights)', () => {
    const dim = 64;
    const x = randomHalf(dtype, 2 * dim, 50);
    const w = randomHalf(dtype, dim, 51, -0.5, 0.5);
    const rstd = new Float32Array(2);
    const y = rmsNorm(x, w, { dtype, castMode: 'llama', offset: 1, rstd });
    expect(Array.from(y)).toEqual(Array.from(model(x, w, rstd, dim, 1)));
  });
});

describe('half-precision argument checks', () => {
  const x = new Uint16Array(8);
  it.each([
    [
      'dtype missing',
      () => rmsNorm(x, null, { dim: 8 } as never),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options.dtype".*'bfloat16' or 'float16'.*received undefined/,
    ],
    [
      'dtype unknown',
      () => rmsNorm(x, null, { dim: 8, dtype: 'float8' as never }),
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /"options.dtype"/,
    ],
    [
      'dtype with float data',
      () => rmsNorm(new Float32Array(8), null, { dim: 8, dtype: 'bfloat16' } as never),
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /applies to Uint16Array data only/,
    ],
    [
      'castMode unknown',
      () => rmsNorm(x, null, { dim: 8, dtype: 'float16', castMode: 'fast' as never }),
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /"options.castMode"/,
    ],
    [
      'weight float64',
      () => rmsNorm(x, new Float64Array(8) as never, { dtype: 'float16' }),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"weight".*Float32Array or Uint16Array/,
    ],
    [
      'bias of another type than weight',
      () => rmsNorm(x, new Float32Array(8), { dtype: 'float16', bias: new Uint16Array(8) }),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options.bias".*Float32Array \(like the other parameters\)/,
    ],
    [
      'rstd not float32',
      () => rmsNorm(x, null, { dim: 8, dtype: 'float16', rstd: new Uint16Array(1) as never }),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options.rstd".*Float32Array/,
    ],
    [
      'out not half',
      () => rmsNorm(x, null, { dim: 8, dtype: 'float16', out: new Float32Array(8) as never }),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options.out".*Uint16Array/,
    ],
    [
      'dweight not float32',
      () => rmsNormBackward(x, x, null, { dim: 8, dtype: 'bfloat16', dweight: new Uint16Array(8) as never }),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options.dweight".*Float32Array/,
    ],
  ] as const)('%s', (_, call, type, code, message) => {
    const error = thrownBy(() => call());
    expect(error).toBeInstanceOf(type);
    expect((error as { code: string }).code).toBe(code);
    expect((error as Error).message).toMatch(message);
  });
});

// Calls of several rows widen half-precision parameters once and run the float32-parameter kernels; that must
// be invisible: the same bits as the same parameters given as float32, for short and long calls alike.
describe('half-precision parameters give the bits of the same values as float32', () => {
  const dim = 1000;
  it.each([
    ['bfloat16', 'fp32'],
    ['bfloat16', 'llama'],
    ['float16', 'fp32'],
    ['float16', 'llama'],
  ] as const)('%s, castMode %s, 1 to 9 rows', (dtype, castMode) => {
    const to = dtype === 'bfloat16' ? toBFloat16 : toFloat16;
    const from = dtype === 'bfloat16' ? fromBFloat16 : fromFloat16;
    const wh = to(randomArray(Float32Array, dim, 41, 0.5, 1.5));
    const bh = to(randomArray(Float32Array, dim, 42));
    const w32 = from(wh);
    const b32 = from(bh);
    for (const rows of [1, 3, 4, 9]) {
      const x = to(randomArray(Float32Array, rows * dim, 43 + rows));
      const res = to(randomArray(Float32Array, rows * dim, 53 + rows));
      const o = { dtype, castMode } as const;
      const bits = (a: Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      const same = (h: Uint16Array, f: Uint16Array, what: string) =>
        expect(bits(h).equals(bits(f)), `${what}, ${rows} rows`).toBe(true);
      same(
        rmsNorm(x, wh, { ...o, bias: bh, offset: 0.5 }),
        rmsNorm(x, w32, { ...o, bias: b32, offset: 0.5 }),
        'rmsNorm',
      );
      same(layerNorm(x, wh, bh, o), layerNorm(x, w32, b32, o), 'layerNorm');
      const r1 = res.slice();
      const r2 = res.slice();
      same(addRmsNorm(x, r1, wh, o), addRmsNorm(x, r2, w32, o), 'addRmsNorm');
      same(r1, r2, 'addRmsNorm residual');
    }
  });
});

// The vector paths narrow two vectors at a time and keep NaN only for pairs that hold one: every NaN lane must
// still come out a quiet NaN of the right sign, and every other lane of the pair rounded as usual.
describe.each(DTYPES)('%s outputs with NaN and infinite weights, at every position of a pair', (dtype) => {
  const to = dtype === 'bfloat16' ? toBFloat16 : toFloat16;
  const decode = dtype === 'bfloat16' ? decodeBf16 : decodeF16;
  it.each([64, 100, 37])('dim %i', (dim) => {
    const x = to(randomArray(Float32Array, 3 * dim, 71));
    for (const pos of [0, 7, 8, 15, 16, 31, dim - 1]) {
      if (pos >= dim) continue;
      // NaNs with payloads: 0x7fffffff rounded as a number would carry into the sign (-0), 0x7f800001 would
      // become infinity.
      for (const bad of [NaN, 0x7fffffff, 0xffffffff, 0x7f800001, 0x7fbfffff, Infinity, -Infinity]) {
        const w = randomArray(Float32Array, dim, 72, 0.5, 1.5);
        if (Number.isInteger(bad)) new Uint32Array(w.buffer)[pos] = bad;
        else w[pos] = bad;
        const y = rmsNorm(x, w, { dtype });
        const ref = referenceRmsNorm(Array.from(x, decode), w, { dim });
        for (let i = 0; i < y.length; i++) {
          const got = decode(y[i]!);
          const want = ref.y[i]!;
          if (Number.isNaN(want)) {
            expect(Number.isNaN(got), `NaN expected at ${i} (weight ${bad} at ${pos})`).toBe(true);
            // quiet: the top mantissa bit is set
            expect(y[i]! & (dtype === 'bfloat16' ? 0x40 : 0x200), `quiet NaN at ${i}`).not.toBe(0);
          } else if (!Number.isFinite(want)) {
            expect(got, `at ${i}`).toBe(want);
          } else {
            expect(Number.isNaN(got), `finite value expected at ${i} (weight ${bad} at ${pos})`).toBe(false);
            expect(maxHalfUlpError(dtype, y.subarray(i, i + 1), [want]), `at ${i}`).toBeLessThanOrEqual(1);
          }
        }
      }
    }
  });
});

// bfloat16 data with bfloat16 parameters may take another vector path than with float32 parameters (AVX2
// widens and rounds sixteen values at a time in even/odd lane order, with no NaN test: a NaN computed from
// bfloat16 operands has a payload the rounding keeps). NaNs with every kind of payload, in the data and in the
// weights, at every position of a vector pair, must give the same bits both ways.
describe('bfloat16 NaN payloads: bfloat16 and float32 parameters give the same bits', () => {
  // quiet, all payload bits, negative, signalling (the lowest payload bit only), infinities
  const payloads = [0x7fc0, 0x7fff, 0xffff, 0xffc1, 0x7f81, 0xff81, 0x7f80, 0xff80];
  const bits = (a: Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  it.each([37, 64, 100, 4096])('dim %i', (dim) => {
    const rows = payloads.length;
    // x: payload r in row r; weight: one payload per call
    const cases = [['x', -1] as const, ...payloads.map((_, k) => ['weight', k] as const)];
    for (const [where, k] of cases) {
      for (const pos of [0, 1, 7, 8, 15, 16, 17, 31, dim - 1]) {
        if (pos >= dim) continue;
        const x = toBFloat16(randomArray(Float32Array, rows * dim, 81 + pos));
        const wh = toBFloat16(randomArray(Float32Array, dim, 82, 0.5, 1.5));
        const bh = toBFloat16(randomArray(Float32Array, dim, 83));
        if (where === 'weight') wh[pos] = payloads[k]!;
        else payloads.forEach((p, r) => (x[r * dim + pos] = p));
        const w32 = fromBFloat16(wh);
        const b32 = fromBFloat16(bh);
        const o = { dtype: 'bfloat16' } as const;
        const what = `${where} ${where === 'weight' ? `0x${payloads[k]!.toString(16)} ` : ''}at ${pos}`;
        const same = (h: Uint16Array, f: Uint16Array, op: string) =>
          expect(bits(h).equals(bits(f)), `${op}, ${what}`).toBe(true);
        same(rmsNorm(x, wh, o), rmsNorm(x, w32, o), 'rmsNorm');
        same(
          rmsNorm(x, null, { ...o, dim }),
          rmsNorm(
            x,
            w32.map(() => 1),
            o,
          ),
          'rmsNorm without weight',
        );
        same(layerNorm(x, wh, bh, o), layerNorm(x, w32, b32, o), 'layerNorm');
        same(rmsNorm(x, wh, { ...o, castMode: 'llama' }), rmsNorm(x, w32, { ...o, castMode: 'llama' }), 'llama');
        // every NaN lane a quiet NaN, and NaNs there are where a NaN went in
        const y = rmsNorm(x, wh, o);
        let nans = 0;
        for (let i = 0; i < y.length; i++) {
          if ((y[i]! & 0x7fff) > 0x7f80) {
            nans++;
            expect(y[i]! & 0x40, `quiet at ${i} (${what})`).not.toBe(0);
          }
        }
        if (where === 'x' || (payloads[k]! & 0x7fff) > 0x7f80) expect(nans, `NaNs out (${what})`).toBeGreaterThan(0);
      }
    }
  });
});

// Calls of four rows and more may run with their parameters prepared once (AVX2 with bfloat16 data: widened,
// stored in the kernel's lane order from the first row's aligned column on); every row must come out with the
// bits the same row gets alone, whatever its alignment, on the vector path and on the exact path (rows whose
// 1/rms leaves float32's range), with float32 and bfloat16 parameters, NaN payloads in float32 weights included.
describe('bfloat16 calls of several rows give each row the bits it gets alone', () => {
  const bits = (a: Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  it.each([37, 100, 4096])('dim %i', (dim) => {
    const rows = 6;
    const row = (r: number) => {
      const v = randomArray(Float32Array, dim, 91 + r);
      // rows 1 and 4: magnitudes near the bottom of bfloat16's range, rstd beyond float32's
      if (r === 1 || r === 4) v.forEach((t, i) => (v[i] = t * 2 ** -128));
      return v;
    };
    const x = new Uint16Array(rows * dim);
    for (let r = 0; r < rows; r++) x.set(toBFloat16(row(r)), r * dim);
    const wh = toBFloat16(randomArray(Float32Array, dim, 95, 0.5, 1.5));
    const bh = toBFloat16(randomArray(Float32Array, dim, 96));
    const wNaN = fromBFloat16(wh);
    new Uint32Array(wNaN.buffer)[dim >> 1] = 0x7fffffff; // a float32 NaN with low payload bits
    for (const [w, b, what] of [
      [wh, bh, 'bfloat16 parameters'],
      [fromBFloat16(wh), fromBFloat16(bh), 'float32 parameters'],
      [wNaN, null, 'float32 weight with a NaN payload'],
    ] as const) {
      for (const castMode of ['fp32', 'llama'] as const) {
        // out at an odd element offset: rows start at different offsets within a cache line
        const buffer = new Uint16Array(rows * dim + 3);
        const out = buffer.subarray(3, 3 + rows * dim);
        const o = { dtype: 'bfloat16', castMode, out } as const;
        const all = {
          rms: rmsNorm(x, w, { ...o, bias: b ?? undefined }).slice(),
          ln: layerNorm(x, w, b, o).slice(),
        };
        for (let r = 0; r < rows; r++) {
          const xr = x.subarray(r * dim, (r + 1) * dim);
          const one = { dtype: 'bfloat16', castMode } as const;
          const at = `${what}, ${castMode}, row ${r}`;
          const slice = (a: Uint16Array) => a.subarray(r * dim, (r + 1) * dim);
          expect(
            bits(slice(all.rms)).equals(bits(rmsNorm(xr, w, { ...one, bias: b ?? undefined }))),
            `rmsNorm ${at}`,
          ).toBe(true);
          expect(bits(slice(all.ln)).equals(bits(layerNorm(xr, w, b, one))), `layerNorm ${at}`).toBe(true);
        }
        const res1 = toBFloat16(randomArray(Float32Array, rows * dim, 97));
        const res2 = res1.slice();
        const y = addRmsNorm(x, res1, w, o).slice();
        for (let r = 0; r < rows; r++) {
          const yr = addRmsNorm(x.subarray(r * dim, (r + 1) * dim), res2.subarray(r * dim, (r + 1) * dim), w, {
            dtype: 'bfloat16',
            castMode,
          });
          expect(
            bits(y.subarray(r * dim, (r + 1) * dim)).equals(bits(yr)),
            `addRmsNorm ${what}, ${castMode}, row ${r}`,
          ).toBe(true);
        }
      }
    }
  });
});

// addRmsNorm on bfloat16: the new residual is the bfloat16 rounding of the exact sum (float32's sum of two
// bfloat16 values rounds to the same bfloat16), bit for bit, on the even/odd path of AVX2 and everywhere else;
// NaN and infinite inputs give NaN or the infinity.
describe('bfloat16 addRmsNorm residual', () => {
  it.each([7, 37, 100, 4096])('dim %i', (dim) => {
    const rows = 5;
    const n = rows * dim;
    const x = toBFloat16(randomArray(Float32Array, n, 101));
    const res = toBFloat16(randomArray(Float32Array, n, 102));
    // far apart in magnitude, ties, and specials
    for (let i = 0; i < n; i += 13) res[i] = toBFloat16(Float32Array.of(2 ** ((i % 40) - 20)))[0]!;
    const specials = [0x7fc0, 0xffff, 0x7f81, 0x7f80, 0xff80, 0x0001, 0x8000];
    specials.forEach((h, k) => (x[(k * 7919) % n] = h));
    const want = toBFloat16(Float32Array.from(res, (r, i) => decodeBf16(r) + decodeBf16(x[i]!)));
    const got = res.slice();
    addRmsNorm(x, got, toBFloat16(randomArray(Float32Array, dim, 103, 0.5, 1.5)), { dtype: 'bfloat16' });
    for (let i = 0; i < n; i++) {
      const w = decodeBf16(want[i]!);
      if (Number.isNaN(w)) expect(Number.isNaN(decodeBf16(got[i]!)), `NaN at ${i}`).toBe(true);
      else expect(got[i], `at ${i}`).toBe(want[i]);
    }
  });
});
