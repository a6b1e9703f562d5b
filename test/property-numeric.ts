// Shared pieces of the property-based suites: generators of rows (normal, subnormal, near-overflow, constant,
// zero, with NaN and infinities), views placed at odd offsets inside guarded backing arrays, and the
// element-by-element comparison against the float64 reference with the README's budgets.
import fc from 'fast-check';
import { expect } from 'vitest';
import { rng, type FloatArray } from './reference';

export type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
export const TYPES: Ctor[] = [Float32Array, Float64Array];

export const isF32 = (T: Ctor) => T === Float32Array;
export const maxOf = (T: Ctor) => (isF32(T) ? 3.4028234663852886e38 : Number.MAX_VALUE);
export const subOf = (T: Ctor) => (isF32(T) ? 2 ** -149 : 2 ** -1074);
const tinyOf = (T: Ctor) => (isF32(T) ? 2 ** -126 : 2 ** -1022);
const mantOf = (T: Ctor) => (isF32(T) ? 23 : 52);
/** Budgets: the README's 4 ulp for float32; the contract's relative 1e-13 (450 ulp) for float64. */
export const budget = (T: Ctor) => (isF32(T) ? 4 : 450);

/** A unit in the last place of T at magnitude s (the smallest subnormal below the normal range). */
export function ulpOf(T: Ctor, s: number): number {
  s = Math.abs(s);
  if (!(s >= tinyOf(T))) return subOf(T);
  if (s === Infinity) return Infinity;
  let e = Math.floor(Math.log2(s));
  if (2 ** e > s) e--;
  if (2 ** (e + 1) <= s) e++;
  return 2 ** (e - mantOf(T));
}

/**
 * got against the exact value want: NaN where want is NaN, the same infinity where want is infinite, an
 * overflow to infinity only where want is beyond T's largest value by more than the tolerance allows, else
 * within tol. Returns a description of the mismatch, or null.
 */
export function mismatch(T: Ctor, got: number, want: number, tol: number): string | null {
  if (Number.isNaN(want) || Number.isNaN(got))
    return Number.isNaN(want) && Number.isNaN(got) ? null : `got ${got}, want ${want}`;
  if (!Number.isFinite(want)) return got === want ? null : `got ${got}, want ${want}`;
  if (!Number.isFinite(got)) {
    return got > 0 === want > 0 && Math.abs(want) + tol >= maxOf(T) ? null : `got ${got}, want ${want} (finite)`;
  }
  const err = Math.abs(got - want);
  return err <= tol
    ? null
    : `got ${got}, want ${want}, error ${err} > tolerance ${tol} (${(err / ulpOf(T, want)).toFixed(1)} ulp of the value)`;
}

/** Fails the test with the first mismatch of a list of [label, got, want, tol]. */
export class Checker {
  private first: string | null = null;
  checked = 0;
  constructor(private readonly T: Ctor) {}
  close(label: string, got: number, want: number, tol: number): void {
    this.checked++;
    if (this.first) return;
    const m = mismatch(this.T, got, want, tol);
    if (m) this.first = `${label}: ${m}`;
  }
  fail(message: string): void {
    if (!this.first) this.first = message;
  }
  done(context: unknown): void {
    expect(this.first, this.first ? JSON.stringify(context, replacer) : '').toBeNull();
  }
}

function replacer(_: string, v: unknown) {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (ArrayBuffer.isView(v)) return Array.from(v as Float64Array).map((n) => (Number.isFinite(n) ? n : String(n)));
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Rows

/** How one row's values are made; the values themselves come from `values(T, dim, recipe)`. */
export type RowRecipe =
  | { kind: 'uniform'; scale: number; seed: number; specials: [number, number][] }
  | { kind: 'elements'; values: number[]; specials: [number, number][] }
  | { kind: 'constant'; value: number; specials: [number, number][] }
  | { kind: 'zeros'; specials: [number, number][] };

/** Magnitudes rows are drawn at: ordinary, tiny, subnormal, huge and next to the largest finite value. */
export const SCALES = {
  f32: [1, 1, 1e-3, 1e3, 1e-20, 1e20, 1e-38, 1e-42, 1e38, 3.4e38],
  f64: [1, 1, 1e-3, 1e3, 1e-150, 1e150, 1e-300, 1e-310, 1e300, 1.7e308],
};

function special(T: Ctor) {
  return fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, maxOf(T), -maxOf(T), subOf(T), -subOf(T));
}

/** Any value of T, NaN and infinities included (fast-check favours the edges: 0, -0, extremes, subnormals). */
export function anyValue(T: Ctor, finite = false): fc.Arbitrary<number> {
  const o = finite ? { noNaN: true, noDefaultInfinity: true } : {};
  return isF32(T) ? fc.float(o) : fc.double(o);
}

