// What bench/run.mjs and bench/check.mjs measure: the test data of one shape (every array any op needs,
// preallocated) and the call of each op, native and fallback; and the event loop's delay under async calls.
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { EPS, fill } from './lib.mjs';

const require = createRequire(import.meta.url);

export const DTYPES = {
  float32: { Array: Float32Array, bytes: 4, code: 0 },
  float64: { Array: Float64Array, bytes: 8, code: 0 },
  bfloat16: { Array: Uint16Array, bytes: 2, code: 1 },
};
export const OP_NAMES = ['rmsNorm', 'layerNorm', 'addRmsNorm', 'rmsNormBackward', 'layerNormBackward'];

export function loadApi() {
  return { api: require('../dist/index.js'), fallback: require('../dist/fallback.js').fallback };
}

/**
 * Every array a call of any op on `rows x dim` needs, preallocated; statistics from a forward pass. The arrays
 * are allocate()d, the memory async calls use without a copy (docs/async.md): sync and async are measured on the
 * same arrays, and the async figures are those of the zero-copy path.
 */
export function makeData(api, dtypeName, rows, dim) {
  const { code } = DTYPES[dtypeName];
  const n = rows * dim;
  const seed = rows + dim;
  const half = dtypeName === 'bfloat16';
  const alloc = (len) => api.allocate(dtypeName, len);
  const make = (len, s, mean = 0, spread = 1) =>
    half ? api.toBFloat16(fill(new Float32Array(len), s, mean, spread), alloc(len)) : fill(alloc(len), s, mean, spread);
  const stat = (len) => (half ? api.allocate('float32', len) : alloc(len));
  const d = {
    rows,
    dim,
    n,
    code,
    half,
    x: make(n, seed),
    w: make(dim, 7, 1, 0.2),
    b: make(dim, 8, 0, 0.1),
    out: alloc(n),
    rstd: stat(rows),
    lnMean: stat(rows),
    lnRstd: stat(rows),
  };
  const dt = half ? { dtype: dtypeName } : {};
  d.opts = {
    rmsNorm: { dim, eps: EPS, out: d.out, ...dt },
    layerNorm: { dim, eps: EPS, out: d.out, ...dt },
  };
  // Forward statistics for the backward passes (the training case: they are saved by the forward call).
  api.rmsNorm(d.x, d.w, { dim, eps: EPS, out: d.out, rstd: d.rstd, ...dt });
  if (!half) {
    d.res = make(n, seed + 1);
    d.dy = make(n, seed + 2);
    d.dx = alloc(n);
    d.dw = alloc(dim);
    d.db = alloc(dim);
    api.layerNorm(d.x, d.w, d.b, { dim, eps: EPS, out: d.out, mean: d.lnMean, rstd: d.lnRstd });
    d.opts.addRmsNorm = { dim, eps: EPS, out: d.out };
    d.opts.rmsNormBackward = { dim, eps: EPS, rstd: d.rstd, dx: d.dx, dweight: d.dw, dbias: d.db };
    d.opts.layerNormBackward = { dim, eps: EPS, mean: d.lnMean, rstd: d.lnRstd, dx: d.dx, dweight: d.dw, dbias: d.db };
  }
  return d;
}

/** The layout arguments of a dense call of the fallback's kernels: rows, heads, headStride, two row strides. */
export const dense = (d) => [d.rows, 1, d.dim, d.dim, d.dim];

/**
 * The call of each op: native sync, native async (the ...Async twin) and the fallback kernel with the same
 * arguments, plus the bytes the op must move at least (inputs read once, outputs written once).
 */
export function ops(api, fallback, d) {
  const { dim, n } = d;
  return {
    rmsNorm: {
      sync: () => api.rmsNorm(d.x, d.w, d.opts.rmsNorm),
      async: () => api.rmsNormAsync(d.x, d.w, d.opts.rmsNorm),
      fallback: () => fallback.rmsNorm(d.x, d.w, null, d.out, null, dim, EPS, 0, 1, d.code, 0, ...dense(d)),
      elements: 2 * n + dim, // x, out, weight
    },
    layerNorm: {
      sync: () => api.layerNorm(d.x, d.w, d.b, d.opts.layerNorm),
      async: () => api.layerNormAsync(d.x, d.w, d.b, d.opts.layerNorm),
      fallback: () => fallback.layerNorm(d.x, d.w, d.b, d.out, null, null, dim, EPS, d.code, 0, ...dense(d)),
      elements: 2 * n + 2 * dim,
    },
    addRmsNorm: {
      sync: () => api.addRmsNorm(d.x, d.res, d.w, d.opts.addRmsNorm),
      async: () => api.addRmsNormAsync(d.x, d.res, d.w, d.opts.addRmsNorm),
      fallback: () =>
        fallback.addRmsNorm(d.x, d.res, d.w, null, d.out, null, dim, EPS, 0, 1, d.code, 0, ...dense(d), dim, 1),
      elements: 4 * n + dim, // x and residual read, residual and out written
    },
    rmsNormBackward: {
      sync: () => api.rmsNormBackward(d.dy, d.x, d.w, d.opts.rmsNormBackward),
      async: () => api.rmsNormBackwardAsync(d.dy, d.x, d.w, d.opts.rmsNormBackward),
      fallback: () =>
        fallback.rmsNormBackward(
          d.dy,
          d.x,
          d.w,
          d.rstd,
          d.dx,
          d.dw,
          d.db,
          dim,
          EPS,
          0,
          1,
          false,
          d.code,
          0,
          ...dense(d),
          dim,
        ),
      elements: 3 * n + 3 * dim, // dy, x read, dx written; weight read, dweight and dbias written
    },
    layerNormBackward: {
      sync: () => api.layerNormBackward(d.dy, d.x, d.w, d.opts.layerNormBackward),
      async: () => api.layerNormBackwardAsync(d.dy, d.x, d.w, d.opts.layerNormBackward),
      fallback: () =>
        fallback.layerNormBackward(
          d.dy,
          d.x,
          d.w,
          d.lnMean,
          d.lnRstd,
          d.dx,
          d.dw,
          d.db,
          dim,
          EPS,
          false,
          d.code,
          0,
          ...dense(d),
          dim,
        ),
      elements: 3 * n + 3 * dim,
    },
  };
}

export const gc = () => globalThis.gc?.();

/**
 * Event-loop delay (perf_hooks.monitorEventLoopDelay at its finest resolution, 1 ms) while `calls` async calls
 * run back to back, one in flight; then the same histogram over an idle loop of the same duration, as the
 * machine's own baseline. Values in ms; each recorded value is the interval between two 1 ms timer ticks.
 */
export async function eventLoopDelay(api, fn, threads, calls) {
  api.setThreads(threads);
  await fn();
  await fn();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const start = performance.now();
  for (let i = 0; i < calls; i++) await fn();
  const elapsed = performance.now() - start;
  h.disable();
  const idle = monitorEventLoopDelay({ resolution: 1 });
  idle.enable();
  await sleep(elapsed);
  idle.disable();
  const ms = (hist) => ({
    max: hist.max / 1e6,
    p99: hist.percentile(99) / 1e6,
    mean: hist.mean / 1e6,
    count: hist.count,
  });
  return { ...ms(h), idle: ms(idle), perCall: elapsed / calls, calls, threads };
}
