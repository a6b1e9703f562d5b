// Async calls and the memory they are given (docs/async.md): an array's memory taken away while a call runs
// (transferred, collected, resized, its worker terminated) must never be read or written by the call after its
// owner could free it, and the promise says what happened. The cases that could crash run in child processes
// (test/fixtures/async-memory.cjs, node --expose-gc), on the backend of this project; under
// scripts/test-sanitized.sh they inherit the sanitized binary and the preloaded ASan runtime.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  allocate,
  backend,
  layerNorm,
  layerNormAsync,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
  addRmsNorm,
  addRmsNormAsync,
} from '../dist/index.js';
import { randomArray } from './reference';
import { expectedIsa, nativeRequested } from './setup';

const fixture = path.resolve(__dirname, 'fixtures', 'async-memory.cjs');

interface Settled {
  ok: boolean;
  code?: string;
  message?: string;
}

function child<T>(name: string): T & { backend: string } {
  const r = spawnSync(process.execPath, ['--expose-gc', fixture, name], {
    encoding: 'utf8',
    timeout: 120_000,
    env: process.env,
  });
  expect(r.signal, `${name}: killed by ${r.signal}\n${r.stderr}`).toBeNull();
  expect(r.status, `${name}: exit status ${r.status}\n${r.stderr}`).toBe(0);
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as T & { backend: string };
  expect(result.backend).toBe(expectedIsa());
  return result;
}

const invalidState = (name: string, op = 'rmsNorm') => ({
  ok: false,
  code: 'ERR_INVALID_STATE',
  message: `The "${name}" argument was detached or resized while ${op}Async ran; the result was not delivered`,
});