/**
 * A row recipe for rows of `dim` values. `nonFinite`: whether NaN and infinities may appear; `moderate`: only
 * ordinary magnitudes (for the backward passes, whose tolerance is relative to the size of their terms).
 */
export function rowRecipe(
  T: Ctor,
  dim: number,
  o: { nonFinite: boolean; moderate?: boolean },
): fc.Arbitrary<RowRecipe> {
  const scales = o.moderate ? [1, 1e-2, 1e2] : SCALES[isF32(T) ? 'f32' : 'f64'];
  const specials = o.nonFinite
    ? fc.oneof(
        { weight: 4, arbitrary: fc.constant([] as [number, number][]) },
        { weight: 1, arbitrary: fc.array(fc.tuple(fc.nat(dim - 1), special(T)), { minLength: 1, maxLength: 2 }) },
      )
    : fc.constant([] as [number, number][]);
  const kinds: fc.Arbitrary<RowRecipe>[] = [
    fc.record({
      kind: fc.constant('uniform' as const),
      scale: fc.constantFrom(...scales),
      seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      specials,
    }),
  ];
  if (!o.moderate) {
    kinds.push(fc.record({ kind: fc.constant('constant' as const), value: anyValue(T, true), specials }));
    kinds.push(fc.record({ kind: fc.constant('zeros' as const), specials }));
    if (dim <= 48)
      kinds.push(
        fc.record({
          kind: fc.constant('elements' as const),
          values: fc.array(anyValue(T, !o.nonFinite), { minLength: dim, maxLength: dim }),
          specials,
        }),
      );
  } else {
    kinds.push(fc.record({ kind: fc.constant('zeros' as const), specials }));
  }
  return fc.oneof(
    { weight: 6, arbitrary: kinds[0]! },
    ...kinds.slice(1).map((arbitrary) => ({ weight: 1, arbitrary })),
  );
}

/** The values of one row, rounded to T. */
export function rowValues(T: Ctor, dim: number, r: RowRecipe): FloatArray {
  const a = new T(dim);
  if (r.kind === 'uniform') {
    const next = rng(r.seed);
    for (let i = 0; i < dim; i++) a[i] = (2 * next() - 1) * r.scale;
  } else if (r.kind === 'elements') {
    a.set(r.values);
  } else if (r.kind === 'constant') {
    a.fill(r.value);
  }
  for (const [i, v] of r.specials) a[i] = v;
  return a;
}

export function matrix(T: Ctor, dim: number, rows: RowRecipe[]): FloatArray {
  const a = new T(rows.length * dim);
  rows.forEach((r, i) => a.set(rowValues(T, dim, r), i * dim));
  return a;
}

/** A vector of `dim` finite values (weights, biases), at one of a few magnitudes, exact zeros included. */
export function vectorRecipe(): fc.Arbitrary<{ scale: number; seed: number; zeros: boolean }> {
  return fc.record({
    scale: fc.constantFrom(1, 1, 1, 1e-3, 1e3, 1e-30, 1e30),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    zeros: fc.boolean(),
  });
}

export function vectorValues(
  T: Ctor,
  dim: number,
  v: { scale: number; seed: number; zeros: boolean },
  lo = -1,
): FloatArray {
  const next = rng(v.seed);
  const a = new T(dim);
  for (let i = 0; i < dim; i++) a[i] = v.zeros && i % 5 === 2 ? 0 : (lo + (1 - lo) * next()) * v.scale;
  return a;
}

// ---------------------------------------------------------------------------------------------------------
// Views at odd offsets inside guarded backing arrays

const SENTINEL = 7777.25;

export interface Guarded {
  view: FloatArray;
  backing: FloatArray;
  offset: number;
}

/** A view of `length` elements at element `offset` of a larger array filled with a sentinel. */
export function guarded(T: Ctor, length: number, offset: number, values?: ArrayLike<number>): Guarded {
  const backing = new T(offset + length + 3).fill(SENTINEL);
  const view = backing.subarray(offset, offset + length);
  if (values) view.set(values);
  return { view, backing, offset };
}

/** True when nothing outside the view was written. */
export function untouchedOutside(g: Guarded): boolean {
  const { backing, offset, view } = g;
  for (let i = 0; i < offset; i++) if (backing[i] !== SENTINEL) return false;
  for (let i = offset + view.length; i < backing.length; i++) if (backing[i] !== SENTINEL) return false;
  return true;
}

export function bits(a: FloatArray | null): string {
  if (!a) return 'null';
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function sameBits(a: FloatArray | null, b: FloatArray | null): boolean {
  return bits(a) === bits(b);
}
