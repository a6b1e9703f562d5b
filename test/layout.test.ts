// Strided rows, heads and addRmsNorm's residualScale, on every backend (see vitest.config.mts). Random layouts:
// each array with rows is a view at an odd offset of a backing array filled with a guard value, its rows
// `rowStride` apart and its heads `headStride` apart. Each call must
//   - give, in its groups, the same bits as the dense call on the gathered groups (same backend, same kernel);
//   - agree with the float64 reference and with the fallback's kernels run on the same layout;
//   - leave every element outside the groups of its outputs untouched (between rows, between heads, around);
//   - give the same bits through its async twin.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addRmsNorm,
  addRmsNormAsync,
  backend,
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
import { layoutExtent } from '../dist/validate.js';
import { params } from './property-config';
import { sameBits } from './property-numeric';
import {
  maxRelError,
  referenceLayerNorm,
  referenceLayerNormBackward,
  referenceRmsNorm,
  referenceRmsNormBackward,
  rng,
} from './reference';

type Arr = Float32Array | Float64Array | Uint16Array;
interface Kind {
  name: string;
  make: (n: number) => Arr;
  dtype?: 'bfloat16';
  /** Relative tolerance against the float64 reference and the fallback. */
  tol: number;
  guard: number;
}
const KINDS: Kind[] = [
  { name: 'float32', make: (n) => new Float32Array(n), tol: 2e-5, guard: -777.25 },
  { name: 'float64', make: (n) => new Float64Array(n), tol: 1e-12, guard: -777.25 },
  { name: 'bfloat16', make: (n) => new Uint16Array(n), dtype: 'bfloat16', tol: 2e-2, guard: 0x7bad },
];

/** bfloat16 bits of a float (round to nearest even; the test values are finite). */
function toBf16(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
function fromBf16(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
}
const decode = (k: Kind, a: Arr): number[] => Array.from(a, (v) => (k.dtype ? fromBf16(v) : v));
const encodeValue = (k: Kind, v: number): number => (k.dtype ? toBf16(v) : v);

interface Layout {
  dim: number;
  rows: number;
  heads: number;
  headStride: number;
  rowSpan: number;
}

/** A strided array: its view in a guarded backing array, and its row stride. */
interface Strided {
  view: Arr;
  backing: Arr;
  before: Arr;
  stride: number;
}

function groupIndexes(L: Layout, stride: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < L.rows; r++)
    for (let h = 0; h < L.heads; h++) for (let i = 0; i < L.dim; i++) out.push(r * stride + h * L.headStride + i);
  return out;
}

/** A strided array holding `values` (one per group element, in group order). */
function strided(k: Kind, L: Layout, stride: number, offset: number, tail: number, values: number[]): Strided {
  const length = layoutExtent(L.rows, stride, L.rowSpan) + tail;
  const backing = k.make(offset + length + 3).fill(k.guard);
  const view = backing.subarray(offset, offset + length);
  groupIndexes(L, stride).forEach((at, j) => (view[at] = encodeValue(k, values[j]!)));
  return { view, backing, before: backing.slice(), stride };
}

/** The groups of a strided array, dense. */
function groups(L: Layout, s: { view: Arr; stride: number }): Arr {
  const idx = groupIndexes(L, s.stride);
  const out = new (s.view.constructor as new (n: number) => Arr)(idx.length);
  idx.forEach((at, j) => (out[j] = s.view[at]!));
  return out;
}

/** Every element of the backing array outside the groups is as it was. */
function untouchedOutsideGroups(L: Layout, s: Strided): boolean {
  const offset = s.view.byteOffset / s.view.BYTES_PER_ELEMENT - s.backing.byteOffset / s.backing.BYTES_PER_ELEMENT;
  const inside = new Set(groupIndexes(L, s.stride).map((i) => i + offset));
  for (let i = 0; i < s.backing.length; i++) {
    if (inside.has(i)) continue;
    if (!Object.is(s.backing[i], s.before[i])) return false;
  }
  return true;
}

function values(n: number, seed: number, scale = 2): number[] {
  const next = rng(seed);
  return Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}

