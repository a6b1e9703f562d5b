// Property-based tests of bad input, on every backend (see vitest.config.mts):
// - every op and its async twin, called through the public API with one random defect in an otherwise valid
//   call, must throw (or reject with) the contract's error: TypeError with ERR_INVALID_ARG_TYPE, RangeError
//   with ERR_OUT_OF_RANGE, TypeError with ERR_INVALID_ARG_VALUE, a message naming the argument, and no byte
//   of any array written;
// - with the native module, its positional entry points (which the facade calls after its own checks) are
//   called directly with arbitrary arguments: they must throw the code an independent reading of the rules
//   expects, never crash, write nothing when they throw, and compute what the fallback computes when they
//   do not.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import * as api from '../dist/index.js';
import { fallback } from '../dist/fallback.js';
import { load } from '../dist/loader.js';
import { count, params, runs, seed, tally } from './property-config';
import { TYPES, type Ctor } from './property-numeric';
import { randomArray, type FloatArray } from './reference';
import { nativeRequested } from './setup';

afterAll(() => {
  if (process.env.RMSNORM_PROPERTY_REPORT)
    console.log(
      `property-errors.test.ts (${process.env.RMSNORM_TEST_BACKEND}, seed ${seed}, ${runs} runs): ${JSON.stringify(tally)}`,
    );
});

type Code = 'ERR_INVALID_ARG_TYPE' | 'ERR_OUT_OF_RANGE' | 'ERR_INVALID_ARG_VALUE';
const OPS = ['rmsNorm', 'layerNorm', 'addRmsNorm', 'rmsNormBackward', 'layerNormBackward'] as const;
type Op = (typeof OPS)[number];
const SENTINEL = -4242.5;

function detached(T: Ctor): FloatArray {
  const a = new T(4);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}
const other = (T: Ctor): Ctor => (T === Float32Array ? Float64Array : Float32Array);

/** Values that are not Float32Array/Float64Array (nor null/undefined). */
const notAnArray = fc.constantFrom<() => unknown>(
  () => 1,
  () => 'x',
  () => ({}),
  () => [1, 2, 3],
  () => true,
  () => 10n,
  () => Symbol('s'),
  () => () => 0,
  () => new Int32Array(8),
  () => new Uint16Array(8),
  () => new Float64Array(8).buffer,
  () => new DataView(new ArrayBuffer(8)),
);
const notANumber = fc.constantFrom<unknown>('1', null, true, {}, [], 10n, Symbol('n'));

/** A valid call: positional arguments, the arrays it must leave untouched or write, and how to call it. */
interface Call {
  op: Op;
  args: unknown[]; // positional, options last
  opts: Record<string, unknown>;
  arrays: { name: string; a: FloatArray; before: string }[];
}

function snapshot(a: FloatArray): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

function baseCall(op: Op, T: Ctor, dim: number, rows: number, withWeight: boolean, s: number): Call {
  const n = dim * rows;
  // Inputs and outputs live in one buffer, each at its own place, so that defects can make them overlap.
  const pool = new T(8 * n + 4 * dim + 4 * rows + 64).fill(SENTINEL);
  let at = 1;
  const take = (len: number, values?: FloatArray) => {
    const v = pool.subarray(at, at + len);
    if (values) v.set(values);
    at += len + 1;
    return v;
  };
  const x = take(n, randomArray(T, n, s + 1));
  const w = withWeight ? take(dim, randomArray(T, dim, s + 2, 0.5, 1.5)) : null;
  const opts: Record<string, unknown> = { dim, eps: 1e-5 };
  let args: unknown[];
  if (op === 'rmsNorm' || op === 'addRmsNorm') {
    opts.bias = take(dim, randomArray(T, dim, s + 3));
    opts.out = take(n);
    opts.rstd = take(rows);
    opts.partial = 0.5;
    if (w) opts.offset = 1;
    args = op === 'rmsNorm' ? [x, w, opts] : [x, take(n, randomArray(T, n, s + 4)), w, opts];
  } else if (op === 'layerNorm') {
    opts.out = take(n);
    opts.mean = take(rows);
    opts.rstd = take(rows);
    args = [x, w, take(dim, randomArray(T, dim, s + 5)), opts];
  } else {
    const dy = take(n, randomArray(T, n, s + 6));
    opts.dx = take(n);
    opts.dweight = take(dim);
    opts.dbias = take(dim);
    opts.accumulate = true;
    if (op === 'rmsNormBackward') {
      opts.partial = 0.5;
      if (w) opts.offset = 0.5;
    }
    args = [dy, x, w, opts];
  }
  const arrays = [{ name: 'pool', a: pool, before: snapshot(pool) }];
  return { op, args, opts, arrays };
}

