// worker_threads: the addon loaded in several workers at once (one addon instance per thread, one thread pool
// per process), each calling every op sync and async; and workers terminated while their calls run, many
// times over: the process must not crash or leak, and results afterwards must be right. Runs on every
// backend (the fallback's workers are plain JavaScript).
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import * as api from '../dist/index.js';
import { backend, layerNorm, rmsNorm } from '../dist/index.js';
import { expectedIsa, nativeRequested } from './setup';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { compute } = require('./fixtures/compute.cjs') as {
  compute: (m: unknown, seed: number, dim: number, rows: number) => Promise<Record<string, Float32Array>>;
};

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const entry = path.resolve(__dirname, '..', 'dist', 'index.js');
const script = path.resolve(__dirname, 'fixtures', 'worker.cjs');
const spawn = () => new Worker(script, { workerData: { entry } });

function message<T>(w: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

type Results = Record<string, Float32Array>;
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('worker_threads', () => {
  it('four workers at once compute what the main thread computes, bit for bit, sync and async', async () => {
    const workers = [1, 2, 3, 4].map(() => spawn());
    try {
      const replies = workers.map((w) => message<{ small: Results; large: Results; backend: { isa: string } }>(w));
      workers.forEach((w, i) => w.postMessage({ task: 'compute', seed: 1000 * (i + 1) }));
      const got = await Promise.all(replies);
      // The main thread computes the same with the same code.
      {
        for (let i = 0; i < workers.length; i++) {
          expect(got[i]!.backend.isa).toBe(expectedIsa());
          const seed = 1000 * (i + 1);
          const want = { small: await compute(api, seed, 97, 8), large: await compute(api, seed + 100, 1024, 1024) };
          for (const size of ['small', 'large'] as const) {
            for (const [name, a] of Object.entries(want[size])) {
              expect(bytes(got[i]![size][name]!).equals(bytes(a)), `worker ${i} ${size} ${name}`).toBe(true);
            }
            // Sync and async agree within each worker.
            const r = got[i]![size];
            for (const [s, a] of [
              ['rms', 'rmsAsync'],
              ['ln', 'lnAsync'],
              ['add', 'addAsync'],
              ['res1', 'res2'],
              ['gdx', 'gadx'],
              ['gdw', 'gadw'],
              ['hdx', 'hadx'],
              ['hdb', 'hadb'],
            ]) {
              expect(bytes(r[s!]!).equals(bytes(r[a!]!)), `worker ${i} ${size} ${s} vs ${a}`).toBe(true);
            }
          }
        }
      }
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });

  // Native: the hazard is there (kernels on libuv and pool threads when a worker's environment goes away).
  const rounds = Number(process.env.RMSNORM_WORKER_ROUNDS ?? (nativeRequested ? 12 : 3));
  it(`workers terminated while async and sync calls run, ${2 * rounds} times: no crash, no leak, right results after`, async () => {
    const x = Float32Array.from({ length: 64 * 1024 }, (_, i) => Math.sin(i));
    const w = new Float32Array(1024).fill(1.5);
    const before = [rmsNorm(x, w), layerNorm(x, w, null)].map(bytes);
    gc();
    const rss0 = process.memoryUsage().rss;
    let terminated = 0;
    for (let round = 0; round < rounds; round++) {
      // Two workers at a time; most run large async calls (on libuv threads and the pool), some sync loops.
      const pair = [spawn(), spawn()];
      await Promise.all(
        pair.map(async (worker, j) => {
          const started = message<string>(worker);
          worker.postMessage({ task: 'busy', large: round % 4 !== 3, sync: (round + j) % 5 === 4 });
          expect(await started).toBe('started');
          // Terminate at once or a moment later, so termination meets calls queued, running and finishing.
          if (round % 3) await new Promise((r) => setTimeout(r, round % 7));
          const code = await worker.terminate();
          expect(code).toBe(1);
          terminated++;
        }),
      );
    }
    expect(terminated).toBe(2 * rounds);
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    const growth = (process.memoryUsage().rss - rss0) / (1 << 20);
    // Each worker holds ~4 MB of arrays in flight and ~10 MB of its own: leaked workers would add up fast.
    expect(growth, `RSS grew by ${growth.toFixed(1)} MB`).toBeLessThan(64);
    expect([rmsNorm(x, w), layerNorm(x, w, null)].map(bytes).every((b, i) => b.equals(before[i]!))).toBe(true);
    // A fresh worker still works.
    const fresh = spawn();
    try {
      const reply = message<{ backend: { isa: string } }>(fresh);
      fresh.postMessage({ task: 'compute', seed: 5 });
      expect((await reply).backend.isa).toBe(backend().isa);
    } finally {
      await fresh.terminate();
    }
  });
});