const layoutCase = fc
  .record({
    dim: fc.oneof(fc.integer({ min: 1, max: 24 }), fc.constantFrom(31, 64, 65, 128)),
    rows: fc.integer({ min: 0, max: 5 }),
    heads: fc.integer({ min: 1, max: 4 }),
    headGap: fc.constantFrom(0, 0, 1, 3, 8),
    gaps: fc.array(fc.constantFrom(0, 1, 5, 16), { minLength: 4, maxLength: 4 }),
    offsets: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 4, maxLength: 4 }),
    tails: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 4, maxLength: 4 }),
    giveRows: fc.boolean(),
    inPlace: fc.boolean(),
    weighted: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    residualScale: fc.constantFrom(1, 0.22, -1.5),
    kind: fc.constantFrom(...KINDS),
  })
  .map((c) => {
    const headStride = c.dim + c.headGap;
    const rowSpan = (c.heads - 1) * headStride + c.dim;
    return { ...c, L: { dim: c.dim, rows: c.rows, heads: c.heads, headStride, rowSpan } as Layout };
  });

type Case = typeof layoutCase extends fc.Arbitrary<infer C> ? C : never;

/** The layout options of a call whose first array is `first` (rows given, or left to x's length). */
function layoutOptions(c: Case, firstStride: number): Record<string, number> {
  const o: Record<string, number> = { heads: c.L.heads, headStride: c.L.headStride };
  // Without options.rows the rows follow from the first array's length: floor((length - rowSpan) / stride) + 1;
  // the tail is shorter than one more row, so it stays ignored.
  if (c.giveRows || c.L.rows === 0) o.rows = c.L.rows;
  void firstStride;
  return o;
}

function param(c: Case, seed: number): Arr | null {
  if (!c.weighted) return null;
  const k = c.kind;
  const a = k.make(c.dim);
  values(c.dim, seed, 1.5).forEach((v, i) => (a[i] = encodeValue(k, v + 0.5)));
  return a;
}

function closeTo(k: Kind, got: Arr, want: ArrayLike<number>): boolean {
  return maxRelError(decode(k, got), want, 1e-3) <= k.tol;
}

const native = backend().native;