/** One defect and the code it must produce. */
type Defect = { what: string; code: Code; apply: (c: Call, T: Ctor, dim: number, rows: number) => boolean };

/** Names of the array options of an op (as the public API spells them) and positional array indexes. */
function arrayOptions(op: Op): string[] {
  if (op === 'rmsNorm' || op === 'addRmsNorm') return ['bias', 'out', 'rstd'];
  if (op === 'layerNorm') return ['out', 'mean', 'rstd'];
  return ['dx', 'dweight', 'dbias', 'rstd', ...(op === 'layerNormBackward' ? ['mean'] : [])];
}
const requiredPositions = (op: Op) => (op === 'rmsNorm' || op === 'layerNorm' ? [0] : [0, 1]);
const weightPosition = (op: Op) => (op === 'rmsNorm' || op === 'layerNorm' ? 1 : 2);
const optionsPosition = (op: Op) => (op === 'rmsNorm' ? 2 : 3);
const hasOffset = (op: Op) => op === 'rmsNorm' || op === 'addRmsNorm' || op === 'rmsNormBackward';
const hasPartial = hasOffset;
const isBackward = (op: Op) => op === 'rmsNormBackward' || op === 'layerNormBackward';

function pick<T>(values: T[], r: number): T {
  return values[r % values.length]!;
}

