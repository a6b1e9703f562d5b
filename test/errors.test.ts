// Every error class of the contract: the right constructor, the Node-style code, a message that names the
// argument, and no output written. Runs on every backend (the native one re-checks in C++ and does the
// overlap checks itself, with the same messages).
import { describe, expect, it } from 'vitest';
import {
  addRmsNorm,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  RMSNorm,
  LayerNorm,
} from '../dist/index.js';
import { thrownBy } from './reference';

type Case = {
  name: string;
  call: (out: Float32Array, rstd: Float32Array) => unknown;
  type: typeof TypeError | typeof RangeError;
  code: string;
  message: RegExp;
};

const dim = 8;
const rows = 2;
const x = Float32Array.from({ length: rows * dim }, (_, i) => i - 5);
const w = new Float32Array(dim).fill(1);

const cases: Case[] = [
  // ERR_INVALID_ARG_TYPE
  {
    name: 'x is a plain array',
    call: () => rmsNorm([1, 2] as unknown as Float32Array, null, { dim: 2 }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /^The "x" argument must be a Float32Array, Float64Array or Uint16Array, received an instance of Array$/,
  },
  {
    name: 'x is an Int32Array',
    call: () => rmsNorm(new Int32Array(8) as unknown as Float32Array, null, { dim: 8 }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"x".*Float32Array, Float64Array or Uint16Array.*Int32Array/,
  },
  {
    name: 'x is undefined',
    call: () => (rmsNorm as (...a: unknown[]) => unknown)(),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"x".*received undefined/,
  },
  {
    name: 'x is a string',
    call: () => rmsNorm('abc' as unknown as Float32Array, null, { dim: 1 }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"x".*received type string \("abc"\)/,
  },
  {
    name: 'weight of another element type',
    call: (out) => rmsNorm(x, new Float64Array(dim) as never, { out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message:
      /^The "weight" argument must be a Float32Array \(the element type of "x"\) or null, received an instance of Float64Array of length 8$/,
  },
  {
    name: 'weight is a number',
    call: (out) => rmsNorm(x, 3 as never, { out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"weight".*received type number \(3\)/,
  },
  {
    name: 'options is a number',
    call: () => rmsNorm(x, w, 5 as never),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /^The "options" argument must be an object, received type number \(5\)$/,
  },
  {
    name: 'options is a string',
    call: () => rmsNorm(x, w, 'eps' as never),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options".*an object/,
  },
  {
    name: 'options is an array',
    call: () => rmsNorm(x, w, [] as never),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options".*an object.*Array/,
  },
  {
    name: 'dim is a string',
    call: (out) => rmsNorm(x, null, { dim: '8' as never, out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.dim".*of type number.*received type string/,
  },
  {
    name: 'dim missing with null weight',
    call: (out) => rmsNorm(x, null, { out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.dim".*when weight is null.*received undefined/,
  },
  {
    name: 'eps is a string',
    call: (out) => rmsNorm(x, w, { eps: '1e-5' as never, out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.eps".*number/,
  },
  {
    name: 'offset is null',
    call: (out) => rmsNorm(x, w, { offset: null as never, out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.offset".*number.*received null/,
  },
  {
    name: 'partial is a boolean',
    call: (out) => rmsNorm(x, w, { partial: true as never, out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.partial".*number/,
  },
  {
    name: 'bias of another element type',
    call: (out) => rmsNorm(x, w, { bias: new Float64Array(dim) as never, out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.bias".*Float32Array.*Float64Array/,
  },
  {
    name: 'out of another element type',
    call: () => rmsNorm(x, w, { out: new Float64Array(x.length) as never }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.out".*Float32Array/,
  },
  {
    name: 'out is a plain array',
    call: () => rmsNorm(x, w, { out: [] as never }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.out".*Array/,
  },
  {
    name: 'rstd of another element type',
    call: (out) => rmsNorm(x, w, { out, rstd: new Float64Array(rows) as never }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.rstd".*Float32Array/,
  },
  // ERR_OUT_OF_RANGE
  {
    name: 'x not a multiple of dim',
    call: (out) => rmsNorm(x, null, { dim: 5, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /^The "x" argument must have a length that is a multiple of dim \(5\), received length 16$/,
  },
  {
    name: 'weight of the wrong length',
    call: (out) => rmsNorm(x, new Float32Array(7), { dim: 8, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /^The "weight" argument must have length 8 \(dim\), received length 7$/,
  },
  {
    name: 'dim 0',
    call: (out) => rmsNorm(x, null, { dim: 0, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.dim".*positive integer.*received 0/,
  },
  {
    name: 'dim -8',
    call: (out) => rmsNorm(x, null, { dim: -8, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.dim".*received -8/,
  },
  {
    name: 'dim 2.5',
    call: (out) => rmsNorm(x, null, { dim: 2.5, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.dim".*received 2.5/,
  },
  {
    name: 'dim NaN',
    call: (out) => rmsNorm(x, null, { dim: NaN, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.dim".*received NaN/,
  },
  {
    name: 'dim Infinity',
    call: (out) => rmsNorm(x, null, { dim: Infinity, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.dim".*received Infinity/,
  },
  {
    name: 'eps negative',
    call: (out) => rmsNorm(x, w, { eps: -1e-5, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /^The "options.eps" argument must be a finite number >= 0, received -0.00001$/,
  },
  {
    name: 'eps NaN',
    call: (out) => rmsNorm(x, w, { eps: NaN, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.eps".*received NaN/,
  },
  {
    name: 'eps Infinity',
    call: (out) => rmsNorm(x, w, { eps: Infinity, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.eps".*received Infinity/,
  },
  {
    name: 'partial 0',
    call: (out) => rmsNorm(x, w, { partial: 0, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /^The "options.partial" argument must be in \(0, 1\], received 0$/,
  },
  {
    name: 'partial 1.5',
    call: (out) => rmsNorm(x, w, { partial: 1.5, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.partial".*received 1.5/,
  },
  {
    name: 'partial NaN',
    call: (out) => rmsNorm(x, w, { partial: NaN, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.partial".*received NaN/,
  },
  {
    name: 'offset Infinity',
    call: (out) => rmsNorm(x, w, { offset: Infinity, out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /"options.offset".*finite/,
  },
  {
    name: 'bias of the wrong length',
    call: (out) => rmsNorm(x, w, { bias: new Float32Array(9), out }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /^The "options.bias" argument must have length 8 \(dim\), received length 9$/,
  },
  {
    name: 'out of the wrong length',
    call: () => rmsNorm(x, w, { out: new Float32Array(15) }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /^The "options.out" argument must have length 16 \(x.length\), received length 15$/,
  },
  {
    name: 'rstd of the wrong length',
    call: (out) => rmsNorm(x, w, { out, rstd: new Float32Array(3) }),
    type: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /^The "options.rstd" argument must have length 2 \(rows\), received length 3$/,
  },
  // ERR_INVALID_ARG_VALUE
  {
    name: 'offset with weight null',
    call: (out) => rmsNorm(x, null, { dim, offset: 1, out }),
    type: TypeError,
    code: 'ERR_INVALID_ARG_VALUE',
    message: /^The "options.offset" argument requires a weight \(weight is null\)$/,
  },
];

function overlapCases(): Case[] {
  const mk = (name: string, call: Case['call'], message: RegExp): Case => ({
    name,
    call,
    type: TypeError,
    code: 'ERR_INVALID_ARG_VALUE',
    message,
  });
  const buf = new Float32Array(64);
  const xs = buf.subarray(0, 16);
  return [
    mk(
      'out overlaps x by a shifted view',
      () => rmsNorm(xs, null, { dim, out: buf.subarray(1, 17) }),
      /^The "options.out" argument must not overlap "x" unless it is exactly the same view \(in place\)$/,
    ),
    mk(
      'out overlaps weight',
      () => rmsNorm(xs, buf.subarray(20, 28), { out: buf.subarray(16, 32) }),
      /^The "options.out" argument must not overlap "weight"$/,
    ),
    mk(
      'out overlaps bias',
      () => rmsNorm(xs, null, { dim, bias: buf.subarray(20, 28), out: buf.subarray(16, 32) }),
      /"options.out".*must not overlap "options.bias"/,
    ),
    mk(
      'rstd overlaps x',
      () => rmsNorm(xs, null, { dim, out: buf.subarray(32, 48), rstd: buf.subarray(15, 17) }),
      /^The "options.rstd" argument must not overlap "x"$/,
    ),
    // Outputs are checked in argument order: out comes before rstd.
    mk(
      'rstd overlaps out',
      () => rmsNorm(xs, null, { dim, out: buf.subarray(32, 48), rstd: buf.subarray(47, 49) }),
      /^The "options.out" argument must not overlap "options.rstd"$/,
    ),
    mk(
      'rstd overlaps weight',
      () => rmsNorm(xs, buf.subarray(50, 58), { out: buf.subarray(32, 48), rstd: buf.subarray(57, 59) }),
      /"options.rstd".*must not overlap "weight"/,
    ),
    mk(
      'rstd is the same view as x',
      () => rmsNorm(buf.subarray(0, 2), null, { dim: 1, out: buf.subarray(2, 4), rstd: buf.subarray(0, 2) }),
      /"options.rstd".*must not overlap "x"/,
    ),
  ];
}

function detach(a: Float32Array): Float32Array {
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
  return a;
}

describe('bad input throws a coded error and writes nothing', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
    const out = new Float32Array(rows * dim).fill(7);
    const rstd = new Float32Array(rows).fill(7);
    const xBefore = Array.from(x);
    const error = thrownBy(() => c.call(out, rstd));
    expect(error).toBeInstanceOf(c.type);
    expect((error as { code?: string }).code).toBe(c.code);
    expect((error as Error).message).toMatch(c.message);
    expect(Array.from(out)).toEqual(new Array(rows * dim).fill(7));
    expect(Array.from(rstd)).toEqual([7, 7]);
    expect(Array.from(x)).toEqual(xBefore);
  });

  it.each(overlapCases().map((c) => [c.name, c] as const))('%s', (_, c) => {
    const error = thrownBy(() => c.call(new Float32Array(0), new Float32Array(0)));
    expect(error).toBeInstanceOf(c.type);
    expect((error as { code?: string }).code).toBe(c.code);
    expect((error as Error).message).toMatch(c.message);
  });

  it('an overlapping call leaves the shared buffer as it was', () => {
    const buf = Float32Array.from({ length: 40 }, (_, i) => i);
    const before = Array.from(buf);
    expect(() => rmsNorm(buf.subarray(0, 16), null, { dim, out: buf.subarray(8, 24) })).toThrow(/overlap/);
    expect(Array.from(buf)).toEqual(before);
  });

  it('detached buffers are refused with ERR_INVALID_ARG_VALUE', () => {
    const attempts: (() => unknown)[] = [
      () => rmsNorm(detach(new Float32Array(16)), null, { dim }),
      () => rmsNorm(x, detach(new Float32Array(8))),
      () => rmsNorm(x, w, { out: detach(new Float32Array(16)) }),
      () => rmsNorm(x, w, { bias: detach(new Float32Array(8)) }),
      () => rmsNorm(x, w, { rstd: detach(new Float32Array(2)) }),
    ];
    for (const attempt of attempts) {
      const error = thrownBy(() => attempt());
      expect(error).toBeInstanceOf(TypeError);
      expect((error as { code?: string }).code).toBe('ERR_INVALID_ARG_VALUE');
      expect((error as Error).message).toMatch(/detached ArrayBuffer/);
    }
  });

  it('accepts null and undefined as "no options", and null optional arrays', () => {
    const a = rmsNorm(x, w);
    expect(Array.from(rmsNorm(x, w, null as never))).toEqual(Array.from(a));
    expect(Array.from(rmsNorm(x, w, undefined))).toEqual(Array.from(a));
    expect(Array.from(rmsNorm(x, w, { bias: null, out: null, rstd: null }))).toEqual(Array.from(a));
    expect(Array.from(rmsNorm(x, null, { dim, offset: 0 }))).toEqual(Array.from(rmsNorm(x, null, { dim })));
  });

  it('treats a distinct view object over exactly the same memory as x as in place', () => {
    const a = Float32Array.from(x);
    const same = new Float32Array(a.buffer, a.byteOffset, a.length);
    const expected = rmsNorm(x, w);
    expect(rmsNorm(a, w, { out: same })).toBe(same);
    expect(Array.from(a)).toEqual(Array.from(expected));
  });

  it('accepts arrays on a SharedArrayBuffer', () => {
    const shared = new Float32Array(new SharedArrayBuffer(x.byteLength));
    shared.set(x);
    expect(Array.from(rmsNorm(shared, w))).toEqual(Array.from(rmsNorm(x, w)));
  });
});

describe('the other ops check their arguments the same way', () => {
  const x64 = new Float64Array(16);
  const cases: [string, () => unknown, typeof TypeError | typeof RangeError, string, RegExp][] = [
    [
      'layerNorm: bias of another type',
      () => layerNorm(x, w, new Float64Array(8) as never),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /^The "bias" argument must be a Float32Array \(the element type of "x"\) or null/,
    ],
    [
      'layerNorm: bias of the wrong length',
      () => layerNorm(x, w, new Float32Array(4)),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /^The "bias" argument must have length 8 \(dim\), received length 4$/,
    ],
    [
      'layerNorm: mean of the wrong length',
      () => layerNorm(x, w, null, { mean: new Float32Array(3) }),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /"options.mean".*length 2 \(rows\)/,
    ],
    [
      'layerNorm: mean overlapping out',
      () => {
        const b = new Float32Array(40);
        return layerNorm(x, w, null, { out: b.subarray(0, 16), mean: b.subarray(15, 17) });
      },
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /^The "options.out" argument must not overlap "options.mean"$/,
    ],
    [
      'layerNorm: options not an object',
      () => layerNorm(x, w, null, 1 as never),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options"/,
    ],
    [
      'addRmsNorm: residual missing',
      () => addRmsNorm(x, null as never, w),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /^The "residual" argument must be a Float32Array, received null$/,
    ],
    [
      'addRmsNorm: residual of the wrong length',
      () => addRmsNorm(x, new Float32Array(8), w),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /^The "residual" argument must have length 16 \(x.length\), received length 8$/,
    ],
    [
      'addRmsNorm: residual of another type',
      () => addRmsNorm(x, x64 as never, w),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"residual".*Float32Array/,
    ],
    [
      'addRmsNorm: partial 2',
      () => addRmsNorm(x, new Float32Array(16), w, { partial: 2 }),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /"options.partial"/,
    ],
    [
      'rmsNormBackward: x of another type',
      () => rmsNormBackward(x, x64 as never, w),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /^The "x" argument must be a Float32Array \(the element type of "x"\)/,
    ],
    [
      'rmsNormBackward: dy not a multiple of dim',
      () => rmsNormBackward(new Float32Array(12), new Float32Array(12), w),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /^The "dy" argument must have a length that is a multiple of dim \(8\), received length 12$/,
    ],
    [
      'rmsNormBackward: x of the wrong length',
      () => rmsNormBackward(x, new Float32Array(8), w),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /^The "x" argument must have length 16 \(dy.length\), received length 8$/,
    ],
    [
      'rmsNormBackward: rstd of the wrong length',
      () => rmsNormBackward(x, x, w, { rstd: new Float32Array(1) }),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /"options.rstd".*length 2 \(rows\)/,
    ],
    [
      'rmsNormBackward: dweight of the wrong length',
      () => rmsNormBackward(x, x, w, { dweight: new Float32Array(9) }),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /"options.dweight".*length 8 \(dim\), received length 9/,
    ],
    [
      'rmsNormBackward: accumulate not a boolean',
      () => rmsNormBackward(x, x, w, { accumulate: 1 as never }),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /^The "options.accumulate" argument must be of type boolean, received type number \(1\)$/,
    ],
    [
      'rmsNormBackward: dx overlapping x',
      () => {
        const b = new Float32Array(32);
        return rmsNormBackward(x, b.subarray(0, 16), w, { dx: b.subarray(8, 24) });
      },
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /^The "options.dx" argument must not overlap "x"$/,
    ],
    [
      'rmsNormBackward: dx shifted over dy',
      () => {
        const b = new Float32Array(32);
        return rmsNormBackward(b.subarray(0, 16), x, w, { dx: b.subarray(1, 17) });
      },
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /^The "options.dx" argument must not overlap "dy" unless it is exactly the same view \(in place\)$/,
    ],
    [
      'rmsNormBackward: dweight overlapping dbias',
      () => {
        const b = new Float32Array(32);
        return rmsNormBackward(x, x, w, { dweight: b.subarray(0, 8), dbias: b.subarray(4, 12) });
      },
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /^The "options.dweight" argument must not overlap "options.dbias"$/,
    ],
    [
      'rmsNormBackward: offset without weight',
      () => rmsNormBackward(x, x, null, { dim: 8, offset: 1 }),
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /"options.offset" argument requires a weight/,
    ],
    [
      'layerNormBackward: mean of another type',
      () => layerNormBackward(x, x, w, { mean: new Float64Array(2) as never }),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options.mean"/,
    ],
    [
      'layerNormBackward: eps negative',
      () => layerNormBackward(x, x, w, { eps: -1 }),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /"options.eps"/,
    ],
    [
      'layerNormBackward: dbias overlapping weight',
      () => {
        const b = new Float32Array(32);
        return layerNormBackward(x, x, b.subarray(0, 8), { dbias: b.subarray(7, 15) });
      },
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /^The "options.dbias" argument must not overlap "weight"$/,
    ],
    [
      'RMSNorm: dim 0',
      () => new RMSNorm(0),
      RangeError,
      'ERR_OUT_OF_RANGE',
      /^The "dim" argument must be a positive integer/,
    ],
    [
      'RMSNorm: offset without affine',
      () => new RMSNorm(8, { affine: false, offset: 1 }),
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /"options.offset"/,
    ],
    [
      'RMSNorm: dtype unknown',
      () => new RMSNorm(8, { dtype: 'float16' as never }),
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /"options.dtype"/,
    ],
    [
      'RMSNorm: input of the wrong dtype',
      () => new RMSNorm(8).forward(x64 as never),
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /^The "x" argument must be a Float32Array \(the module's dtype\)/,
    ],
    [
      'RMSNorm: backward before forward',
      () => new RMSNorm(8).backward(x),
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /call forward\(x\) before backward\(dy\)/,
    ],
    [
      'LayerNorm: dy of another length',
      () => {
        const m = new LayerNorm(8);
        m.forward(x);
        return m.backward(new Float32Array(8));
      },
      RangeError,
      'ERR_OUT_OF_RANGE',
      /"dy".*length 16/,
    ],
  ];
  it.each(cases)('%s', (_, call, type, code, message) => {
    const error = thrownBy(() => call());
    expect(error).toBeInstanceOf(type);
    expect((error as { code?: string }).code).toBe(code);
    expect((error as Error).message).toMatch(message);
  });

  it('a failed backward call leaves dx, dweight and dbias untouched', () => {
    const dx = new Float32Array(16).fill(5);
    const dweight = new Float32Array(8).fill(5);
    const dbias = new Float32Array(8).fill(5);
    expect(() => rmsNormBackward(x, x, w, { dx, dweight, dbias, rstd: new Float32Array(3) })).toThrow(RangeError);
    expect(() => layerNormBackward(x, x, w, { dx, dweight, dbias, accumulate: 'yes' as never })).toThrow(TypeError);
    for (const a of [dx, dweight, dbias]) expect(Array.from(a).every((v) => v === 5)).toBe(true);
  });
});