describe('strided rows and heads: forward', () => {
  it('rmsNorm: the dense call on the groups, the reference, the fallback, guards and async', async () => {
    await fc.assert(
      fc.asyncProperty(layoutCase, async (c) => {
        const k = c.kind;
        const { L } = c;
        const n = L.rows * L.heads * L.dim;
        const xs = L.rowSpan + c.gaps[0]!;
        const os = L.rowSpan + c.gaps[1]!;
        const xv = values(n, c.seed);
        const x = strided(k, L, xs, c.offsets[0]!, c.tails[0]! % Math.max(1, xs - L.rowSpan + 1), xv);
        const out = c.inPlace ? x : strided(k, L, os, c.offsets[1]!, c.tails[1]!, values(n, c.seed + 1));
        const weight = param(c, c.seed + 2);
        const rstd =
          k.dtype || k.name === 'float32' ? new Float32Array(L.rows * L.heads) : new Float64Array(L.rows * L.heads);
        const options = {
          ...layoutOptions(c, xs),
          ...(k.dtype ? { dtype: k.dtype } : {}),
          dim: L.dim,
          xRowStride: xs,
          out: out.view,
          outRowStride: out.stride,
          rstd,
        };
        const xDense = groups(L, x);
        const dense = rmsNorm(
          xDense as Float32Array,
          weight as Float32Array,
          {
            dim: L.dim,
            ...(k.dtype ? { dtype: k.dtype } : {}),
          } as never,
        );
        // The fallback on the same layout (its positional kernels), into a copy of out's backing.
        const fbOut = out.backing.slice();
        const fbView = fbOut
          .subarray(
            out.view.byteOffset / out.view.BYTES_PER_ELEMENT - out.backing.byteOffset / out.backing.BYTES_PER_ELEMENT,
          )
          .subarray(0, out.view.length);
        const xCopy = c.inPlace ? fbView : x.view;
        fallback.rmsNorm(
          xCopy.slice() as Arr,
          weight,
          null,
          fbView,
          null,
          L.dim,
          1e-5,
          0,
          1,
          k.dtype ? 1 : 0,
          0,
          L.rows,
          L.heads,
          L.headStride,
          xs,
          out.stride,
        );
        const ret = rmsNorm(x.view as Float32Array, weight as Float32Array, options as never);
        expect(ret).toBe(out.view);
        expect(sameBits(groups(L, out) as Float32Array, dense as Float32Array)).toBe(true);
        expect(untouchedOutsideGroups(L, out)).toBe(true);
        if (!c.inPlace) expect(sameBits(x.backing as Float32Array, x.before as Float32Array)).toBe(true);
        const ref = referenceRmsNorm(decode(k, xDense), weight ? decode(k, weight) : null, { dim: L.dim });
        expect(closeTo(k, groups(L, out), ref.y)).toBe(true);
        expect(maxRelError(rstd, ref.rstd)).toBeLessThanOrEqual(k.tol);
        expect(closeTo(k, groups(L, { view: fbView, stride: out.stride }), decode(k, groups(L, out)))).toBe(true);
        // The async twin: the same bits.
        if (!c.inPlace) {
          const again = strided(k, L, os, c.offsets[1]!, c.tails[1]!, values(n, c.seed + 1));
          await rmsNormAsync(
            x.view as Float32Array,
            weight as Float32Array,
            {
              ...options,
              out: again.view,
            } as never,
          );
          expect(sameBits(again.backing as Float32Array, out.backing as Float32Array)).toBe(true);
        }
      }),
      params('layout rmsNorm'),
    );
  });

  it('layerNorm: the dense call on the groups, the reference, guards and async', async () => {
    await fc.assert(
      fc.asyncProperty(layoutCase, async (c) => {
        const k = c.kind;
        const { L } = c;
        const n = L.rows * L.heads * L.dim;
        const xs = L.rowSpan + c.gaps[0]!;
        const x = strided(k, L, xs, c.offsets[0]!, 0, values(n, c.seed));
        const out = c.inPlace ? x : strided(k, L, L.rowSpan + c.gaps[1]!, c.offsets[1]!, c.tails[1]!, values(n, 7));
        const weight = param(c, c.seed + 2);
        const extra = k.dtype ? { dtype: k.dtype } : {};
        const xDense = groups(L, x);
        const dense = layerNorm(xDense as Float32Array, weight as Float32Array, null, {
          dim: L.dim,
          ...extra,
        } as never);
        const options = {
          ...layoutOptions(c, xs),
          ...extra,
          dim: L.dim,
          xRowStride: xs,
          out: out.view,
          outRowStride: out.stride,
        };
        layerNorm(x.view as Float32Array, weight as Float32Array, null, options as never);
        expect(sameBits(groups(L, out) as Float32Array, dense as Float32Array)).toBe(true);
        expect(untouchedOutsideGroups(L, out)).toBe(true);
        const ref = referenceLayerNorm(decode(k, xDense), weight ? decode(k, weight) : null, null, { dim: L.dim });
        expect(closeTo(k, groups(L, out), ref.y)).toBe(true);
        if (!c.inPlace) {
          const again = strided(k, L, out.stride, c.offsets[1]!, c.tails[1]!, values(n, 7));
          await layerNormAsync(x.view as Float32Array, weight as Float32Array, null, {
            ...options,
            out: again.view,
          } as never);
          expect(sameBits(again.backing as Float32Array, out.backing as Float32Array)).toBe(true);
        }
      }),
      params('layout layerNorm'),
    );
  });

  it('addRmsNorm with residualScale: residual and out as the dense call, guards, the reference and async', async () => {
    await fc.assert(
      fc.asyncProperty(layoutCase, async (c) => {
        const k = c.kind;
        const { L } = c;
        const n = L.rows * L.heads * L.dim;
        const xs = L.rowSpan + c.gaps[0]!;
        const rs = L.rowSpan + c.gaps[2]!;
        const make = () => ({
          x: strided(k, L, xs, c.offsets[0]!, 0, values(n, c.seed)),
          res: strided(k, L, rs, c.offsets[2]!, c.tails[2]!, values(n, c.seed + 5)),
          out: strided(k, L, L.rowSpan + c.gaps[1]!, c.offsets[1]!, c.tails[1]!, values(n, 9)),
        });
        const a = make();
        const out = c.inPlace ? a.x : a.out;
        const weight = param(c, c.seed + 2);
        const extra = k.dtype ? { dtype: k.dtype } : {};
        const xDense = groups(L, a.x);
        const resDense = groups(L, a.res);
        const resBefore = decode(k, resDense);
        const dense = addRmsNorm(
          xDense as Float32Array,
          resDense as Float32Array,
          weight as Float32Array,
          {
            dim: L.dim,
            residualScale: c.residualScale,
            ...extra,
          } as never,
        );
        const options = {
          ...layoutOptions(c, xs),
          ...extra,
          dim: L.dim,
          xRowStride: xs,
          residualRowStride: rs,
          out: out.view,
          outRowStride: out.stride,
          residualScale: c.residualScale,
        };
        addRmsNorm(a.x.view as Float32Array, a.res.view as Float32Array, weight as Float32Array, options as never);
        expect(sameBits(groups(L, a.res) as Float32Array, resDense as Float32Array)).toBe(true);
        expect(sameBits(groups(L, out) as Float32Array, dense as Float32Array)).toBe(true);
        expect(untouchedOutsideGroups(L, a.res)).toBe(true);
        expect(untouchedOutsideGroups(L, out)).toBe(true);
        // residual = residual + x * residualScale, rounded once; then rmsNorm of it.
        const xd = decode(k, xDense);
        const wantRes = resBefore.map((v, i) => v + xd[i]! * c.residualScale);
        expect(closeTo(k, groups(L, a.res), wantRes)).toBe(true);
        const ref = referenceRmsNorm(decode(k, groups(L, a.res)), weight ? decode(k, weight) : null, { dim: L.dim });
        expect(closeTo(k, groups(L, out), ref.y)).toBe(true);
        if (!c.inPlace) {
          const b = make();
          await addRmsNormAsync(
            b.x.view as Float32Array,
            b.res.view as Float32Array,
            weight as Float32Array,
            {
              ...options,
              out: b.out.view,
            } as never,
          );
          expect(sameBits(b.res.backing as Float32Array, a.res.backing as Float32Array)).toBe(true);
          expect(sameBits(b.out.backing as Float32Array, a.out.backing as Float32Array)).toBe(true);
        }
      }),
      params('layout addRmsNorm'),
    );
  });
});