/** The defects, each drawn with a random choice `r` and random values. */
function defectArb(op: Op): fc.Arbitrary<{ defect: Defect; r: number }> {
  const defects: fc.Arbitrary<Defect>[] = [
    notAnArray.map((v) => ({
      what: 'a required array is not a Float32Array/Float64Array',
      code: 'ERR_INVALID_ARG_TYPE' as Code,
      apply: (c: Call) => ((c.args[pick(requiredPositions(op), c.args.length)] = v()), true),
    })),
    fc.constantFrom(null, undefined).map((v) => ({
      what: 'a required array is missing',
      code: 'ERR_INVALID_ARG_TYPE' as Code,
      apply: (c: Call) => (requiredPositions(op).length > 1 ? ((c.args[1] = v), true) : false),
    })),
    notAnArray.map((v) => ({
      what: 'an optional array is not a Float32Array/Float64Array',
      code: 'ERR_INVALID_ARG_TYPE' as Code,
      apply: (c: Call, _T: Ctor) => ((c.opts[pick(arrayOptions(op), c.args.length)] = v()), true),
    })),
    fc.nat().map((r) => ({
      what: 'an array of the other element type',
      code: 'ERR_INVALID_ARG_TYPE' as Code,
      apply: (c: Call, T: Ctor, dim: number, rows: number) => {
        const names = arrayOptions(op);
        const name = names[r % names.length]!;
        const len =
          (c.opts[name] as FloatArray | undefined)?.length ?? (name === 'rstd' || name === 'mean' ? rows : dim);
        if (r % 3 === 0 && c.args[weightPosition(op)]) c.args[weightPosition(op)] = new (other(T))(dim);
        else c.opts[name] = new (other(T))(len);
        return true;
      },
    })),
    fc
      .constantFrom<unknown>(1, 'opts', true, [], 10n, Symbol('o'), () => ({}))
      .map((v) => ({
        what: 'options is not an object',
        code: 'ERR_INVALID_ARG_TYPE' as Code,
        apply: (c: Call) => ((c.args[optionsPosition(op)] = v), true),
      })),
    fc.tuple(notANumber, fc.nat()).map(([v, r]) => ({
      what: 'a numeric option of another type',
      code: 'ERR_INVALID_ARG_TYPE' as Code,
      apply: (c: Call) => {
        const names = ['dim', 'eps', ...(hasOffset(op) ? ['offset', 'partial'] : [])];
        c.opts[names[r % names.length]!] = v;
        return true;
      },
    })),
    fc.constantFrom<unknown>(1, 0, 'true', null, {}).map((v) => ({
      what: 'accumulate is not a boolean',
      code: 'ERR_INVALID_ARG_TYPE' as Code,
      apply: (c: Call) => (isBackward(op) ? ((c.opts.accumulate = v), true) : false),
    })),
    fc.constant({
      what: 'dim missing with no weight',
      code: 'ERR_INVALID_ARG_TYPE' as Code,
      apply: (c: Call) => {
        c.args[weightPosition(op)] = null;
        if (op === 'layerNorm') c.args[2] = null;
        delete c.opts.offset;
        delete c.opts.dim;
        return true;
      },
    }),
    fc.constantFrom(0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 32, 1e300, -0.5).map((v) => ({
      what: 'dim out of range',
      code: 'ERR_OUT_OF_RANGE' as Code,
      apply: (c: Call) => ((c.opts.dim = v), true),
    })),
    fc.integer({ min: 1, max: 5 }).map((d) => ({
      what: 'x.length not a multiple of dim, or weight of another length',
      code: 'ERR_OUT_OF_RANGE' as Code,
      apply: (c: Call, _T: Ctor, dim: number, rows: number) => {
        const nd = dim + d;
        if ((dim * rows) % nd === 0 && !c.args[weightPosition(op)]) return false;
        c.opts.dim = nd;
        return true;
      },
    })),
    fc.constantFrom(-1, -1e-300, NaN, Infinity, -Infinity).map((v) => ({
      what: 'eps out of range',
      code: 'ERR_OUT_OF_RANGE' as Code,
      apply: (c: Call) => ((c.opts.eps = v), true),
    })),
    fc.constantFrom(NaN, Infinity, -Infinity).map((v) => ({
      what: 'offset not finite',
      code: 'ERR_OUT_OF_RANGE' as Code,
      apply: (c: Call) => (hasOffset(op) ? ((c.opts.offset = v), true) : false),
    })),
    fc.constantFrom(0, -0, -0.5, 1.0000001, 2, NaN, Infinity, -Infinity).map((v) => ({
      what: 'partial out of (0, 1]',
      code: 'ERR_OUT_OF_RANGE' as Code,
      apply: (c: Call) => (hasPartial(op) ? ((c.opts.partial = v), true) : false),
    })),
    fc.tuple(fc.nat(), fc.constantFrom(-3, -2, -1, 1, 2, 3)).map(([r, delta]) => ({
      what: 'an array of the wrong length',
      code: 'ERR_OUT_OF_RANGE' as Code,
      apply: (c: Call, T: Ctor) => {
        // Any array but the first, which sets the shape: the options' arrays, the weight, and the other
        // positional arrays (residual, backward's x, layerNorm's bias).
        const slots: [Record<string | number, unknown>, string | number][] = arrayOptions(op).map((n) => [c.opts, n]);
        for (let i = 1; i < optionsPosition(op); i++)
          if (c.args[i]) slots.push([c.args as unknown as Record<number, unknown>, i]);
        const [holder, key] = slots[r % slots.length]!;
        const a = holder[key] as FloatArray | undefined;
        const len = (a?.length ?? 1) + delta;
        if (!a || len < 0) return false;
        holder[key] = new T(len);
        return true;
      },
    })),
    fc.constant({
      what: 'offset with a null weight',
      code: 'ERR_INVALID_ARG_VALUE' as Code,
      apply: (c: Call) => {
        if (!hasOffset(op)) return false;
        c.args[weightPosition(op)] = null;
        c.opts.offset = 2;
        return true;
      },
    }),
    fc.nat().map((r) => ({
      what: 'an array on a detached buffer',
      code: 'ERR_INVALID_ARG_VALUE' as Code,
      apply: (c: Call, T: Ctor) => {
        if (r % 3 === 0) c.args[0] = detached(T);
        else c.opts[pick(arrayOptions(op), r)] = detached(T);
        return true;
      },
    })),
    fc.nat().map((r) => ({
      what: 'an output overlapping another array',
      code: 'ERR_INVALID_ARG_VALUE' as Code,
      apply: (c: Call, _T: Ctor, dim: number, rows: number) => {
        const first = c.args[0] as FloatArray;
        const buf = first.buffer;
        const T = first.constructor as Ctor;
        const at = first.byteOffset / T.BYTES_PER_ELEMENT;
        const view = (shift: number, len: number) => new T(buf as ArrayBuffer, (at + shift) * T.BYTES_PER_ELEMENT, len);
        const n = dim * rows;
        // An output over the first array, shifted by one element or more, or a statistic inside it.
        const outName = isBackward(op) ? 'dx' : 'out';
        const choices: (() => boolean)[] = [
          // Shifted by 1 .. n - 1 elements: a partial overlap (a one-element array has none).
          () => (n > 1 ? ((c.opts[outName] = view(1 + (r % (n - 1)), n)), true) : false),
          () => (isBackward(op) ? false : ((c.opts.rstd = view(r % n, rows)), true)),
          // residual may not even be exactly x.
          () => (op === 'addRmsNorm' ? ((c.args[1] = view(n > 1 ? r % n : 0, n)), true) : false),
          () => (isBackward(op) ? ((c.opts.dweight = c.opts.dbias = c.opts.dbias as FloatArray), true) : false),
        ];
        return choices[r % choices.length]!();
      },
    })),
  ];
  return fc.record({ defect: fc.oneof(...defects), r: fc.nat() });
}

