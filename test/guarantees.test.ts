// What the README's Guarantees section promises about arrays during an async call, on every backend:
// - the call keeps its arrays alive: arrays nothing else references survive garbage collection mid-call and
//   the results are right;
// - arrays changed while the call runs: the call settles, the process goes on, results are unspecified;
// - a buffer detached (transferred) while the call runs, its memory kept alive by the receiver: the promise
//   rejects with ERR_INVALID_STATE naming the array, nothing crashes (the sanitizer run checks no freed memory
//   is touched), and later calls are right (test/async-memory.test.ts has the cases where the memory is freed).
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import {
  layerNorm,
  layerNormAsync,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
} from '../dist/index.js';
import { randomArray } from './reference';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const dim = 1024;
const rows = 1024; // 2^20 elements: long enough to still run while the test acts, and on the thread pool
const same = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  expect(
    Buffer.from(new Float32Array(a as Float32Array).buffer).equals(
      Buffer.from(new Float32Array(b as Float32Array).buffer),
    ),
  ).toBe(true);

describe('arrays during an async call', () => {
  it('are kept alive by the call: arrays referenced by nothing else survive garbage collection mid-call', async () => {
    const w = randomArray(Float32Array, dim, 2, 0.5, 1.5);
    const want = rmsNorm(randomArray(Float32Array, rows * dim, 1), w);
    const wantGrad = rmsNormBackward(
      randomArray(Float32Array, rows * dim, 3),
      randomArray(Float32Array, rows * dim, 1),
      w,
    ).dx;
    // The inputs exist only as arguments of the calls; the outputs are allocated by the calls.
    const pending = [
      rmsNormAsync(randomArray(Float32Array, rows * dim, 1), w),
      rmsNormBackwardAsync(randomArray(Float32Array, rows * dim, 3), randomArray(Float32Array, rows * dim, 1), w).then(
        (g) => g.dx,
      ),
    ];
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    const [y, dx] = await Promise.all(pending);
    same(y!, want);
    same(dx!, wantGrad);
  });

  it('changed while the call runs: the call settles and the process goes on (the results are unspecified)', async () => {
    const x = randomArray(Float32Array, rows * dim, 4);
    const out = new Float32Array(rows * dim);
    const call = rmsNormAsync(x, null, { dim, out });
    x.fill(2); // races with the kernels: each output is computed from old values, new ones, or both
    out.fill(3);
    await expect(call).resolves.toBe(out);
    expect(out.every(Number.isFinite)).toBe(true);
    // Once it has settled, the same arrays give the documented results again.
    same(await rmsNormAsync(x, null, { dim, out }), rmsNorm(x, null, { dim }));
  });

  it('detached (transferred) while the call runs, the receiver keeping the memory: the promise rejects, later calls are right', async () => {
    const outcomes: string[] = [];
    for (const which of ['x', 'out', 'both'] as const) {
      const x = randomArray(Float32Array, rows * dim, 5);
      const out = new Float32Array(rows * dim);
      const call = layerNormAsync(x, null, null, { dim, out });
      // structuredClone with a transfer list detaches the buffers here and hands their memory to the clone,
      // which this test keeps until the call settles (as a thread receiving them by postMessage would).
      const transfer = which === 'x' ? [x.buffer] : which === 'out' ? [out.buffer] : [x.buffer, out.buffer];
      const kept = structuredClone(transfer, { transfer });
      expect(which === 'out' ? out.length : x.length).toBe(0);
      const settled = await call.then(
        () => 'resolved',
        (e: Error) => `rejected: ${e.message}`,
      );
      outcomes.push(`${which}: ${settled}`);
      expect(kept.length).toBe(transfer.length);
    }
    // The promise rejects with ERR_INVALID_STATE, naming the first array of the call that was detached.
    const rejected = (name: string) =>
      `rejected: The "${name}" argument was detached or resized while layerNormAsync ran; the result was not delivered`;
    expect(outcomes).toEqual([`x: ${rejected('x')}`, `out: ${rejected('options.out')}`, `both: ${rejected('x')}`]);
    const x = randomArray(Float32Array, 4 * dim, 6);
    same(await layerNormAsync(x, null, null, { dim }), layerNorm(x, null, null, { dim }));
  });
});