describe('strided rows and heads: backward', () => {
  for (const op of ['rmsNormBackward', 'layerNormBackward'] as const) {
    it(`${op}: dx, dweight and dbias as the dense call, the reference, guards and async`, async () => {
      const sync = op === 'rmsNormBackward' ? rmsNormBackward : layerNormBackward;
      const async_ = op === 'rmsNormBackward' ? rmsNormBackwardAsync : layerNormBackwardAsync;
      await fc.assert(
        fc.asyncProperty(layoutCase, async (c) => {
          const k = c.kind;
          const { L } = c;
          const n = L.rows * L.heads * L.dim;
          const ds = L.rowSpan + c.gaps[0]!;
          const xs = L.rowSpan + c.gaps[1]!;
          const dy = strided(k, L, ds, c.offsets[0]!, 0, values(n, c.seed));
          const x = strided(k, L, xs, c.offsets[1]!, c.tails[1]!, values(n, c.seed + 3));
          const dx = c.inPlace ? dy : strided(k, L, L.rowSpan + c.gaps[2]!, c.offsets[2]!, c.tails[2]!, values(n, 4));
          const weight = param(c, c.seed + 2);
          const extra = k.dtype ? { dtype: k.dtype } : {};
          const dyDense = groups(L, dy);
          const xDense = groups(L, x);
          const dense = sync(
            dyDense as Float32Array,
            xDense as Float32Array,
            weight as Float32Array,
            {
              dim: L.dim,
              ...extra,
            } as never,
          );
          const options = {
            ...layoutOptions(c, ds),
            ...extra,
            dim: L.dim,
            dyRowStride: ds,
            xRowStride: xs,
            dx: dx.view,
            dxRowStride: dx.stride,
          };
          const got = sync(dy.view as Float32Array, x.view as Float32Array, weight as Float32Array, options as never);
          expect(sameBits(groups(L, dx) as Float32Array, dense.dx as Float32Array)).toBe(true);
          expect(sameBits(got.dbias as Float32Array, dense.dbias as Float32Array)).toBe(true);
          expect(sameBits(got.dweight as Float32Array | null, dense.dweight as Float32Array | null)).toBe(true);
          expect(untouchedOutsideGroups(L, dx)).toBe(true);
          expect(sameBits(x.backing as Float32Array, x.before as Float32Array)).toBe(true);
          const refOp = op === 'rmsNormBackward' ? referenceRmsNormBackward : referenceLayerNormBackward;
          const ref = refOp(decode(k, dyDense), decode(k, xDense), weight ? decode(k, weight) : null, { dim: L.dim });
          if (k.dtype) {
            // Half data: dx is checked against the float32 dense call above; the sums in float32 statistics.
            expect(maxRelError(got.dbias!, ref.dbias, 1e-3)).toBeLessThanOrEqual(k.tol);
          } else {
            expect(maxRelError(decode(k, groups(L, dx)), ref.dx, 1e-3)).toBeLessThanOrEqual(k.tol * 50);
            expect(maxRelError(got.dbias!, ref.dbias, 1e-3)).toBeLessThanOrEqual(k.tol * 50);
          }
          if (!c.inPlace) {
            const again = strided(k, L, dx.stride, c.offsets[2]!, c.tails[2]!, values(n, 4));
            const r = await async_(
              dy.view as Float32Array,
              x.view as Float32Array,
              weight as Float32Array,
              {
                ...options,
                dx: again.view,
              } as never,
            );
            expect(sameBits(again.backing as Float32Array, dx.backing as Float32Array)).toBe(true);
            expect(sameBits(r.dbias as Float32Array, got.dbias as Float32Array)).toBe(true);
          }
        }),
        params(`layout ${op}`),
      );
    });
  }
});

