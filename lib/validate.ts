// Every argument check of the public API lives here. A call is checked completely before anything is
// written, so a failed call leaves every output untouched.
//
// Errors follow Node's conventions: TypeError/RangeError with a `code` (ERR_INVALID_ARG_TYPE,
// ERR_OUT_OF_RANGE, ERR_INVALID_ARG_VALUE; ERR_INVALID_STATE for an array detached or resized while an async
// call ran) and a message that names the argument, what was expected and
// what was received:  The "weight" argument must have length 4096 (dim), received length 4095

import { OPS, type ArraySlot, type OpDescription, type OpName, type Role } from './op-table';
import type { DataArray } from './types';

/** Element kind of a supported array: 1 = Float32Array, 2 = Float64Array, 3 = Uint16Array, 0 = anything else. */
export type Kind = 0 | 1 | 2 | 3;

// %TypedArray%.prototype[Symbol.toStringTag] reads the internal type: it cannot be faked by a subclass or an
// object with a custom toStringTag, and it works across realms (vm contexts, worker-transferred arrays).
const typedArrayTag = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  Symbol.toStringTag,
)!.get as (this: unknown) => string | undefined;

export function kindOf(v: unknown): Kind {
  const tag = typedArrayTag.call(v);
  return tag === 'Float32Array' ? 1 : tag === 'Float64Array' ? 2 : tag === 'Uint16Array' ? 3 : 0;
}

/** A new zeroed array of the given kind. */
export function allocLike(kind: Kind, length: number): DataArray {
  return kind === 1 ? new Float32Array(length) : kind === 2 ? new Float64Array(length) : new Uint16Array(length);
}

export function kindName(kind: Kind): string {
  return kind === 1 ? 'Float32Array' : kind === 2 ? 'Float64Array' : 'Uint16Array';
}

type Code = 'ERR_INVALID_ARG_TYPE' | 'ERR_OUT_OF_RANGE' | 'ERR_INVALID_ARG_VALUE' | 'ERR_INVALID_STATE';

