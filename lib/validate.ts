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

/** x: a Float32Array, Float64Array or Uint16Array (half bits) on a live buffer; returns its kind. */
export function checkData(name: string, v: unknown): Kind {
  const kind = kindOf(v);
  if (kind === 0) throw invalidType(name, 'a Float32Array, Float64Array or Uint16Array', v);
  if ((v as DataArray).length === 0 && isDetached(v as DataArray)) {
    throw invalidValue(name, 'must not be on a detached ArrayBuffer');
  }
  return kind;
}

/** An array of the same element type as x; null/undefined allowed (as null) when `nullable`. */
export function checkKind(name: string, v: unknown, kind: Kind, nullable: boolean): DataArray | null {
  if (v === null || v === undefined) {
    if (nullable) return null;
    throw invalidType(name, `a ${kindName(kind)}`, v);
  }
  if (kindOf(v) !== kind) {
    throw invalidType(name, `a ${kindName(kind)} (the element type of "x")${nullable ? ' or null' : ''}`, v);
  }
  const a = v as DataArray;
  if (a.length === 0 && isDetached(a)) throw invalidValue(name, 'must not be on a detached ArrayBuffer');
  return a;
}

export function checkLength(name: string, a: DataArray, length: number, lengthName: string): void {
  if (a.length === length) return;
  throw outOfRange(name, `have length ${length} (${lengthName})`, `length ${a.length}`);
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

/** The options bag: undefined or null mean "all defaults" (as in Node's fs); anything else must be an object. */
export function checkOptions<O extends object>(v: unknown): Partial<O> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidType('options', 'an object', v);
  return v as Partial<O>;
}

function checkNumber(name: string, v: unknown): number {
  if (typeof v !== 'number') throw invalidType(name, 'of type number', v);
  return v;
}

/** options.dim, else the length of `source` (the weight; for layerNorm the weight or else the bias). */
export function checkDim(v: unknown, source: DataArray | null, sourceName = 'weight'): number {
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
  const e = checkNumber('options.eps', v);
  if (!(e >= 0 && e <= Number.MAX_VALUE)) throw outOfRange('options.eps', 'be a finite number >= 0', String(e));
  return e;
}

export function checkOffset(v: unknown, weight: DataArray | null): number {
  if (v === undefined) return 0;
  const o = checkNumber('options.offset', v);
  if (!Number.isFinite(o)) throw outOfRange('options.offset', 'be a finite number', String(o));
  if (o !== 0 && weight === null) throw invalidValue('options.offset', 'requires a weight (weight is null)');
  return o;
}

export function checkPartial(v: unknown): number {
  if (v === undefined) return 1;
  const p = checkNumber('options.partial', v);
  if (!(p > 0 && p <= 1)) throw outOfRange('options.partial', 'be in (0, 1]', String(p));
  return p;
}

export function checkRowsMultiple(x: DataArray, dim: number, name = 'x'): number {
  if (x.length % dim !== 0) {
    throw outOfRange(name, `have a length that is a multiple of dim (${dim})`, `length ${x.length}`);
  }
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
  rows: number;
}

/** The element type and presence of an array argument; null when absent and the slot allows it. */
export function checkSlotType(slot: ArraySlot, v: unknown, t: CallTypes): DataArray | null {
  const optional = slot.nullable || slot.allocate !== undefined;
  if (slot.element === 'param') return checkParam(slot.name, v, t, optional);
  return checkKind(slot.name, v, slot.element === 'stat' ? t.stat : t.data, optional);
}

/** The length of a present array argument. */
export function checkSlotLength(slot: ArraySlot, a: DataArray | null, s: Sizes): void {
  if (!a) return;
  if (slot.length === 'total') checkLength(slot.name, a, s.total, s.totalName);
  else if (slot.length === 'dim') checkLength(slot.name, a, s.dim, 'dim');
  else checkLength(slot.name, a, s.rows, 'rows');
}

/** checkSlotType, then checkSlotLength. */
export function checkSlot(slot: ArraySlot, v: unknown, t: CallTypes, s: Sizes): DataArray | null {
  const a = checkSlotType(slot, v, t);
  checkSlotLength(slot, a, s);
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