describe('layouts: rows, new arrays, the fused QKV buffer', () => {
  it('without options.rows, rows = floor((x.length - rowSpan) / xRowStride) + 1; a dense x must divide', () => {
    const x = new Float32Array(6 * 3 + 4).fill(1);
    // rowSpan 4 (dim 4), stride 6: rows at 0, 6, 12, 18 (18 + 4 = 22 = length).
    const y = rmsNorm(x, null, { dim: 4, xRowStride: 6 });
    expect(y.length).toBe(16); // a new out is dense: 4 rows of 4
    expect(() => rmsNorm(new Float32Array(10), null, { dim: 4 })).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }),
    );
    expect(rmsNorm(new Float32Array(10), null, { dim: 4, xRowStride: 6 }).length).toBe(8);
    expect(rmsNorm(new Float32Array(3), null, { dim: 4, xRowStride: 6 }).length).toBe(0);
    expect(rmsNorm(new Float32Array(12), null, { dim: 2, heads: 3 }).length).toBe(12);
  });

  it('per-head QK-norm of the q and k parts of a fused QKV buffer, in place, leaves v alone', () => {
    const tokens = 3,
      heads = 4,
      kvHeads = 2,
      dim = 8;
    const stride = (heads + 2 * kvHeads) * dim;
    const qkv = new Float32Array(tokens * stride).map((_, i) => Math.sin(i) * 3);
    const before = qkv.slice();
    const qw = new Float32Array(dim).map((_, i) => 1 + i / 8);
    const kw = new Float32Array(dim).map((_, i) => 2 - i / 8);
    const q = qkv.subarray(0);
    rmsNorm(q, qw, { heads, xRowStride: stride, out: q, outRowStride: stride, rows: tokens });
    const k = qkv.subarray(heads * dim);
    rmsNorm(k, kw, { heads: kvHeads, xRowStride: stride, out: k, outRowStride: stride });
    for (let t = 0; t < tokens; t++) {
      for (let h = 0; h < heads + 2 * kvHeads; h++) {
        const at = t * stride + h * dim;
        const group = before.subarray(at, at + dim);
        const got = qkv.subarray(at, at + dim);
        if (h >= heads + kvHeads) {
          expect(Array.from(got)).toEqual(Array.from(group)); // v untouched
        } else {
          const want = rmsNorm(group.slice(), h < heads ? qw : kw);
          expect(Array.from(got)).toEqual(Array.from(want));
        }
      }
    }
  });

  it('rstd and mean have rows * heads entries; dweight and dbias sum over rows and heads', () => {
    const x = new Float64Array(2 * 10).map((_, i) => Math.cos(i));
    const rstd = new Float64Array(4);
    rmsNorm(x, new Float64Array(3).fill(1), { heads: 2, headStride: 4, xRowStride: 10, rstd });
    const dense = new Float64Array([0, 1, 2, 4, 5, 6, 10, 11, 12, 14, 15, 16].map((i) => x[i]!));
    const want = new Float64Array(4);
    rmsNorm(dense, new Float64Array(3).fill(1), { rstd: want });
    expect(Array.from(rstd)).toEqual(Array.from(want));
    expect(() =>
      rmsNorm(x, null, { dim: 3, heads: 2, headStride: 4, xRowStride: 10, rstd: new Float64Array(2) }),
    ).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/rows \* heads/) }));
  });

  it('Granite residual multiplier: d(x) = residualScale * d(residual)', () => {
    const dim = 16;
    const x = new Float64Array(dim).map((_, i) => Math.sin(i + 1));
    const r0 = new Float64Array(dim).map((_, i) => Math.cos(i));
    const w = new Float64Array(dim).fill(1.25);
    const dy = new Float64Array(dim).map((_, i) => (i % 3) - 1);
    const s = 0.22;
    const res = r0.slice();
    addRmsNorm(x, res, w, { residualScale: s });
    const { dx } = rmsNormBackward(dy, res, w);
    // Finite differences of L = sum(dy * rmsNorm(r0 + x * s)) in x_0.
    const h = 1e-6;
    const loss = (x0: number) => {
      const xx = x.slice();
      xx[0] = x0;
      const y = rmsNorm(new Float64Array(r0.map((v, i) => v + xx[i]! * s)), w);
      return y.reduce((a, v, i) => a + v * dy[i]!, 0);
    };
    const fd = (loss(x[0]! + h) - loss(x[0]! - h)) / (2 * h);
    expect(Math.abs(fd - s * dx[0]!)).toBeLessThan(1e-6);
  });
});

