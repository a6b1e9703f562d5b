// Thread count: validated, reported, and never changing a single bit of any result.
import { afterAll, describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import {
  addRmsNorm,
  backend,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  setThreads,
  toBFloat16,
  toFloat16,
} from '../dist/index.js';
import { randomArray, thrownBy } from './reference';
import { nativeRequested } from './setup';

afterAll(() => setThreads(availableParallelism()));

/** n random values in the element type of a large-call test: float32, float64, or bfloat16/float16 bits. */
function largeData(
  T: Float32ArrayConstructor | Float64ArrayConstructor | Uint16ArrayConstructor,
  dtype: 'bfloat16' | 'float16' | undefined,
  n: number,
  seed: number,
): Float32Array {
  const a = randomArray(Float32Array, n, seed);
  if (dtype === 'bfloat16') return toBFloat16(a) as unknown as Float32Array;
  if (dtype === 'float16') return toFloat16(a) as unknown as Float32Array;
  return (T === Float64Array ? Float64Array.from(a) : a) as Float32Array;
}

describe('setThreads', () => {
  it('defaults to the available parallelism and reports the setting', () => {
    expect(backend().threads).toBe(nativeRequested ? availableParallelism() : 1);
    setThreads(3);
    expect(backend().threads).toBe(nativeRequested ? 3 : 1);
    setThreads(availableParallelism());
  });

  it.each([
    [0, RangeError, 'ERR_OUT_OF_RANGE'],
    [-1, RangeError, 'ERR_OUT_OF_RANGE'],
    [1.5, RangeError, 'ERR_OUT_OF_RANGE'],
    [1025, RangeError, 'ERR_OUT_OF_RANGE'],
    [NaN, RangeError, 'ERR_OUT_OF_RANGE'],
    ['2', TypeError, 'ERR_INVALID_ARG_TYPE'],
    [undefined, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ] as const)('refuses %s', (n, type, code) => {
    const error = thrownBy(() => setThreads(n as never));
    expect(error).toBeInstanceOf(type);
    expect((error as { code: string }).code).toBe(code);
    expect((error as Error).message).toMatch(/^The "n" argument must /);
  });
});

// Shapes above the inline threshold (1M elements), with row counts that do not divide evenly.
describe.each([
  [Float32Array, 1031, 1024],
  [Float64Array, 1025, 1031],
] as const)('%s results are bitwise identical for every thread count', (T, rows, dim) => {
  const x = randomArray(T, rows * dim, 1);
  const dy = randomArray(T, rows * dim, 2);
  const res = randomArray(T, rows * dim, 3);
  const w = randomArray(T, dim, 4, 0.5, 1.5);
  const b = randomArray(T, dim, 5);

  function everything() {
    const resCopy = res.slice();
    const rstd = new T(rows);
    return [
      rmsNorm(x, w, { bias: b, rstd, partial: 0.7 }),
      rstd,
      layerNorm(x, w, b),
      addRmsNorm(x, resCopy, w, { offset: 1 }),
      resCopy,
      ...Object.values(rmsNormBackward(dy, x, w, { partial: 0.7 })),
      ...Object.values(layerNormBackward(dy, x, w)),
    ].map((a) => Buffer.from(a!.buffer, a!.byteOffset, a!.byteLength));
  }

  it('for 1, 2, 3, 4 and 7 threads', () => {
    setThreads(1);
    const reference = everything();
    for (const n of [2, 3, 4, 7]) {
      setThreads(n);
      const got = everything();
      got.forEach((bytes, i) => expect(bytes.equals(reference[i]!), `output ${i}, ${n} threads`).toBe(true));
    }
  });
});

describe('results do not depend on where the arrays sit in memory', () => {
  it.each([Float32Array, Float64Array] as const)(
    '%s: the same row at 16 different alignments gives the same bits',
    (T) => {
      const dim = 1000;
      const x = randomArray(T, dim, 9);
      const w = randomArray(T, dim, 10, 0.5, 1.5);
      const dy = randomArray(T, dim, 11);
      const at = (offset: number, src: ArrayLike<number>) => {
        const a = new T(dim + 16).subarray(offset, offset + dim);
        a.set(src);
        return a;
      };
      const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      const run = (o: number) =>
        [
          rmsNorm(at(o, x), at(o, w), { out: at(15 - o, new T(dim)) }),
          layerNorm(at(o, x), at(o, w), null, { out: at(o, new T(dim)) }),
          addRmsNorm(at(o, x), at(15 - o, dy), at(o, w)),
          ...Object.values(rmsNormBackward(at(o, dy), at(15 - o, x), at(o, w), { dx: at(o, new T(dim)) })),
        ].map((a) => bytes(a!));
      const first = run(0);
      for (let o = 1; o < 16; o++)
        run(o).forEach((b, i) => expect(b.equals(first[i]!), `offset ${o}, output ${i}`).toBe(true));
    },
  );

  // Rows a multiple of the vector width long: the backward passes start their column blocks where dx is
  // aligned, a split that moves with the address.
  it.each([Float32Array, Float64Array] as const)(
    '%s: backward rows of 1024 at 16 alignments of dx give the same bits',
    (T) => {
      const dim = 1024;
      const rows = 6;
      const x = randomArray(T, rows * dim, 12);
      const w = randomArray(T, dim, 13, 0.5, 1.5);
      const dy = randomArray(T, rows * dim, 14);
      const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      const run = (o: number) => {
        const dx = new T(rows * dim + 16).subarray(o, o + rows * dim);
        return [
          ...Object.values(rmsNormBackward(dy, x, w, { dx })).map((a) => bytes(a!)),
          ...Object.values(layerNormBackward(dy, x, w, { dx: dx.fill(0) })).map((a) => bytes(a!)),
        ];
      };
      const first = run(0);
      for (let o = 1; o < 16; o++)
        run(o).forEach((b, i) => expect(b.equals(first[i]!), `offset ${o}, output ${i}`).toBe(true));
    },
  );
});

describe('large outputs (written with non-temporal stores) match small calls bit for bit', () => {
  it('bfloat16: 16 MiB in one call vs the same rows 64 at a time', () => {
    const dim = 1024;
    const rows = 8192;
    const x = toBFloat16(randomArray(Float32Array, rows * dim, 23));
    const whole = rmsNorm(x, null, { dim, dtype: 'bfloat16' });
    for (let r = 0; r < rows; r += 512) {
      const part = rmsNorm(x.subarray(r * dim, (r + 64) * dim), null, { dim, dtype: 'bfloat16' });
      expect(Buffer.from(part.buffer).equals(Buffer.from(whole.buffer, r * dim * 2, part.byteLength))).toBe(true);
    }
  });

  // Outputs of 8 MiB and more may be streamed, written a cache line at a time (the first such call of each kind
  // is); `out` here sits 3 elements into its buffer, so each row has an unaligned head before the first whole line.
  it.each([
    [Float32Array, undefined],
    [Float64Array, undefined],
    [Uint16Array, 'bfloat16'],
    [Uint16Array, 'float16'],
  ] as const)('%s %s: 8 MiB and more in one call vs the same rows 64 at a time', (T, dtype) => {
    const dim = 1024;
    const rows = (9 << 20) / (dim * T.BYTES_PER_ELEMENT);
    const x = largeData(T, dtype, rows * dim, 21);
    const w = (
      T === Float64Array ? randomArray(Float64Array, dim, 22, 0.5, 1.5) : randomArray(Float32Array, dim, 22, 0.5, 1.5)
    ) as Float32Array;
    const opts = (dtype ? { dtype } : {}) as Record<string, unknown>;
    const out = () => new T(rows * dim + 3).subarray(3) as Float32Array;
    const whole = {
      rms: Buffer.from(rmsNorm(x, w, { ...opts, out: out() } as never).slice().buffer),
      ln: Buffer.from(layerNorm(x, w, null, { ...opts, out: out() } as never).slice().buffer),
    };
    const bpe = T.BYTES_PER_ELEMENT;
    for (let r = 0; r < rows; r += 64) {
      const part = x.subarray(r * dim, (r + 64) * dim);
      const slice = (b: Buffer) => b.subarray(r * dim * bpe, (r + 64) * dim * bpe);
      expect(Buffer.from(rmsNorm(part, w, opts as never).buffer).equals(slice(whole.rms)), `rmsNorm rows ${r}..`).toBe(
        true,
      );
      expect(
        Buffer.from(layerNorm(part, w, null, opts as never).buffer).equals(slice(whole.ln)),
        `layerNorm rows ${r}..`,
      ).toBe(true);
    }
  });

  // dx of 8 MiB and more may be streamed (the first such call is); dx here sits 3 elements into its buffer, so
  // each row has an unaligned head.
  it.each([
    [Float32Array, undefined],
    [Float64Array, undefined],
    [Uint16Array, 'bfloat16'],
    [Uint16Array, 'float16'],
  ] as const)('%s %s: backward dx of 8 MiB and more in one call vs the same rows 64 at a time', (T, dtype) => {
    const dim = 1024;
    const rows = (9 << 20) / (dim * T.BYTES_PER_ELEMENT);
    const x = largeData(T, dtype, rows * dim, 24);
    const dy = largeData(T, dtype, rows * dim, 25);
    const w = (
      T === Float64Array ? randomArray(Float64Array, dim, 26, 0.5, 1.5) : randomArray(Float32Array, dim, 26, 0.5, 1.5)
    ) as Float32Array;
    const opts = (dtype ? { dtype } : {}) as Record<string, unknown>;
    const rstd = new (T === Float64Array ? Float64Array : Float32Array)(rows) as Float32Array;
    const mean = new (T === Float64Array ? Float64Array : Float32Array)(rows) as Float32Array;
    rmsNorm(x, w, { ...opts, rstd } as never);
    const lrstd = rstd.slice();
    layerNorm(x, w, null, { ...opts, mean, rstd: lrstd } as never);
    const dx = new T(rows * dim + 3).subarray(3);
    const whole = {
      rms: Buffer.from(rmsNormBackward(dy, x, w, { ...opts, rstd, dx } as never).dx.slice().buffer),
      ln: Buffer.from(layerNormBackward(dy, x, w, { ...opts, mean, rstd: lrstd, dx } as never).dx.slice().buffer),
    };
    const bpe = T.BYTES_PER_ELEMENT;
    for (let r = 0; r < rows; r += 64) {
      const rowsOf = <A extends ArrayBufferView & { subarray(a: number, b: number): A }>(a: A, d: number) =>
        a.subarray(r * d, (r + 64) * d);
      const part = rmsNormBackward(rowsOf(dy, dim), rowsOf(x, dim), w, { ...opts, rstd: rowsOf(rstd, 1) } as never).dx;
      expect(
        Buffer.from(part.buffer).equals(whole.rms.subarray(r * dim * bpe, (r + 64) * dim * bpe)),
        `rmsNormBackward rows ${r}..`,
      ).toBe(true);
      const lpart = layerNormBackward(rowsOf(dy, dim), rowsOf(x, dim), w, {
        ...opts,
        mean: rowsOf(mean, 1),
        rstd: rowsOf(lrstd, 1),
      } as never).dx;
      expect(
        Buffer.from(lpart.buffer).equals(whole.ln.subarray(r * dim * bpe, (r + 64) * dim * bpe)),
        `layerNormBackward rows ${r}..`,
      ).toBe(true);
    }
  });

  // Whether a large output is streamed is measured by the first such calls of each kind in the process, which
  // alternate the two ways (three each) before keeping the faster: every one of them, and the calls after the
  // choice, must give the same bits.
  it.each([
    [Float32Array, undefined],
    [Uint16Array, 'bfloat16'],
  ] as const)('%s %s: the calls that measure streaming and those after them agree bit for bit', (T, dtype) => {
    const dim = 1024;
    const rows = (9 << 20) / (dim * T.BYTES_PER_ELEMENT);
    const x = largeData(T, dtype, rows * dim, 31);
    const dy = largeData(T, dtype, rows * dim, 32);
    const res = largeData(T, dtype, rows * dim, 33);
    const w = randomArray(Float32Array, dim, 34, 0.5, 1.5);
    const opts = (dtype ? { dtype } : {}) as Record<string, unknown>;
    const fresh = () => new T(rows * dim + 3).subarray(3) as Float32Array;
    const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const calls: Record<string, () => Buffer> = {
      rmsNorm: () => bytes(rmsNorm(x, w, { ...opts, out: fresh() } as never)),
      layerNorm: () => bytes(layerNorm(x, w, null, { ...opts, out: fresh() } as never)),
      addRmsNorm: () => {
        const r = fresh();
        r.set(res);
        const out = addRmsNorm(x, r, w, { ...opts, out: fresh() } as never);
        return Buffer.concat([bytes(out), bytes(r)]);
      },
      rmsNormBackward: () => {
        const g = rmsNormBackward(dy, x, w, { ...opts, dx: fresh() } as never);
        return Buffer.concat([bytes(g.dx), bytes(g.dweight!)]);
      },
      layerNormBackward: () => {
        const g = layerNormBackward(dy, x, w, { ...opts, dx: fresh() } as never);
        return Buffer.concat([bytes(g.dx), bytes(g.dweight!), bytes(g.dbias)]);
      },
    };
    for (const [name, call] of Object.entries(calls)) {
      const first = call();
      for (let i = 1; i < 8; i++) expect(call().equals(first), `${name} call ${i + 1}`).toBe(true);
    }
  });
});