function withCode<E extends Error>(error: E, code: Code): E & { code: Code } {
  Object.defineProperty(error, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  return error as E & { code: Code };
}

/** How a received value is described in messages, after Node's internal/errors. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return `function ${(v as { name?: string }).name || '<anonymous>'}`;
  if (typeof v === 'object') {
    const tag = typedArrayTag.call(v);
    if (tag) return `an instance of ${tag} of length ${(v as { length: number }).length}`;
    const ctor = (v as { constructor?: { name?: string } }).constructor;
    return ctor?.name ? `an instance of ${ctor.name}` : 'an object with no constructor';
  }
  let shown = typeof v === 'string' ? JSON.stringify(v) : String(v);
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof v} (${shown})`;
}

export function invalidType(name: string, expected: string, received: unknown): TypeError {
  return withCode(
    new TypeError(`The "${name}" argument must be ${expected}, received ${describe(received)}`),
    'ERR_INVALID_ARG_TYPE',
  );
}

export function outOfRange(name: string, expected: string, received: string): RangeError {
  return withCode(new RangeError(`The "${name}" argument must ${expected}, received ${received}`), 'ERR_OUT_OF_RANGE');
}

export function invalidValue(name: string, reason: string): TypeError {
  return withCode(new TypeError(`The "${name}" argument ${reason}`), 'ERR_INVALID_ARG_VALUE');
}

/**
 * The error of an async call one of whose arrays was detached or resized while it ran: the same code and
 * message as the native module's (native/async_memory.cc).
 */
export function invalidState(name: string, op: string): Error & { code: Code } {
  return withCode(
    new Error(`The "${name}" argument was detached or resized while ${op}Async ran; the result was not delivered`),
    'ERR_INVALID_STATE',
  );
}

/**
 * The fallback's check that an async call's arrays are still what they were: records the length and position
 * of every array argument of `op` now (its name from the op table); the returned function throws
 * ERR_INVALID_STATE when any of them has changed since (detached: length 0; a resizable buffer shrunk under
 * a view: length 0; a length-tracking view: a new length).
 */
export function changedWhileRunning(op: OpName, args: readonly unknown[]): () => void {
  const slots: readonly ArraySlot[] = OPS[op].arrays;
  const seen: [string, DataArray, number, number][] = [];
  slots.forEach((slot, i) => {
    const a = args[i];
    if (ArrayBuffer.isView(a)) seen.push([slot.name, a as DataArray, (a as DataArray).length, a.byteOffset]);
  });
  return () => {
    for (const [name, a, length, offset] of seen) {
      if (a.length !== length || (length !== 0 && a.byteOffset !== offset)) throw invalidState(name, op);
    }
  };
}

function isDetached(a: DataArray): boolean {
  // A detached buffer reports byteLength 0 and refuses to be viewed; only zero-length arrays can be detached.
  if (a.length !== 0 || a.buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(a.buffer);
    return false;
  } catch {
    return true;
  }
}

// The checks below run on every call: each keeps its passing path short and builds its error in a separate
// function, so that V8 inlines them into the ops (a message's template counts against V8's inlining budget).

function detached(name: string): TypeError {
  return invalidValue(name, 'must not be on a detached ArrayBuffer');
}

/** x: a Float32Array, Float64Array or Uint16Array (half bits) on a live buffer; returns its kind. */
export function checkData(name: string, v: unknown): Kind {
  const kind = kindOf(v);
  if (kind === 0) throw invalidType(name, 'a Float32Array, Float64Array or Uint16Array', v);
  if ((v as DataArray).length === 0 && isDetached(v as DataArray)) throw detached(name);
  return kind;
}

function wrongKind(name: string, v: unknown, kind: Kind, nullable: boolean): TypeError {
  if (v === null || v === undefined) return invalidType(name, `a ${kindName(kind)}`, v);
  return invalidType(name, `a ${kindName(kind)} (the element type of "x")${nullable ? ' or null' : ''}`, v);
}

/** An array of the same element type as x; null/undefined allowed (as null) when `nullable`. */
export function checkKind(name: string, v: unknown, kind: Kind, nullable: boolean): DataArray | null {
  if (v === null || v === undefined) {
    if (nullable) return null;
    throw wrongKind(name, v, kind, nullable);
  }
  if (kindOf(v) !== kind) throw wrongKind(name, v, kind, nullable);
  const a = v as DataArray;
  if (a.length === 0 && isDetached(a)) throw detached(name);
  return a;
}

function wrongLength(name: string, a: DataArray, length: number, lengthName: string): RangeError {
  return outOfRange(name, `have length ${length} (${lengthName})`, `length ${a.length}`);
}

export function checkLength(name: string, a: DataArray, length: number, lengthName: string): void {
  if (a.length !== length) throw wrongLength(name, a, length, lengthName);
}

/** checkKind, then checkLength when the array is present. */
export function checkArray(
  name: string,
  v: unknown,
  kind: Kind,
  length: number,
  lengthName: string,
  nullable: boolean,
): DataArray | null {
  const a = checkKind(name, v, kind, nullable);
  if (a) checkLength(name, a, length, lengthName);
  return a;
}

// The options of a call given none: shared (only ever read), so such a call allocates no options object.
const NO_OPTIONS = Object.freeze({});

/** The options bag: undefined or null mean "all defaults" (as in Node's fs); anything else must be an object. */
export function checkOptions<O extends object>(v: unknown): Partial<O> {
  if (v === undefined || v === null) return NO_OPTIONS as Partial<O>;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidType('options', 'an object', v);
  return v as Partial<O>;
}

function checkNumber(name: string, v: unknown): number {
  if (typeof v !== 'number') throw invalidType(name, 'of type number', v);
  return v;
}

/** options.dim, else the length of `source` (the weight; for layerNorm the weight or else the bias). */
export function checkDim(v: unknown, source: DataArray | null, sourceName = 'weight'): number {
  if (v === undefined && source !== null && source.length !== 0) return source.length;
  return dimOption(v, source, sourceName);
}

function dimOption(v: unknown, source: DataArray | null, sourceName: string): number {
  if (v === undefined) {
    if (source) {
      if (source.length === 0) throw outOfRange(sourceName, 'have length >= 1 (it sets dim)', 'length 0');
      return source.length;
    }
    throw invalidType(
      'options.dim',
      `of type number when ${sourceName === 'weight' ? 'weight is' : 'weight and bias are'} null`,
      v,
    );
  }
  const d = checkNumber('options.dim', v);
  if (!Number.isInteger(d) || d < 1 || d > 0xffffffff) {
    throw outOfRange('options.dim', 'be a positive integer no greater than 4294967295', String(d));
  }
  return d;
}

export function checkEps(v: unknown): number {
  if (v === undefined) return 1e-5;
  if (typeof v === 'number' && v >= 0 && v <= Number.MAX_VALUE) return v;
  return epsOption(v);
}

function epsOption(v: unknown): number {
  const e = checkNumber('options.eps', v);
  if (!(e >= 0 && e <= Number.MAX_VALUE)) throw outOfRange('options.eps', 'be a finite number >= 0', String(e));
  return e;
}

export function checkOffset(v: unknown, weight: DataArray | null): number {
  if (v === undefined) return 0;
  return offsetOption(v, weight);
}

function offsetOption(v: unknown, weight: DataArray | null): number {
  const o = checkNumber('options.offset', v);
  if (!Number.isFinite(o)) throw outOfRange('options.offset', 'be a finite number', String(o));
  if (o !== 0 && weight === null) throw invalidValue('options.offset', 'requires a weight (weight is null)');
  return o;
}

export function checkPartial(v: unknown): number {
  if (v === undefined) return 1;
  if (typeof v === 'number' && v > 0 && v <= 1) return v;
  return partialOption(v);
}

function partialOption(v: unknown): number {
  const p = checkNumber('options.partial', v);
  if (!(p > 0 && p <= 1)) throw outOfRange('options.partial', 'be in (0, 1]', String(p));
  return p;
}

function notRows(x: DataArray, dim: number, name: string): RangeError {
  return outOfRange(name, `have a length that is a multiple of dim (${dim})`, `length ${x.length}`);
}

export function checkRowsMultiple(x: DataArray, dim: number, name = 'x'): number {
  if (x.length % dim !== 0) throw notRows(x, dim, name);
  return x.length / dim;
}

function sameView(a: DataArray, b: DataArray): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
}