describe('layout errors: refused before anything is written', () => {
  const code = (c: string, m?: RegExp) =>
    expect.objectContaining({ code: c, ...(m ? { message: expect.stringMatching(m) } : {}) });
  const x = () => new Float32Array(64).fill(1);

  it('a row stride smaller than the row, or heads beyond it', () => {
    expect(() => rmsNorm(x(), null, { dim: 8, xRowStride: 7 })).toThrow(code('ERR_OUT_OF_RANGE', /xRowStride.*>= 8/));
    expect(() => rmsNorm(x(), null, { dim: 4, heads: 3, headStride: 5, xRowStride: 13 })).toThrow(
      code('ERR_OUT_OF_RANGE', /xRowStride.*>= 14/),
    );
    const out = new Float32Array(64).fill(3);
    expect(() => rmsNorm(x(), null, { dim: 8, out, outRowStride: 4 })).toThrow(
      code('ERR_OUT_OF_RANGE', /outRowStride/),
    );
    expect(out.every((v) => v === 3)).toBe(true);
    expect(() => rmsNormBackward(x(), x(), null, { dim: 8, dyRowStride: 16, xRowStride: 2 })).toThrow(
      code('ERR_OUT_OF_RANGE', /xRowStride/),
    );
  });

  it('headStride below dim, heads not a positive integer, rows not a non-negative integer', () => {
    expect(() => rmsNorm(x(), null, { dim: 8, heads: 2, headStride: 7 })).toThrow(
      code('ERR_OUT_OF_RANGE', /headStride/),
    );
    expect(() => rmsNorm(x(), null, { dim: 8, heads: 0 })).toThrow(code('ERR_OUT_OF_RANGE', /heads/));
    expect(() => rmsNorm(x(), null, { dim: 8, heads: 1.5 })).toThrow(code('ERR_OUT_OF_RANGE', /heads/));
    expect(() => rmsNorm(x(), null, { dim: 8, rows: -1 })).toThrow(code('ERR_OUT_OF_RANGE', /rows/));
    expect(() => rmsNorm(x(), null, { dim: 8, heads: '2' as never })).toThrow(code('ERR_INVALID_ARG_TYPE', /heads/));
    expect(() => addRmsNorm(x(), x(), null, { dim: 8, residualScale: NaN })).toThrow(
      code('ERR_OUT_OF_RANGE', /residualScale/),
    );
    expect(() => addRmsNorm(x(), x(), null, { dim: 8, residualScale: '1' as never })).toThrow(
      code('ERR_INVALID_ARG_TYPE', /residualScale/),
    );
  });

  it('a layout past the end of an array', () => {
    expect(() => rmsNorm(x(), null, { dim: 8, rows: 9 })).toThrow(code('ERR_OUT_OF_RANGE', /"x".*at least 72/));
    expect(() => rmsNorm(x(), null, { dim: 8, rows: 4, xRowStride: 20 })).toThrow(
      code('ERR_OUT_OF_RANGE', /at least 68/),
    );
    const out = new Float32Array(30).fill(3);
    expect(() => rmsNorm(x(), null, { dim: 8, xRowStride: 16, out, outRowStride: 10 })).toThrow(
      code('ERR_OUT_OF_RANGE', /options.out.*at least 38/),
    );
    expect(out.every((v) => v === 3)).toBe(true);
    const res = new Float32Array(40).fill(3);
    expect(() => addRmsNorm(x(), res, null, { dim: 8, xRowStride: 16, residualRowStride: 12 })).toThrow(
      code('ERR_OUT_OF_RANGE', /residual/),
    );
    expect(res.every((v) => v === 3)).toBe(true);
    expect(() => rmsNorm(x(), null, { dim: 8, outRowStride: 8 })).toThrow(
      code('ERR_INVALID_ARG_VALUE', /outRowStride/),
    );
  });

  it('overlapping rows between out and another array, unless exactly in place with the same stride', () => {
    const buf = new Float32Array(64).fill(2);
    // out's rows fall on x's rows, shifted by one element: refused.
    expect(() => rmsNorm(buf, null, { dim: 4, xRowStride: 8, out: buf.subarray(1), outRowStride: 8, rows: 7 })).toThrow(
      code('ERR_INVALID_ARG_VALUE', /"options.out".*overlap "x"/),
    );
    // The same view with another stride: refused.
    expect(() => rmsNorm(buf, null, { dim: 4, xRowStride: 8, out: buf, outRowStride: 4, rows: 4 })).toThrow(
      code('ERR_INVALID_ARG_VALUE', /overlap/),
    );
    expect(buf.every((v) => v === 2)).toBe(true);
    // Interleaved rows of one buffer (x in the first half of each row, out in the second): allowed.
    rmsNorm(buf, null, { dim: 4, xRowStride: 8, out: buf.subarray(4), outRowStride: 8, rows: 8 });
    expect(buf[4]).toBeCloseTo(2 / Math.sqrt(4 + 1e-5), 6);
    expect(buf[0]).toBe(2);
    // addRmsNorm: out over residual's rows is refused.
    const r = new Float32Array(64);
    expect(() =>
      addRmsNorm(buf, r, null, {
        dim: 4,
        xRowStride: 8,
        residualRowStride: 8,
        out: r.subarray(2),
        outRowStride: 8,
        rows: 7,
      }),
    ).toThrow(code('ERR_INVALID_ARG_VALUE', /"residual".*overlap "options.out"/));
  });
});