function invoke(call: Call, sync: boolean): unknown {
  const fn = (api as unknown as Record<string, (...a: unknown[]) => unknown>)[sync ? call.op : `${call.op}Async`]!;
  return fn(...call.args);
}

async function outcome(call: Call, sync: boolean): Promise<{ error: unknown; rejected: boolean; returned: unknown }> {
  if (sync) {
    try {
      return { error: undefined, rejected: false, returned: invoke(call, true) };
    } catch (error) {
      return { error, rejected: false, returned: undefined };
    }
  }
  let promise: unknown;
  try {
    promise = invoke(call, false);
  } catch (error) {
    return {
      error: new Error(`the async form threw synchronously: ${(error as Error).message}`),
      rejected: false,
      returned: undefined,
    };
  }
  if (!(promise instanceof Promise))
    return { error: new Error('the async form did not return a promise'), rejected: false, returned: promise };
  try {
    return { error: undefined, rejected: false, returned: await promise };
  } catch (error) {
    return { error, rejected: true, returned: undefined };
  }
}

describe.each(TYPES)('%s: bad calls through the public API', (T) => {
  it.each(OPS)('%s and its async twin: the contract error, and nothing written', async (op) => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 1, max: 1000 }),
        fc.option(defectArb(op), { freq: 8, nil: null }),
        async (dim, rows, withWeight, sync, s, d) => {
          const call = baseCall(op, T, dim, rows, withWeight, s);
          const applied = d ? d.defect.apply(call, T, dim, rows) : false;
          const result = await outcome(call, sync);
          if (!d || !applied) {
            // The same call without a defect is valid: it must succeed (so each defect alone causes its error).
            expect(result.error, `${op} without a defect`).toBeUndefined();
            count('valid calls');
            return;
          }
          count(`${d.defect.code} calls`);
          const error = result.error as { code?: string; message?: string };
          const context = `${op}${sync ? '' : 'Async'}: ${d.defect.what}`;
          expect(error, context).toBeInstanceOf(d.defect.code === 'ERR_OUT_OF_RANGE' ? RangeError : TypeError);
          expect(error.code, `${context}: ${error.message}`).toBe(d.defect.code);
          expect(error.message, context).toMatch(/^The "[^"]+" argument /);
          if (!sync) expect(result.rejected, context).toBe(true);
          for (const { name, a, before } of call.arrays)
            expect(snapshot(a), `${context}: ${name} was written`).toBe(before);
        },
      ),
      params(`errors ${op} ${T.name}`, 2),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// The native entry points, called directly.

const binding = nativeRequested ? load().binding : null;

/** The rules, from lib/validate.ts's point of view, for the positional native arguments (see binding.d.ts). */
const SLOTS: Record<
  Op,
  { name: string; len: 'n' | 'dim' | 'rows'; nullable: boolean; output: boolean; inPlace?: number }[]
> = {
  rmsNorm: [
    { name: 'x', len: 'n', nullable: false, output: false },
    { name: 'weight', len: 'dim', nullable: true, output: false },
    { name: 'bias', len: 'dim', nullable: true, output: false },
    { name: 'out', len: 'n', nullable: false, output: true, inPlace: 0 },
    { name: 'rstd', len: 'rows', nullable: true, output: true },
  ],
  layerNorm: [
    { name: 'x', len: 'n', nullable: false, output: false },
    { name: 'weight', len: 'dim', nullable: true, output: false },
    { name: 'bias', len: 'dim', nullable: true, output: false },
    { name: 'out', len: 'n', nullable: false, output: true, inPlace: 0 },
    { name: 'mean', len: 'rows', nullable: true, output: true },
    { name: 'rstd', len: 'rows', nullable: true, output: true },
  ],
  addRmsNorm: [
    { name: 'x', len: 'n', nullable: false, output: false },
    { name: 'residual', len: 'n', nullable: false, output: true },
    { name: 'weight', len: 'dim', nullable: true, output: false },
    { name: 'bias', len: 'dim', nullable: true, output: false },
    { name: 'out', len: 'n', nullable: false, output: true, inPlace: 0 },
    { name: 'rstd', len: 'rows', nullable: true, output: true },
  ],
  rmsNormBackward: [
    { name: 'dy', len: 'n', nullable: false, output: false },
    { name: 'x', len: 'n', nullable: false, output: false },
    { name: 'weight', len: 'dim', nullable: true, output: false },
    { name: 'rstd', len: 'rows', nullable: true, output: false },
    { name: 'dx', len: 'n', nullable: false, output: true, inPlace: 0 },
    { name: 'dweight', len: 'dim', nullable: true, output: true },
    { name: 'dbias', len: 'dim', nullable: true, output: true },
  ],
  layerNormBackward: [
    { name: 'dy', len: 'n', nullable: false, output: false },
    { name: 'x', len: 'n', nullable: false, output: false },
    { name: 'weight', len: 'dim', nullable: true, output: false },
    { name: 'mean', len: 'rows', nullable: true, output: false },
    { name: 'rstd', len: 'rows', nullable: true, output: false },
    { name: 'dx', len: 'n', nullable: false, output: true, inPlace: 0 },
    { name: 'dweight', len: 'dim', nullable: true, output: true },
    { name: 'dbias', len: 'dim', nullable: true, output: true },
  ],
};
type ScalarName =
  | 'dim'
  | 'eps'
  | 'offset'
  | 'partial'
  | 'accumulate'
  | 'dtype'
  | 'castMode'
  | 'rows'
  | 'heads'
  | 'headStride'
  | 'stride0'
  | 'stride1'
  | 'stride2'
  | 'residualScale';