function overlaps(a: DataArray, b: DataArray): boolean {
  if (a.buffer !== b.buffer || a.byteLength === 0 || b.byteLength === 0) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** One array argument of a call, for the overlap rules. */
export interface Slot {
  name: string;
  a: DataArray | null;
  output: boolean;
  /** Index of the one slot this output may be exactly the same view of (in place). */
  sameOk?: number;
}

/**
 * Outputs must not share memory with any other array of the call, except that an output may be exactly the
 * same view as its `sameOk` slot. Same rules, order and messages as parse() in native/binding.cc, which makes
 * these checks itself when the native module is in use.
 */
export function checkOverlaps(slots: Slot[]): void {
  for (let o = 0; o < slots.length; o++) {
    const out = slots[o]!;
    if (!out.output || out.a === null) continue;
    for (let i = 0; i < slots.length; i++) {
      const other = slots[i]!;
      if (i === o || other.a === null || !overlaps(out.a, other.a)) continue;
      const sameOk = out.sameOk === i;
      if (sameOk && sameView(out.a, other.a)) continue;
      throw invalidValue(
        out.name,
        `must not overlap "${other.name}"${sameOk ? ' unless it is exactly the same view (in place)' : ''}`,
      );
    }
  }
}

export function checkBoolean(name: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw invalidType(name, 'of type boolean', v);
  return v;
}

/** The number of leading values of a row that pRMSNorm's statistic covers: max(1, ceil(partial * dim)). */
export function partialCount(partial: number, dim: number): number {
  return Math.min(dim, Math.max(1, Math.ceil(partial * dim)));
}

/**
 * The element types of one call. Half data (Uint16Array) needs options.dtype; its statistics and parameter
 * gradients are Float32Array, and its weight/bias either Float32Array or Uint16Array (the same for both).
 */
export interface CallTypes {
  data: Kind;
  stat: Kind;
  /** The parameters' kind once one is seen (0 before). */
  param: Kind;
  /** 0 for float data, 1 bfloat16, 2 float16 (the native module's codes). */
  dtype: number;
  /** 0 'fp32', 1 'llama'. */
  cast: number;
}

// The types of a float32 or float64 call with no precision options: shared, so the common call allocates
// nothing here (only half calls get their own object, as checkParam records their parameter type in it).
const FLOAT_TYPES: Record<number, Readonly<CallTypes>> = {
  1: Object.freeze({ data: 1, stat: 1, param: 1, dtype: 0, cast: 0 }),
  2: Object.freeze({ data: 2, stat: 2, param: 2, dtype: 0, cast: 0 }),
};

export function checkTypes(data: Kind, dtype: unknown, castMode: unknown): CallTypes {
  if (data !== 3 && dtype === undefined && castMode === undefined) return FLOAT_TYPES[data] as CallTypes;
  return precisionTypes(data, dtype, castMode);
}

/** checkTypes for a half call or one with precision options. */
function precisionTypes(data: Kind, dtype: unknown, castMode: unknown): CallTypes {
  let code = 0;
  if (data === 3) {
    if (dtype === 'bfloat16') code = 1;
    else if (dtype === 'float16') code = 2;
    else if (dtype === undefined)
      throw invalidType('options.dtype', "'bfloat16' or 'float16' for Uint16Array data", dtype);
    else throw invalidValue('options.dtype', `must be 'bfloat16' or 'float16', received ${describe(dtype)}`);
  } else if (dtype !== undefined) {
    throw invalidValue('options.dtype', `applies to Uint16Array data only (x is a ${kindName(data)})`);
  }
  let cast = 0;
  if (castMode === 'llama') cast = 1;
  else if (castMode !== undefined && castMode !== 'fp32') {
    throw invalidValue('options.castMode', `must be 'fp32' or 'llama', received ${describe(castMode)}`);
  }
  return { data, stat: data === 3 ? 1 : data, param: data === 3 ? 0 : data, dtype: code, cast };
}

/** A parameter (weight, bias): x's type, or for half data Float32Array or Uint16Array, the same for all. */
export function checkParam(name: string, v: unknown, t: CallTypes, nullable: boolean): DataArray | null {
  if (t.data !== 3) return checkKind(name, v, t.data, nullable);
  return checkHalfParam(name, v, t, nullable);
}

function checkHalfParam(name: string, v: unknown, t: CallTypes, nullable: boolean): DataArray | null {
  if (v === null || v === undefined) {
    if (nullable) return null;
    throw invalidType(name, 'a Float32Array or Uint16Array', v);
  }
  const k = kindOf(v);
  if (t.param === 0 && (k === 1 || k === 3)) t.param = k;
  if (k !== t.param) {
    const want = t.param === 0 ? 'a Float32Array or Uint16Array' : `a ${kindName(t.param)} (like the other parameters)`;
    throw invalidType(name, `${want}${nullable ? ' or null' : ''}`, v);
  }
  return checkKind(name, v, k, nullable);
}

// ---------------------------------------------------------------------------------------------------------
// An op's array arguments, checked as their slots in the op table (lib/op-table.ts) describe them.

/** What an op's lengths are measured against: the first array's length (named totalName), dim and rows. */
export interface Sizes {
  total: number;
  totalName: string;
  dim: number;
  /** The number of statistics: rows * heads. */
  rows: number;
  /** The call's layout (absent or dense: every array with rows has the first array's length). */
  layout?: Layout;
}

/** The element type and presence of an array argument; null when absent and the slot allows it. */
export function checkSlotType(slot: ArraySlot, v: unknown, t: CallTypes): DataArray | null {
  const optional = slot.nullable || slot.allocate !== undefined;
  if (slot.element === 'param') return checkParam(slot.name, v, t, optional);
  return checkKind(slot.name, v, slot.element === 'stat' ? t.stat : t.data, optional);
}

/**
 * The length of a present array argument. An array with rows: exactly the first array's length in a dense
 * call, else at least its layout's extent (`stride`, its row stride, defaults to the row span).
 */
export function checkSlotLength(slot: ArraySlot, a: DataArray | null, s: Sizes, stride?: number): void {
  if (!a) return;
  // The lengths that pass, where they are exact (a dense call), first; anything else gets the full rules.
  const L = s.layout;
  const want = slot.length === 'dim' ? s.dim : slot.length === 'rows' ? s.rows : !L || L.dense ? s.total : -1;
  if (a.length !== want) slotLength(slot, a, s, stride);
}

/** checkSlotLength's rules in full: an array with rows in a call with a layout, or an error. */
function slotLength(slot: ArraySlot, a: DataArray, s: Sizes, stride?: number): void {
  if (slot.length === 'total') {
    if (s.layout && !s.layout.dense) {
      checkExtent(slot.name, a, s.layout.rows, stride ?? s.layout.rowSpan, s.layout.rowSpan);
    } else {
      checkLength(slot.name, a, s.total, s.totalName);
    }
  } else if (slot.length === 'dim') checkLength(slot.name, a, s.dim, 'dim');
  else checkLength(slot.name, a, s.rows, s.layout && s.layout.heads !== 1 ? 'rows * heads' : 'rows');
}

/** checkSlotType, then checkSlotLength. */
export function checkSlot(slot: ArraySlot, v: unknown, t: CallTypes, s: Sizes, stride?: number): DataArray | null {
  const a = checkSlotType(slot, v, t);
  checkSlotLength(slot, a, s, stride);
  return a;
}

/** The overlap rules of an op (see checkOverlaps), for its arrays given by role. */
export function checkOpOverlaps(op: OpDescription, arrays: Partial<Record<Role, DataArray | null>>): void {
  checkOverlaps(
    op.arrays.map((slot) => ({
      name: slot.name,
      a: arrays[slot.role] ?? null,
      output: slot.output,
      sameOk: slot.inPlace === undefined ? undefined : op.arrays.findIndex((other) => other.role === slot.inPlace),
    })),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Layouts: strided rows and heads. Row r of an array with rows (x, out, residual, dy, dx) starts at element
// r * rowStride; within it, head h starts at h * headStride and holds dim values. The elements between rows and
// between heads are never read or written.

/** A call's resolved layout. `dense` when no layout option was given (the arrays are then rows × dim exactly). */
export interface Layout {
  rows: number;
  heads: number;
  headStride: number;
  /** The elements one row spans: (heads - 1) * headStride + dim. */
  rowSpan: number;
  /** The first array's row stride. */
  stride: number;
  dense: boolean;
}

/**
 * The one place that says how far an array with rows reaches: the number of elements it spans from its first
 * element, (rows - 1) * rowStride + rowSpan (0 with no rows). Everything the call reads or writes in the array
 * lies in [0, extent); anything that must keep an array's memory alive or staged during a call needs exactly
 * this range.
 */
export function layoutExtent(rows: number, rowStride: number, rowSpan: number): number {
  return rows === 0 ? 0 : (rows - 1) * rowStride + rowSpan;
}

const MAX_COUNT = 0xffffffff;

function checkCount(name: string, v: unknown, min: number, minText: string): number {
  const n = checkNumber(name, v);
  if (!Number.isInteger(n) || n < min || n > Number.MAX_SAFE_INTEGER) {
    throw outOfRange(name, `be an integer >= ${minText}`, String(n));
  }
  return n;
}

/** The layout options an op may take, as given. */
export interface LayoutOptions {
  rows?: unknown;
  heads?: unknown;
  headStride?: unknown;
}

/**
 * heads, headStride and the row span; then the first array's row stride (its option named firstStride) and the
 * number of rows: options.rows, else every whole row that fits in the first array. Without a row stride for the
 * first array it is dense, and its length must be a whole number of rows.
 */
export function checkLayout(
  o: LayoutOptions,
  strideOption: unknown,
  dim: number,
  first: DataArray,
  firstName: string,
  strideName: string,
): Layout {
  const dense =
    o.rows === undefined && o.heads === undefined && o.headStride === undefined && strideOption === undefined;
  if (dense) {
    // The common call: x is rows × dim.
    const rows = checkRowsMultiple(first, dim, firstName);
    return { rows, heads: 1, headStride: dim, rowSpan: dim, stride: dim, dense };
  }
  return stridedLayout(o, strideOption, dim, first, firstName, strideName);
}

function stridedLayout(
  o: LayoutOptions,
  strideOption: unknown,
  dim: number,
  first: DataArray,
  firstName: string,
  strideName: string,
): Layout {
  let heads = 1;
  if (o.heads !== undefined) {
    heads = checkCount('options.heads', o.heads, 1, '1');
    if (heads > MAX_COUNT) throw outOfRange('options.heads', 'be an integer >= 1', String(heads));
  }
  const headStride =
    o.headStride === undefined ? dim : checkCount('options.headStride', o.headStride, dim, `${dim} (dim)`);
  const rowSpan = (heads - 1) * headStride + dim;
  if (!Number.isSafeInteger(rowSpan))
    throw outOfRange('options.heads', 'span a row of at most 2^53 - 1 elements', String(heads));
  const stride = checkRowStride(strideName, strideOption, rowSpan, heads);
  let rows: number;
  if (o.rows !== undefined) {
    rows = checkCount('options.rows', o.rows, 0, '0');
    checkExtent(firstName, first, rows, stride, rowSpan);
  } else if (strideOption === undefined) {
    if (first.length % rowSpan !== 0) {
      const what = heads === 1 ? `dim (${dim})` : `the row span (${rowSpan}: (heads - 1) * headStride + dim)`;
      throw outOfRange(firstName, `have a length that is a multiple of ${what}`, `length ${first.length}`);
    }
    rows = first.length / rowSpan;
  } else {
    rows = first.length < rowSpan ? 0 : Math.floor((first.length - rowSpan) / stride) + 1;
  }
  if (rows * heads > Number.MAX_SAFE_INTEGER) throw outOfRange('options.rows', 'be smaller', String(rows));
  return { rows, heads, headStride, rowSpan, stride, dense: false };
}

/** A row stride option: the row span when absent, else an integer no smaller than the row span. */
export function checkRowStride(name: string, v: unknown, rowSpan: number, heads: number): number {
  if (v === undefined) return rowSpan;
  return rowStrideOption(name, v, rowSpan, heads);
}

function rowStrideOption(name: string, v: unknown, rowSpan: number, heads: number): number {
  const what = heads === 1 ? 'dim' : 'the row span: (heads - 1) * headStride + dim';
  return checkCount(name, v, rowSpan, `${rowSpan} (${what})`);
}

/** An array with rows must hold its layout: length >= layoutExtent(rows, stride, rowSpan). */
export function checkExtent(name: string, a: DataArray, rows: number, stride: number, rowSpan: number): void {
  const need = layoutExtent(rows, stride, rowSpan);
  if (a.length >= need) return;
  throw outOfRange(
    name,
    `have length at least ${need} (${rows} rows of row stride ${stride} spanning ${rowSpan}), so the layout stays inside it`,
    `length ${a.length}`,
  );
}

/** Where an array with rows lies, for the overlap rules: its row stride and row span (elements). */
export interface Footprint {
  stride: number;
  span: number;
  rows: number;
}

/**
 * Do two arrays share an element the call touches? Arrays with rows of the same row stride (in bytes), or rows
 * and an array without rows, are compared row by row, so interleaved views of one fused buffer (the q and k
 * parts of a QKV projection) do not overlap; otherwise their whole extents are compared.
 */
function footprintsOverlap(a: DataArray, fa: Footprint | undefined, b: DataArray, fb: Footprint | undefined): boolean {
  if (a.buffer !== b.buffer) return false;
  const ea = fa ? layoutExtent(fa.rows, fa.stride, fa.span) * a.BYTES_PER_ELEMENT : a.byteLength;
  const eb = fb ? layoutExtent(fb.rows, fb.stride, fb.span) * b.BYTES_PER_ELEMENT : b.byteLength;
  if (ea === 0 || eb === 0) return false;
  const pa = a.byteOffset,
    pb = b.byteOffset;
  if (!(pa < pb + eb && pb < pa + ea)) return false;
  // An array without rows is one row spanning all of it; the stride of a single row does not matter.
  const ra = fa ? fa.rows : 1;
  const rb = fb ? fb.rows : 1;
  const la = fa ? fa.span * a.BYTES_PER_ELEMENT : a.byteLength;
  const lb = fb ? fb.span * b.BYTES_PER_ELEMENT : b.byteLength;
  const sa = ra === 1 ? (fb ? fb.stride * b.BYTES_PER_ELEMENT : lb) : fa!.stride * a.BYTES_PER_ELEMENT;
  const sb = rb === 1 ? sa : fb!.stride * b.BYTES_PER_ELEMENT;
  if (sa !== sb) return true;
  const s = sa;
  // Row i of a is [pa + i s, pa + i s + la), row j of b [pb + j s, pb + j s + lb): they meet when some
  // k = j - i in (-(rows_a - 1), rows_b - 1) has -lb < d + k s < la, with d = pb - pa.
  const d = pb - pa;
  const kLo = Math.max(-(ra - 1), Math.floor((-lb - d) / s) + 1);
  const kHi = Math.min(rb - 1, Math.ceil((la - d) / s) - 1);
  return kLo <= kHi;
}

/** checkOpOverlaps for a call with a layout: each array with rows compared by its footprint. */
export function checkLayoutOverlaps(
  op: OpDescription,
  arrays: Partial<Record<Role, DataArray | null>>,
  footprints: Partial<Record<Role, Footprint>>,
): void {
  const slots = op.arrays;
  for (let o = 0; o < slots.length; o++) {
    const out = slots[o]!;
    const oa = arrays[out.role];
    if (!out.output || !oa) continue;
    for (let i = 0; i < slots.length; i++) {
      const other = slots[i]!;
      const ia = arrays[other.role];
      if (i === o || !ia) continue;
      const fo = footprints[out.role],
        fi = footprints[other.role];
      if (!footprintsOverlap(oa, fo, ia, fi)) continue;
      const sameOk = out.inPlace === other.role;
      if (sameOk && sameView(oa, ia) && fo?.stride === fi?.stride) continue;
      throw invalidValue(
        out.name,
        `must not overlap "${other.name}"${sameOk ? ' unless it is exactly the same view (in place)' : ''}`,
      );
    }
  }
}

/** addRmsNorm's options.residualScale: residual += x * residualScale. A finite number, default 1. */
export function checkResidualScale(v: unknown): number {
  if (v === undefined) return 1;
  const r = checkNumber('options.residualScale', v);
  if (!Number.isFinite(r)) throw outOfRange('options.residualScale', 'be a finite number', String(r));
  return r;
}