// The native module's own checks (its entry points called directly, past the facade): native backends only.
if (native) {
  describe('layout errors: native re-checks', () => {
    it('the native module re-checks a layout that slips past the facade', async () => {
      const { kernels } = await import('../dist/backend.js');
      const code = (c: string) => expect.objectContaining({ code: c });
      const xs = new Float32Array(16);
      const out = new Float32Array(16).fill(5);
      // rows 3 of stride 8 spanning 8: 24 elements, past the end of x and out.
      expect(() => kernels.rmsNorm(xs, null, null, out, null, 8, 1e-5, 0, 1, 0, 0, 3, 1, 8, 8, 8)).toThrow(
        code('ERR_OUT_OF_RANGE'),
      );
      // heads beyond the stride.
      expect(() => kernels.rmsNorm(xs, null, null, out, null, 4, 1e-5, 0, 1, 0, 0, 2, 2, 4, 6, 8)).toThrow(
        code('ERR_OUT_OF_RANGE'),
      );
      // headStride below dim.
      expect(() => kernels.rmsNorm(xs, null, null, out, null, 4, 1e-5, 0, 1, 0, 0, 2, 2, 3, 8, 8)).toThrow(
        code('ERR_OUT_OF_RANGE'),
      );
      // out over x's rows, shifted.
      expect(() => kernels.rmsNorm(xs, null, null, xs.subarray(1), null, 4, 1e-5, 0, 1, 0, 0, 1, 1, 4, 4, 4)).toThrow(
        code('ERR_INVALID_ARG_VALUE'),
      );
      expect(out.every((v) => v === 5)).toBe(true);
    });
  });
}