// The layout follows dtype and castMode: rows, heads, headStride, one row stride per array with rows (in slot
// order: stride0, stride1, ...), and addRmsNorm's residualScale.
const LAYOUT2: ScalarName[] = ['rows', 'heads', 'headStride', 'stride0', 'stride1'];
const LAYOUT3: ScalarName[] = [...LAYOUT2, 'stride2'];
const SCALARS: Record<Op, ScalarName[]> = {
  rmsNorm: ['dim', 'eps', 'offset', 'partial', 'dtype', 'castMode', ...LAYOUT2],
  layerNorm: ['dim', 'eps', 'dtype', 'castMode', ...LAYOUT2],
  addRmsNorm: ['dim', 'eps', 'offset', 'partial', 'dtype', 'castMode', ...LAYOUT3, 'residualScale'],
  rmsNormBackward: ['dim', 'eps', 'offset', 'partial', 'accumulate', 'dtype', 'castMode', ...LAYOUT3],
  layerNormBackward: ['dim', 'eps', 'accumulate', 'dtype', 'castMode', ...LAYOUT3],
};

/**
 * Do the elements a call touches in two arrays meet (bytes)? An array with rows touches rows of `span` bytes
 * every `stride` bytes; any other array all of itself. Rows of equal stride, or against one row, are compared
 * row by row; rows of unequal strides by their whole extents (the contract's rule).
 */
function touchedMeet(
  a: { at: number; rows: number; stride: number; span: number },
  b: { at: number; rows: number; stride: number; span: number },
): boolean {
  if (a.rows === 0 || b.rows === 0 || a.span === 0 || b.span === 0) return false;
  const ea = (a.rows - 1) * a.stride + a.span;
  const eb = (b.rows - 1) * b.stride + b.span;
  if (a.at + ea <= b.at || b.at + eb <= a.at) return false;
  const sa = a.rows === 1 ? b.stride : a.stride;
  const sb = b.rows === 1 ? sa : b.stride;
  if (sa !== sb) return true;
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < b.rows; j++) {
      const x = a.at + i * sa;
      const y = b.at + j * sb;
      if (x < y + b.span && y < x + a.span) return true;
    }
  return false;
}

const isFloat = (v: unknown): v is FloatArray => v instanceof Float32Array || v instanceof Float64Array;
/** The typed arrays the native entry points take: float data, or Uint16Array (half-precision) data and params. */
const isTyped = (v: unknown): v is FloatArray | Uint16Array => isFloat(v) || v instanceof Uint16Array;
const isDetached = (a: FloatArray | Uint16Array) =>
  a.length === 0 &&
  a.buffer.byteLength === 0 &&
  (() => {
    try {
      new Uint8Array(a.buffer);
      return false;
    } catch {
      return true;
    }
  })();

