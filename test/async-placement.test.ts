// Where an async call's work runs: small calls inline (done before the call returns, the same bits as the sync
// form, nothing staged), large ones off the JavaScript thread, on threads of lower scheduling priority.
import { readdirSync, readFileSync } from 'node:fs';
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
  setThreads,
  toBFloat16,
  toFloat16,
} from '../dist/index.js';
import { randomArray } from './reference';
import { nativeRequested } from './setup';

const bits = (a: Float32Array | Float64Array | Uint16Array) =>
  Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

type DType = 'float32' | 'float64' | 'bfloat16' | 'float16';
const dtypes: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

/** n values of dtype from seed (half types encoded from float32). */
function data(dtype: DType, n: number, seed: number, lo = -2, hi = 2): Float32Array | Float64Array | Uint16Array {
  if (dtype === 'float64') return randomArray(Float64Array, n, seed, lo, hi);
  const f = randomArray(Float32Array, n, seed, lo, hi);
  if (dtype === 'bfloat16') return toBFloat16(f);
  if (dtype === 'float16') return toFloat16(f);
  return f;
}

describe.each(dtypes)('small calls, %s', (dtype) => {
  // A decode step: one row. Each op given `out`-style arrays: their contents right after the call returns (before
  // anything settles) and once the promise settles are both the sync form's bits (native: the call ran inline).
  const dim = 64;
  const rows = 1;
  const x = data(dtype, rows * dim, 1);
  const dy = data(dtype, rows * dim, 2);
  const w = data(dtype, dim, 3, 0.5, 1.5);
  const b = data(dtype, dim, 4);
  // dtype is given for the half types only (float32 and float64 data say their type themselves).
  const o = (dtype === 'bfloat16' || dtype === 'float16' ? { dtype } : {}) as { dtype?: 'bfloat16' };
  const like = () => x.slice().fill(0);

  it("every op resolves to the sync form's bits", async () => {
    expect(bits(await rmsNormAsync(x, w, { ...o, bias: b, offset: 0.5 }))).toEqual(
      bits(rmsNorm(x, w, { ...o, bias: b, offset: 0.5 })),
    );
    expect(bits(await layerNormAsync(x, w, b, o))).toEqual(bits(layerNorm(x, w, b, o)));
    const r1 = data(dtype, rows * dim, 5);
    const r2 = r1.slice();
    expect(bits(await addRmsNormAsync(x, r1, w, o))).toEqual(bits(addRmsNorm(x, r2, w, o)));
    expect(bits(r1)).toEqual(bits(r2));
    const ga = await rmsNormBackwardAsync(dy, x, w, o);
    const gs = rmsNormBackward(dy, x, w, o);
    expect(bits(ga.dx)).toEqual(bits(gs.dx));
    expect(bits(ga.dweight!)).toEqual(bits(gs.dweight!));
    const la = await layerNormBackwardAsync(dy, x, w, o);
    const ls = layerNormBackward(dy, x, w, o);
    expect(bits(la.dx)).toEqual(bits(ls.dx));
    expect(bits(la.dweight!)).toEqual(bits(ls.dweight!));
    expect(bits(la.dbias!)).toEqual(bits(ls.dbias!));
  });

  it(
    nativeRequested
      ? 'native: the outputs hold the result when the call returns, and the promise is already resolved'
      : 'fallback: the outputs are written in a later turn',
    async () => {
      const want = rmsNorm(x, w, o);
      const out = like();
      const p = rmsNormAsync(x, w, { ...o, out });
      const written = bits(out);
      let settled = false;
      void p.then(() => (settled = true));
      // A few microtask turns, no macrotask: enough for a promise resolved when returned (the facade chains one
      // then() on the binding's), never for work that waits for another thread or a later event-loop turn.
      for (let i = 0; i < 4; i++) await Promise.resolve();
      expect(settled).toBe(nativeRequested);
      expect(written).toEqual(nativeRequested ? bits(want) : bits(like()));
      expect(await p).toBe(out);
      expect(bits(out)).toEqual(bits(want));

      const dx = like();
      const q = rmsNormBackwardAsync(dy, x, w, { ...o, dx });
      expect(bits(dx)).toEqual(nativeRequested ? bits(rmsNormBackward(dy, x, w, o).dx) : bits(like()));
      expect((await q).dx).toBe(dx);
    },
  );

  it("bad input still rejects (never throws), with the sync form's error", async () => {
    const p = rmsNormAsync(x, w, { ...o, eps: -1 });
    expect(p).toBeInstanceOf(Promise);
    await expect(p).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(layerNormAsync(x, w.subarray(1), null, o)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });

  it('in place: x given as out gets the sync bits', async () => {
    const xi = x.slice();
    expect(await rmsNormAsync(xi, w, { ...o, out: xi })).toBe(xi);
    expect(bits(xi)).toEqual(bits(rmsNorm(x, w, o)));
  });
});

describe('large calls', () => {
  // 2^21 values: always past the inline limit (calls of 2^20 values and more are never inline).
  const dim = 4096;
  const rows = 512;

  it('run off the JavaScript thread: an ordinary output is untouched until the promise settles', async () => {
    const x = randomArray(Float32Array, rows * dim, 7);
    const w = randomArray(Float32Array, dim, 8, 0.5, 1.5);
    const out = new Float32Array(rows * dim).fill(3);
    const p = rmsNormAsync(x, w, { out });
    // Staged (native) or run in a later turn (fallback): nothing is written while JavaScript runs on.
    expect(out.every((v) => v === 3)).toBe(true);
    expect(await p).toBe(out);
    expect(Buffer.from(out.buffer).equals(Buffer.from(rmsNorm(x, w).buffer))).toBe(true);
  });

  // Linux only: the test reads /proc. (Other systems lower the priority their own way: docs/async.md.)
  if (process.platform === 'linux') {
    it(
      nativeRequested
        ? 'native, Linux: run on threads named rmsnorm-async at SCHED_IDLE (or nice 19); sync pool threads and the JavaScript thread at normal priority'
        : 'fallback, Linux: no thread of the package is started',
      async () => {
        const threads = backend().threads;
        setThreads(2);
        try {
          const x = randomArray(Float32Array, rows * dim, 9);
          await rmsNormAsync(x, null, { dim });
          rmsNorm(x, null, { dim });
          // /proc/<pid>/task/<tid>/stat: the fields after the command name; nice is field 19, policy field 41.
          const tasks = readdirSync('/proc/self/task').map((tid) => {
            const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
            const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
            const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            return { tid: Number(tid), comm, nice: Number(fields[19 - 3]), policy: Number(fields[41 - 3]) };
          });
          const SCHED_OTHER = 0;
          const SCHED_IDLE = 5;
          const background = tasks.filter((t) => t.comm === 'rmsnorm-async');
          const pool = tasks.filter((t) => t.comm === 'rmsnorm-pool');
          const main = tasks.find((t) => t.tid === process.pid)!;
          expect([main.policy, main.nice]).toEqual([SCHED_OTHER, 0]);
          if (!nativeRequested) {
            expect(background.length + pool.length).toBe(0);
            return;
          }
          expect(background.length).toBeGreaterThanOrEqual(2);
          for (const t of background) expect(t.policy === SCHED_IDLE || t.nice === 19).toBe(true);
          expect(pool.length).toBeGreaterThanOrEqual(1);
          for (const t of pool) expect([t.policy, t.nice]).toEqual([SCHED_OTHER, 0]);
        } finally {
          setThreads(threads);
        }
      },
    );
  }
});