describe('memory taken away from an async call (child processes)', () => {
  it('a buffer transferred away (structuredClone) and collected, or kept by its new owner: rejected, no byte written', () => {
    const r = child<{ dropped: Settled; reusedIntact: boolean; detached: boolean; kept: Settled; keptIntact: boolean }>(
      'transfer',
    );
    expect(r.detached).toBe(true);
    expect(r.dropped).toEqual(invalidState('x'));
    expect(r.reusedIntact).toBe(true);
    expect(r.kept).toEqual(invalidState('x'));
    expect(r.keptIntact).toBe(true);
  });

  it('a resizable ArrayBuffer shrunk, or grown under a length-tracking view: rejected; grown under a fixed view: delivered', () => {
    const r = child<{
      shrunk: Settled;
      shrunkIntact: boolean;
      grownTracking: Settled;
      trackingIntact: boolean;
      grownFixed: Settled;
      fixedRight: boolean;
    }>('resize');
    expect(r.shrunk).toEqual(invalidState('x'));
    expect(r.shrunkIntact).toBe(true);
    expect(r.grownTracking).toEqual(invalidState('x'));
    expect(r.trackingIntact).toBe(true);
    expect(r.grownFixed).toEqual({ ok: true });
    expect(r.fixedRight).toBe(true);
  });

  it("a buffer in a worker's postMessage transfer list: rejected, the worker's data untouched", () => {
    const r = child<{ result: Settled; detached: boolean; workerBad: number }>('postMessage');
    expect(r.detached).toBe(true);
    expect(r.result).toEqual(invalidState('x'));
    expect(r.workerBad).toBe(0);
  });

  it('ArrayBuffer.prototype.transfer: rejected where Node.js has it; Node 20 does not have it', () => {
    const r = child<{ has: boolean; node: string; result?: Settled; movedIntact?: boolean }>('transferMethod');
    expect(r.has).toBe(typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function');
    if (r.has) {
      expect(r.result).toEqual(invalidState('x'));
      expect(r.movedIntact).toBe(true);
    } else {
      expect(Number(r.node.split('.')[0])).toBe(20);
    }
  });

  it('allocate()d memory: used directly; a transfer is a copy (Node does not detach external buffers), the result right', () => {
    const r = child<{ detached: boolean; result: Settled; right: boolean }>('allocated');
    if (r.detached) {
      // A runtime that detaches it: the memory stayed alive, and the result is not delivered.
      expect(r.result.code).toBe('ERR_INVALID_STATE');
    } else {
      expect(r.result).toEqual({ ok: true });
      expect(r.right).toBe(true);
    }
  });

  it('a worker terminated while its async calls write into a SharedArrayBuffer the main thread keeps: no crash; native regions all or nothing', () => {
    const r = child<{ started: number; torn: number; after: boolean }>('terminate');
    expect(r.started).toBe(6);
    // Native calls run to the end once started; the fallback's JavaScript can be stopped mid-region.
    if (nativeRequested) expect(r.torn).toBe(0);
    expect(r.after).toBe(true);
  });
});

describe('what each kind of memory gets (in process)', () => {
  const dim = 96;
  const rows = 7;
  const x = randomArray(Float32Array, rows * dim, 11);
  const w = randomArray(Float32Array, dim, 12, 0.5, 1.5);
  // Calls of rows x dim values are small: they run inline, done before the call returns. The detach cases need a
  // call still in flight: 2^20 values and more always run off the JavaScript thread.
  const bigRows = Math.ceil(2 ** 20 / dim);
  const bigX = randomArray(Float32Array, bigRows * dim, 14);
  const bits = (a: Float32Array | Float64Array | Uint16Array) =>
    Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

  // Resizable and growable buffers (ES2024): typed here, as the project's TypeScript lib predates them.
  type Growable<B> = new (bytes: number, options: { maxByteLength: number }) => B;
  const ResizableArrayBuffer = ArrayBuffer as unknown as Growable<ArrayBuffer>;
  const GrowableSharedArrayBuffer = SharedArrayBuffer as unknown as Growable<SharedArrayBuffer>;
  const kinds: [string, (r?: number) => Float32Array][] = [
    ['ordinary ArrayBuffer', (r = rows) => new Float32Array(r * dim)],
    ['subarray of a Node Buffer', (r = rows) => new Float32Array(Buffer.alloc(r * dim * 4 + 16).buffer, 16, r * dim)],
    [
      'resizable ArrayBuffer',
      (r = rows) => new Float32Array(new ResizableArrayBuffer(r * dim * 4, { maxByteLength: r * dim * 8 })),
    ],
    ['SharedArrayBuffer', (r = rows) => new Float32Array(new SharedArrayBuffer(r * dim * 4))],
    [
      'growable SharedArrayBuffer',
      (r = rows) => new Float32Array(new GrowableSharedArrayBuffer(r * dim * 4, { maxByteLength: r * dim * 8 })),
    ],
    ['allocate()', (r = rows) => allocate('float32', r * dim)],
  ];

  it.each(kinds)('%s: every op, in place and not, the same bits as the sync form', async (_, make) => {
    const xi = make();
    xi.set(x);
    const out = make();
    expect(bits(await rmsNormAsync(xi, w, { out }))).toEqual(bits(rmsNorm(x, w)));
    expect(bits(await layerNormAsync(xi, w, null, { out }))).toEqual(bits(layerNorm(x, w, null)));
    const res = make();
    res.set(randomArray(Float32Array, rows * dim, 13));
    const resSync = res.slice();
    expect(bits(await addRmsNormAsync(xi, res, w, { out }))).toEqual(bits(addRmsNorm(x, resSync, w)));
    expect(bits(res)).toEqual(bits(resSync));
    const dweight = make().subarray(0, dim).fill(0.25);
    const dwSync = new Float32Array(dim).fill(0.25);
    const g = await rmsNormBackwardAsync(xi, xi, w, { dx: out, dweight, accumulate: true });
    const gs = rmsNormBackward(x, x, w, { dweight: dwSync, accumulate: true });
    expect(bits(g.dx)).toEqual(bits(gs.dx));
    expect(bits(dweight)).toEqual(bits(dwSync));
    expect(bits(await rmsNormAsync(xi, w, { out: xi }))).toEqual(bits(rmsNorm(x, w)));
  });

  it.each(kinds)(
    '%s: strided rows and heads of one fused buffer, two calls at once: each writes its groups, no gap',
    async (_, make) => {
      // Per-head q-norm and k-norm of a fused [tokens, (2 q + 1 k + 1 v) heads x 8] buffer, both in flight at once,
      // and a strided out of its own: whatever the memory, a call writes exactly its groups, never a gap (v).
      const hd = 8;
      const stride = 4 * hd;
      const tokens = Math.floor((rows * dim) / stride);
      const qkv = make().subarray(0, tokens * stride);
      qkv.set(x.subarray(0, tokens * stride));
      const expected = qkv.slice();
      const wq = w.subarray(0, hd);
      rmsNorm(expected, wq, { heads: 2, xRowStride: stride, out: expected, outRowStride: stride });
      rmsNorm(expected.subarray(2 * hd), wq, {
        xRowStride: stride,
        out: expected.subarray(2 * hd),
        outRowStride: stride,
      });
      await Promise.all([
        rmsNormAsync(qkv, wq, { heads: 2, xRowStride: stride, out: qkv, outRowStride: stride }),
        rmsNormAsync(qkv.subarray(2 * hd), wq, {
          xRowStride: stride,
          out: qkv.subarray(2 * hd),
          outRowStride: stride,
        }),
      ]);
      expect(bits(qkv)).toEqual(bits(expected));

      const out = make()
        .subarray(0, tokens * stride)
        .fill(-7);
      const want = out.slice();
      rmsNorm(x, wq, { heads: 2, xRowStride: stride, rows: tokens, out: want, outRowStride: stride });
      await rmsNormAsync(x, wq, { heads: 2, xRowStride: stride, rows: tokens, out, outRowStride: stride });
      expect(bits(out)).toEqual(bits(want));
      expect(Array.from(out.subarray(2 * hd, stride))).toEqual(new Array(stride - 2 * hd).fill(-7));
    },
  );

  it('a detach after the call rejects with ERR_INVALID_STATE naming the array, and writes nothing', async () => {
    const out = new Float32Array(bigRows * dim).fill(9);
    const rstd = new Float32Array(bigRows);
    const p = rmsNormAsync(bigX.slice(), w, { out, rstd });
    structuredClone(rstd.buffer, { transfer: [rstd.buffer] });
    await expect(p).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: invalidState('options.rstd').message });
    expect(out.every((v) => v === 9)).toBe(true);
    // An input detached: the output is not written either.
    const xi = bigX.slice();
    const q = layerNormAsync(xi, w, null, { out });
    structuredClone(xi.buffer, { transfer: [xi.buffer] });
    await expect(q).rejects.toMatchObject({
      code: 'ERR_INVALID_STATE',
      message: invalidState('x', 'layerNorm').message,
    });
    expect(out.every((v) => v === 9)).toBe(true);
  });

  // Which memory is used directly shows when another array of the call is detached: a staged output is left
  // as it was, one used directly holds the results (the kernels wrote there), and the promise rejects either way.
  // The fallback checks before it runs, so it writes nothing at all.
  it.each(kinds)(
    '%s as options.out, options.rstd detached mid-call: rejected; written only if used directly',
    async (name, make) => {
      const out = make(bigRows).fill(9);
      const rstd = new Float32Array(bigRows);
      const p = rmsNormAsync(bigX, w, { out, rstd });
      structuredClone(rstd.buffer, { transfer: [rstd.buffer] });
      await expect(p).rejects.toMatchObject({
        code: 'ERR_INVALID_STATE',
        message: invalidState('options.rstd').message,
      });
      const direct = nativeRequested && (name === 'allocate()' || name.includes('SharedArrayBuffer'));
      expect(bits(out)).toEqual(direct ? bits(rmsNorm(bigX, w)) : bits(new Float32Array(bigRows * dim).fill(9)));
    },
  );

  it('allocate(): each dtype, zero-filled, with coded errors for bad arguments', () => {
    expect(allocate('float32', 5)).toEqual(new Float32Array(5));
    expect(allocate('float64', 3)).toEqual(new Float64Array(3));
    expect(allocate('bfloat16', 4)).toEqual(new Uint16Array(4));
    expect(allocate('float16', 0)).toEqual(new Uint16Array(0));
    expect(() => allocate('int8' as never, 1)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' }),
    );
    expect(() => allocate(1 as never, 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => allocate('float32', '1' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    for (const n of [-1, 1.5, NaN, 2 ** 53]) {
      expect(() => allocate('float32', n)).toThrow(
        expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }),
      );
    }
    expect(backend().isa).toBe(expectedIsa());
  });
});