function expectedNative(op: Op, args: unknown[]): Code | null {
  const slots = SLOTS[op];
  const scalars = SCALARS[op];
  if (args.length !== slots.length + scalars.length) return 'ERR_INVALID_ARG_TYPE';
  for (let i = 0; i < slots.length; i++) {
    const v = args[i];
    if ((v === null || v === undefined) && slots[i]!.nullable) continue;
    if (!isTyped(v)) return 'ERR_INVALID_ARG_TYPE';
    if (isDetached(v)) return 'ERR_INVALID_ARG_VALUE';
  }
  const s = (name: string) => args[slots.length + scalars.indexOf(name as never)];
  const dim = s('dim');
  if (typeof dim !== 'number') return 'ERR_INVALID_ARG_TYPE';
  if (!Number.isInteger(dim) || dim < 1 || dim > 0xffffffff) return 'ERR_OUT_OF_RANGE';
  const eps = s('eps');
  if (typeof eps !== 'number') return 'ERR_INVALID_ARG_TYPE';
  if (!(eps >= 0) || !Number.isFinite(eps)) return 'ERR_OUT_OF_RANGE';
  if (scalars.includes('offset')) {
    const o = s('offset');
    if (typeof o !== 'number') return 'ERR_INVALID_ARG_TYPE';
    if (!Number.isFinite(o)) return 'ERR_OUT_OF_RANGE';
    const w = args[slots.findIndex((x) => x.name === 'weight')];
    if (o !== 0 && !isTyped(w)) return 'ERR_INVALID_ARG_VALUE';
  }
  if (scalars.includes('partial')) {
    const p = s('partial');
    if (typeof p !== 'number') return 'ERR_INVALID_ARG_TYPE';
    if (!(p > 0 && p <= 1)) return 'ERR_OUT_OF_RANGE';
  }
  if (scalars.includes('accumulate') && typeof s('accumulate') !== 'boolean') return 'ERR_INVALID_ARG_TYPE';
  const dtype = s('dtype');
  const castMode = s('castMode');
  if (typeof dtype !== 'number' || typeof castMode !== 'number') return 'ERR_INVALID_ARG_TYPE';
  // The layout: integers from 0 to 2^53 - 1; residualScale finite.
  const layout: number[] = [];
  for (const name of scalars.slice(scalars.indexOf('castMode') + 1)) {
    const v = s(name);
    if (typeof v !== 'number') return 'ERR_INVALID_ARG_TYPE';
    if (name === 'residualScale') {
      if (!Number.isFinite(v)) return 'ERR_OUT_OF_RANGE';
    } else {
      if (!Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) return 'ERR_OUT_OF_RANGE';
      layout.push(v);
    }
  }
  const first = args[0] as FloatArray | Uint16Array;
  // Uint16Array data needs dtype 1 (bfloat16) or 2 (float16); float data dtype 0; castMode is 0 or 1.
  const half = first instanceof Uint16Array;
  if (half ? dtype !== 1 && dtype !== 2 : dtype !== 0) return 'ERR_INVALID_ARG_VALUE';
  if (castMode !== 0 && castMode !== 1) return 'ERR_INVALID_ARG_VALUE';
  // Element types: float data makes every array x's type; half data: data arrays Uint16Array, statistics
  // (rows long, or dim-long outputs) Float32Array, parameters all Float32Array or all Uint16Array.
  let param: unknown = null;
  for (let i = 1; i < slots.length; i++) {
    const a = args[i];
    if (!isTyped(a)) continue;
    const slot = slots[i]!;
    if (!half || slot.len === 'n') {
      if (a.constructor !== first.constructor) return 'ERR_INVALID_ARG_TYPE';
    } else if (slot.len === 'rows' || slot.output) {
      if (!(a instanceof Float32Array)) return 'ERR_INVALID_ARG_TYPE';
    } else {
      if (a instanceof Float64Array || (param !== null && a.constructor !== param)) return 'ERR_INVALID_ARG_TYPE';
      param = a.constructor;
    }
  }
  // Lengths: heads >= 1 and headStride >= dim; each array with rows (in slot order) a row stride >= the row span
  // and room for its rows; the others dim or rows * heads long.
  const [rows, heads, headStride, ...strides] = layout as [number, number, number, ...number[]];
  if (heads < 1 || headStride < dim) return 'ERR_OUT_OF_RANGE';
  const span = (heads - 1) * headStride + dim;
  if (!Number.isSafeInteger(span) || !Number.isSafeInteger(rows * heads)) return 'ERR_OUT_OF_RANGE';
  const strideOf: number[] = [];
  let next = 0;
  for (let i = 0; i < slots.length; i++) {
    if (slots[i]!.len !== 'n') continue;
    strideOf[i] = strides[next++]!;
    const a = args[i];
    if (!isTyped(a)) continue;
    if (strideOf[i]! < span) return 'ERR_OUT_OF_RANGE';
    if (rows > 0 && a.length < (rows - 1) * strideOf[i]! + span) return 'ERR_OUT_OF_RANGE';
  }
  for (let i = 1; i < slots.length; i++) {
    const a = args[i];
    if (!isTyped(a) || slots[i]!.len === 'n') continue;
    if (a.length !== (slots[i]!.len === 'dim' ? dim : rows * heads)) return 'ERR_OUT_OF_RANGE';
  }
  const touched = (i: number) => {
    const a = args[i] as FloatArray;
    const w = a.BYTES_PER_ELEMENT;
    return slots[i]!.len === 'n'
      ? { at: a.byteOffset, rows, stride: strideOf[i]! * w, span: span * w }
      : { at: a.byteOffset, rows: 1, stride: a.byteLength, span: a.byteLength };
  };
  for (let o = 0; o < slots.length; o++) {
    const out = args[o];
    if (!slots[o]!.output || !isTyped(out) || out.byteLength === 0) continue;
    for (let i = 0; i < slots.length; i++) {
      const a = args[i];
      if (i === o || !isTyped(a) || a.byteLength === 0 || a.buffer !== out.buffer) continue;
      const disjoint =
        out.byteOffset + out.byteLength <= a.byteOffset ||
        a.byteOffset + a.byteLength <= out.byteOffset ||
        !touchedMeet(touched(o), touched(i));
      const same = out.byteOffset === a.byteOffset && out.byteLength === a.byteLength && strideOf[o] === strideOf[i];
      if (!disjoint && !(slots[o]!.inPlace === i && same)) return 'ERR_INVALID_ARG_VALUE';
    }
  }
  return null;
}

/** Arbitrary positional arguments for `op`: mostly well-formed, each piece sometimes wrong in some way. */
function nativeArgs(op: Op, T: Ctor) {
  const slots = SLOTS[op];
  const scalars = SCALARS[op];
  return fc
    .record({
      dim: fc.integer({ min: 1, max: 6 }),
      rows: fc.integer({ min: 0, max: 3 }),
      heads: fc.oneof(
        { weight: 3, arbitrary: fc.constant(1) },
        { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) },
      ),
      headGap: fc.constantFrom(0, 0, 1),
      gaps: fc.array(fc.constantFrom(0, 0, 1, 3), { minLength: slots.length, maxLength: slots.length }),
      seed: fc.integer({ min: 1, max: 1000 }),
      kinds: fc.array(fc.nat(99), { minLength: slots.length, maxLength: slots.length }),
      placement: fc.array(fc.tuple(fc.boolean(), fc.nat(12)), { minLength: slots.length, maxLength: slots.length }),
      scalarKinds: fc.array(fc.nat(99), { minLength: scalars.length, maxLength: scalars.length }),
      numbers: fc.array(fc.oneof(fc.constantFrom(0, -1, 0.5, 1, 1.5, 2 ** 32, NaN, Infinity, -Infinity), fc.double()), {
        minLength: scalars.length,
        maxLength: scalars.length,
      }),
      bad: fc.array(
        fc.oneof(
          notANumber,
          notAnArray.map((f) => f()),
        ),
        { minLength: slots.length + scalars.length, maxLength: slots.length + scalars.length },
      ),
      arity: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1, 5) }),
      clean: fc.boolean(), // every piece well-formed (arrays may still alias): mostly valid calls
    })
    .map((k) => {
      if (k.clean) {
        k.kinds = k.kinds.map((v) => (v < 24 ? 24 + v : v));
        k.scalarKinds = k.scalarKinds.map(() => 99);
        k.arity = 0;
      }
      const headStride = k.dim + k.headGap;
      const span = (k.heads - 1) * headStride + k.dim;
      const stride = (i: number) => span + k.gaps[i]!;
      const extent = (i: number) => (k.rows === 0 ? 0 : (k.rows - 1) * stride(i) + span);
      const n = k.rows * (span + 3);
      const shared = new T(6 * n + 64).fill(SENTINEL);
      const args: unknown[] = [];
      slots.forEach((slot, i) => args.push(arrayArg(slot, i)));
      function arrayArg(slot: (typeof slots)[number], i: number): unknown {
        const kind = k.kinds[i]!;
        const [inShared, at] = k.placement[i]!;
        let len = slot.len === 'n' ? extent(i) : slot.len === 'dim' ? k.dim : k.rows * k.heads;
        if (kind < 6) len = Math.max(0, len + (kind % 2 ? 1 : -1));
        if (kind >= 6 && kind < 10) return slot.nullable ? null : undefined;
        if (kind >= 10 && kind < 13) return k.bad[i];
        if (kind === 13) return new (other(T))(len);
        if (kind === 14) return detached(T);
        if (kind === 15 && i > 0) return args[0]; // the first array itself (in place, or an overlap)
        if (kind >= 16 && kind < 24 && slot.nullable) return null;
        const a = inShared ? shared.subarray(at, at + len) : new T(len);
        if (!slot.output || slot.name === 'residual') a.set(randomArray(T, len, k.seed + i));
        else a.fill(SENTINEL);
        return a;
      }
      const scalarArgs = scalars.map((name, j) => {
        const kind = k.scalarKinds[j]!;
        if (kind < 6) return k.bad[slots.length + j];
        if (name === 'accumulate') return kind % 2 === 0;
        if (kind < 20) return k.numbers[j];
        if (name === 'castMode') return kind % 2;
        if (name === 'dtype') return kind < 24 ? 1 + (kind % 2) : 0; // float data: 0; sometimes a half dtype
        const dataSlots = slots.flatMap((slot, i) => (slot.len === 'n' ? [i] : []));
        const layoutValue: Record<string, number> = {
          rows: k.rows,
          heads: k.heads,
          headStride,
          stride0: stride(dataSlots[0]!),
          stride1: stride(dataSlots[1]!),
          stride2: dataSlots[2] === undefined ? 0 : stride(dataSlots[2]),
          residualScale: kind % 2 ? 1 : 0.22,
        };
        return ({ dim: k.dim, eps: 1e-5, offset: 0.5, partial: 0.75, ...layoutValue } as Record<string, number>)[name];
      });
      const all = [...args, ...scalarArgs];
      if (k.arity === -1) all.pop();
      if (k.arity > 0) all.push(...new Array(k.arity).fill(0));
      return all;
    });
}

if (binding) {
  describe.each(TYPES)('%s: the native entry points, called directly', (T) => {
    it.each(OPS)(
      '%s: the code the rules give, never a crash, nothing written on error, the fallback result otherwise',
      async (op) => {
        const native = binding as unknown as Record<string, (...a: unknown[]) => unknown>;
        const js = fallback as unknown as Record<string, (...a: unknown[]) => unknown>;
        await fc.assert(
          fc.asyncProperty(nativeArgs(op, T), fc.boolean(), async (args, sync) => {
            const want = expectedNative(op, args);
            const arrays = [
              ...new Set(args.filter((a) => isTyped(a) && !isDetached(a)).map((a) => (a as FloatArray).buffer)),
            ].map((b) => new Uint8Array(b as ArrayBuffer));
            const before = arrays.map((a) => Buffer.from(a).toString('base64'));
            // The fallback's result on copies, for valid calls.
            let expected: FloatArray[] | null = null;
            if (!want) {
              // Copies of the buffers, with every view recreated on its buffer's copy: views that share memory
              // (in place, or inputs over one buffer) still share it.
              const buffers = new Map<ArrayBufferLike, ArrayBuffer>();
              const copies = args.map((a) => {
                if (!isFloat(a)) return a;
                if (!buffers.has(a.buffer)) buffers.set(a.buffer, (a.buffer as ArrayBuffer).slice(0));
                return new (a.constructor as Ctor)(buffers.get(a.buffer)!, a.byteOffset, a.length);
              });
              js[op]!(...copies);
              expected = copies.filter(isFloat);
            }
            let error: unknown;
            try {
              const r = sync ? native[op]!(...args) : native[`${op}Async`]!(...args);
              if (!sync) await r;
            } catch (e) {
              error = e;
            }
            count(`native ${want ?? 'valid'} calls`);
            if (want) {
              expect(error, `native ${op}: expected ${want}`).toBeInstanceOf(
                want === 'ERR_OUT_OF_RANGE' ? RangeError : TypeError,
              );
              expect((error as { code: string }).code, (error as Error).message).toBe(want);
              arrays.forEach((a, i) =>
                expect(Buffer.from(a).toString('base64'), `native ${op}: wrote after ${want}`).toBe(before[i]),
              );
              return;
            }
            expect(error, `native ${op}: a valid call threw`).toBeUndefined();
            const got = args.filter(isFloat);
            got.forEach((a, i) => {
              const e = expected![i]!;
              let scale = 1;
              for (const v of e) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
              for (let j = 0; j < a.length; j++) {
                // Exact agreement, a small difference, or both not finite (degenerate scalars such as eps 0 on a
                // zero row give NaN or an infinity, and which one may differ between the two).
                const ok =
                  a[j] === e[j] ||
                  Math.abs(a[j]! - e[j]!) <= (T === Float32Array ? 1e-5 : 1e-12) * scale ||
                  (!Number.isFinite(a[j]!) && !Number.isFinite(e[j]!));
                if (!ok) expect.fail(`native ${op}: array ${i}[${j}] = ${a[j]}, the fallback gives ${e[j]}`);
              }
            });
          }),
          params(`native ${op} ${T.name}`, 2),
        );
      },
    );
  });
}
