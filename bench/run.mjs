// Benchmarks every op of rmsnorm per native instruction set against the pure-TypeScript fallback and a plain
// copy of the same bytes, then prints the project's target figures with PASS/FAIL. `node bench/run.mjs --help`
// prints the usage (USAGE below).
//
// The kernel ISA is chosen when the addon loads, so this script (the parent) runs itself as a child once per
// (ISA, dtype) with RMSNORM_ISA set. Each child measures, for every shape and op, the native call (public API,
// `out` and every output buffer preallocated) sync and async on 1 and N threads, the fallback kernel called
// directly, and `out.set(x)`, taking turns, so their ratios share the same machine state. One dtype per child
// keeps the fallback's JIT-compiled loops monomorphic: its best case. A child on the default (best) ISA then
// measures the Figures with larger budgets, and one more compares with onnxruntime-node when it can be
// resolved (it is not a dependency; see bench/onnx.mjs). The full run and --check then run the check
// (bench/check.mjs): the one-thread sweep against the copy, the targets of the check and PyTorch beside us.
// bench/README.md describes the method and the output.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { EPS, fill, formatTime, gbps, measureTogether, table, wasmAdder } from './lib.mjs';
import { checkChild, printCheck } from './check.mjs';
import { findOnnxRuntime, onnxPeer } from './onnx.mjs';
import { DTYPES, OP_NAMES, eventLoopDelay, gc, loadApi, makeData, ops } from './ops.mjs';

const require = createRequire(import.meta.url);
const self = fileURLToPath(import.meta.url);

/** The fallback is measured up to this many elements (2048 x 4096); above, it would dominate the run time. */
const FALLBACK_MAX = 2048 * 4096;

/** [rows, dim] pairs; dims are IBM Granite-3B-Code (2560) and Granite-8B-Code (4096) hidden sizes. */
function shapes(quick) {
  if (quick) return [1, 64, 2048].map((r) => [r, 4096]);
  const list = [];
  for (const r of [1, 64, 512, 2048]) list.push([r, 2560]);
  // 8192 x 4096 only for 4096: float64 x, out, residual, dy and dx are 256 MiB each.
  for (const r of [1, 64, 512, 2048, 8192]) list.push([r, 4096]);
  return list;
}

/** Per-task budgets of the sweep (ms and minimum batches per task, split over the rounds). */
const SWEEP = {
  full: { rounds: 2, time: 90, iterations: 4, fallbackTime: 60, fallbackIterations: 2 },
  quick: { rounds: 1, time: 50, iterations: 3, fallbackTime: 40, fallbackIterations: 2 },
};
const FIGURES = { full: { rounds: 4, time: 400, iterations: 8 }, quick: { rounds: 2, time: 150, iterations: 4 } };

// ---------------------------------------------------------------- child: the sweep of one (ISA, dtype)

async function sweepChild(dtypeName, quick, threadsAll) {
  const { api, fallback } = loadApi();
  const info = api.backend();
  const requested = process.env.RMSNORM_ISA;
  // An ISA this CPU lacks falls back to a lower one: report it and stop, the parent drops the duplicate.
  if (info.isa !== requested) return { requested, isa: info.isa, results: [] };
  const budget = quick ? SWEEP.quick : SWEEP.full;
  const threadSettings = threadsAll > 1 ? [1, threadsAll] : [1];
  const opNames = dtypeName === 'bfloat16' ? ['rmsNorm'] : OP_NAMES;
  const { bytes: B } = DTYPES[dtypeName];
  const results = [];
  for (const [rows, dim] of shapes(quick)) {
    const d = makeData(api, dtypeName, rows, dim);
    const calls = ops(api, fallback, d);
    for (const op of opNames) {
      const c = calls[op];
      const tasks = {};
      for (const t of threadSettings) {
        const setup = () => api.setThreads(t);
        tasks[`sync${t}`] = { fn: c.sync, setup };
        tasks[`async${t}`] = { fn: c.async, async: true, setup };
      }
      if (d.n <= FALLBACK_MAX) {
        tasks.fallback = { fn: c.fallback, time: budget.fallbackTime, iterations: budget.fallbackIterations };
      }
      tasks.copy = { fn: () => d.out.set(d.x) };
      const t = await measureTogether(tasks, budget);
      const time = (k) => t[k]?.median ?? null;
      results.push({
        op,
        dtype: dtypeName,
        rows,
        dim,
        bytes: c.elements * B,
        copyBytes: 2 * d.n * B,
        sync: Object.fromEntries(threadSettings.map((k) => [k, time(`sync${k}`)])),
        async: Object.fromEntries(threadSettings.map((k) => [k, time(`async${k}`)])),
        fallback: time('fallback'),
        copy: time('copy'),
        min: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.min])),
        samples: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.samples])),
      });
    }
    gc();
  }
  return { requested, isa: info.isa, threads: threadSettings, version: info.version, results };
}

// ---------------------------------------------------------------- child: the Figures, on the default ISA

/** One figure: a value (the ratio of medians; valueMin: of minima) against a target; `cmp` is '>=', '<=' or '<'. */
function figure(id, title, measured, cmp, target, detail, extra = {}) {
  const [value, valueMin] = Array.isArray(measured) ? measured : [measured, null];
  const pass = cmp === '>=' ? value >= target : cmp === '<' ? value < target : value <= target;
  return { id, title, value, valueMin, cmp, target, pass, detail, ...extra };
}
/** Ratio a / b of two measured tasks: [of the medians, of the minima]. */
const q = (t, a, b) => [t[a].median / t[b].median, t[a].min / t[b].min];
const x2 = (v) => `${v.toFixed(2)}×`;

async function figuresChild(quick, threadsAll) {
  const { api, fallback } = loadApi();
  const info = api.backend();
  const N = threadsAll;
  const nThreads = `${N} thread${N === 1 ? '' : 's'}`;
  const budget = quick ? FIGURES.quick : FIGURES.full;
  const one = () => api.setThreads(1);
  const all = () => api.setThreads(N);
  const figures = [];
  const dim = 4096;
  const f32 = (rows) => makeData(api, 'float32', rows, dim);

  // (1) 1 x 4096: native (public API, out given) against the fallback kernel.
  {
    const d = f32(1);
    const c = ops(api, fallback, d).rmsNorm;
    const t = await measureTogether({ native: { fn: c.sync, setup: all }, fallback: { fn: c.fallback } }, budget);
    figures.push(
      figure(
        '1',
        '1×4096 float32 rmsNorm, sync, out given: fallback time / native time',
        q(t, 'fallback', 'native'),
        '>=',
        30,
        `native ${formatTime(t.native.median)}, fallback ${formatTime(t.fallback.median)}`,
      ),
    );
  }

  // 2048 x 4096: the memory-bound figures.
  {
    const d = f32(2048);
    const c = ops(api, fallback, d);
    const n = d.n;
    // Separate add, then rmsNorm: a plain JavaScript loop, and WebAssembly SIMD (f32x4.add) as the fastest
    // add a user has without native code of their own. Each path has its own residual, as addRmsNorm has.
    const resJs = fill(new Float32Array(n), 11);
    const wa = wasmAdder(2 * n * 4);
    const resW = new Float32Array(wa.memory.buffer, 0, n);
    const xW = new Float32Array(wa.memory.buffer, n * 4, n);
    resW.set(resJs);
    xW.set(d.x);
    const plain = { dim, eps: EPS, out: d.out };
    const jsAdd = () => {
      const x = d.x;
      for (let i = 0; i < n; i++) resJs[i] += x[i];
      api.rmsNorm(resJs, d.w, plain);
    };
    const wasmAdd = () => {
      wa.add(0, n * 4, n * 4);
      api.rmsNorm(resW, d.w, plain);
    };
    const xb = api.toBFloat16(d.x);
    const wb = api.toBFloat16(d.w);
    const outb = new Uint16Array(n);
    const ob = { dim, eps: EPS, out: outb, dtype: 'bfloat16' };
    const bf16 = () => api.rmsNorm(xb, wb, ob);
    const tasks = {
      sync1: { fn: c.rmsNorm.sync, setup: one },
      syncN: { fn: c.rmsNorm.sync, setup: all },
      fallback: { fn: c.rmsNorm.fallback, iterations: 4 },
      copy: { fn: () => d.out.set(d.x) },
      bwdN: { fn: c.rmsNormBackward.sync, setup: all },
      addN: { fn: c.addRmsNorm.sync, setup: all },
      add1: { fn: c.addRmsNorm.sync, setup: one },
      jsAddN: { fn: jsAdd, setup: all, iterations: 4 },
      jsAdd1: { fn: jsAdd, setup: one, iterations: 4 },
      wasmAddN: { fn: wasmAdd, setup: all },
      wasmAdd1: { fn: wasmAdd, setup: one },
      bf16N: { fn: bf16, setup: all },
      bf161: { fn: bf16, setup: one },
    };
    const t = await measureTogether(tasks, budget);
    const m = (k) => t[k].median;
    const T = (k) => formatTime(m(k));
    figures.push(
      figure(
        '2',
        '2048×4096 float32 rmsNorm, 1 thread: fallback time / native time',
        q(t, 'fallback', 'sync1'),
        '>=',
        5,
        `native ${T('sync1')}, fallback ${T('fallback')}`,
      ),
    );
    figures.push(
      figure(
        '3a',
        `2048×4096 float32 rmsNorm, ${nThreads}: native time / copy time`,
        q(t, 'syncN', 'copy'),
        '<=',
        1.1,
        `native ${T('syncN')} (${gbps(4 * (2 * n + dim), m('syncN')).toFixed(1)} GB/s), out.set(x) ${T('copy')} (${gbps(8 * n, m('copy')).toFixed(1)} GB/s)`,
      ),
    );
    figures.push(
      figure(
        '4',
        `2048×4096 float32 rmsNormBackward, ${nThreads}, rstd passed: native time / copy time`,
        q(t, 'bwdN', 'copy'),
        '<=',
        1.8,
        `backward ${T('bwdN')}, out.set(x) ${T('copy')}`,
      ),
    );
    figures.push(
      figure(
        '7a',
        `2048×4096 float32, ${nThreads}: (JS loop res[i] += x[i], then rmsNorm) / addRmsNorm`,
        q(t, 'jsAddN', 'addN'),
        '>=',
        1.2,
        `separate ${T('jsAddN')}, addRmsNorm ${T('addN')}`,
      ),
    );
    figures.push(
      figure(
        '7b',
        `2048×4096 float32, ${nThreads}: (WebAssembly SIMD add, then rmsNorm) / addRmsNorm`,
        q(t, 'wasmAddN', 'addN'),
        '>=',
        1.2,
        `separate ${T('wasmAddN')}, addRmsNorm ${T('addN')}`,
      ),
    );
    figures.push(
      figure(
        '7c',
        '2048×4096 float32, 1 thread: (JS loop add, then rmsNorm) / addRmsNorm',
        q(t, 'jsAdd1', 'add1'),
        '>=',
        1.2,
        `separate ${T('jsAdd1')}, addRmsNorm ${T('add1')}`,
      ),
    );
    figures.push(
      figure(
        '7d',
        '2048×4096 float32, 1 thread: (WebAssembly SIMD add, then rmsNorm) / addRmsNorm',
        q(t, 'wasmAdd1', 'add1'),
        '>=',
        1.2,
        `separate ${T('wasmAdd1')}, addRmsNorm ${T('add1')}`,
      ),
    );
    figures.push(
      figure(
        '8a',
        `2048×4096 rmsNorm, ${nThreads}: bfloat16 time / float32 time`,
        q(t, 'bf16N', 'syncN'),
        '<=',
        0.6,
        `bfloat16 ${T('bf16N')}, float32 ${T('syncN')}`,
      ),
    );
    figures.push(
      figure(
        '8b',
        '2048×4096 rmsNorm, 1 thread: bfloat16 time / float32 time',
        q(t, 'bf161', 'sync1'),
        '<=',
        0.6,
        `bfloat16 ${T('bf161')}, float32 ${T('sync1')}`,
      ),
    );
  }
  gc();

  // 512 and 2048 x 4096: async against sync. "One in flight" awaits each call before the next: its time per call
  // includes waking a libuv thread and then the event loop (~30 us on this VM) and running on a core whose
  // caches do not hold the arrays. "Two in flight" keeps two calls (each with its own output) queued, as a
  // server with concurrent requests does: the sustained throughput.
  for (const rows of [512, 2048]) {
    const d = f32(rows);
    const c = ops(api, fallback, d).rmsNorm;
    const o2 = { ...d.opts.rmsNorm, out: api.allocate('float32', d.n) };
    const two = () => Promise.all([c.async(), api.rmsNormAsync(d.x, d.w, o2)]);
    const t = await measureTogether(
      {
        syncN: { fn: c.sync, setup: all },
        asyncN: { fn: c.async, async: true, setup: all },
        async2N: { fn: two, async: true, setup: all },
        sync1: { fn: c.sync, setup: one },
        async1: { fn: c.async, async: true, setup: one },
        async21: { fn: two, async: true, setup: one },
      },
      budget,
    );
    const m = (k) => t[k].median;
    const T = (k) => formatTime(m(k));
    // Two calls per sample: the time per call is half the sample.
    const perCall = (a, b) => q(t, a, b).map((v) => 2 * v);
    const [one1, oneN, two1, twoN] = rows === 512 ? ['5c', '5a', '5g', '5e'] : ['5d', '5b', '5h', '5f'];
    figures.push(
      figure(
        oneN,
        `${rows}×4096 float32 rmsNorm, ${nThreads}: async throughput / sync throughput, one in flight`,
        q(t, 'syncN', 'asyncN'),
        '>=',
        0.9,
        `sync ${T('syncN')}, async ${T('asyncN')} per call`,
      ),
    );
    figures.push(
      figure(
        one1,
        `${rows}×4096 float32 rmsNorm, 1 thread: async throughput / sync throughput, one in flight`,
        q(t, 'sync1', 'async1'),
        '>=',
        0.9,
        `sync ${T('sync1')}, async ${T('async1')} per call`,
      ),
    );
    figures.push(
      figure(
        twoN,
        `${rows}×4096 float32 rmsNorm, ${nThreads}: async throughput / sync throughput, two in flight`,
        perCall('syncN', 'async2N'),
        '>=',
        0.9,
        `sync ${T('syncN')}, async ${formatTime(m('async2N') / 2)} per call`,
      ),
    );
    figures.push(
      figure(
        two1,
        `${rows}×4096 float32 rmsNorm, 1 thread: async throughput / sync throughput, two in flight`,
        perCall('sync1', 'async21'),
        '>=',
        0.9,
        `sync ${T('sync1')}, async ${formatTime(m('async21') / 2)} per call`,
      ),
    );
    gc();
  }

  // 64 x 4096 (in cache), one thread: RMSNorm against LayerNorm, forward and backward.
  {
    const d = f32(64);
    const wo = { dim, eps: EPS, out: d.out, rstd: d.rstd };
    const lo = { dim, eps: EPS, out: d.out, mean: d.lnMean, rstd: d.lnRstd };
    const plain = { dim, eps: EPS, out: d.out };
    const rb = { dim, eps: EPS, dx: d.dx, dweight: d.dw, dbias: d.db };
    const lb = { dim, eps: EPS, dx: d.dx, dweight: d.dw, dbias: d.db };
    const rbs = d.opts.rmsNormBackward;
    const lbs = d.opts.layerNormBackward;
    const t = await measureTogether(
      {
        rms: { fn: () => api.rmsNorm(d.x, d.w, plain), setup: one },
        ln: { fn: () => api.layerNorm(d.x, d.w, d.b, plain), setup: one },
        rmsStats: { fn: () => api.rmsNorm(d.x, d.w, wo), setup: one },
        lnStats: { fn: () => api.layerNorm(d.x, d.w, d.b, lo), setup: one },
        rmsBwdSaved: { fn: () => api.rmsNormBackward(d.dy, d.x, d.w, rbs), setup: one },
        lnBwdSaved: { fn: () => api.layerNormBackward(d.dy, d.x, d.w, lbs), setup: one },
        rmsBwd: { fn: () => api.rmsNormBackward(d.dy, d.x, d.w, rb), setup: one },
        lnBwd: { fn: () => api.layerNormBackward(d.dy, d.x, d.w, lb), setup: one },
      },
      budget,
    );
    const m = (k) => t[k].median;
    const T = (k) => formatTime(m(k));
    figures.push(
      figure(
        '6a',
        '64×4096 float32, 1 thread, forward, default call: layerNorm time / rmsNorm time',
        q(t, 'ln', 'rms'),
        '>=',
        1.3,
        `rmsNorm ${T('rms')}, layerNorm ${T('ln')} (with bias)`,
      ),
    );
    figures.push(
      figure(
        '6b',
        '64×4096 float32, 1 thread, forward, statistics written (rstd / mean+rstd): layerNorm / rmsNorm',
        q(t, 'lnStats', 'rmsStats'),
        '>=',
        1.3,
        `rmsNorm ${T('rmsStats')}, layerNorm ${T('lnStats')}`,
      ),
    );
    figures.push(
      figure(
        '6c',
        '64×4096 float32, 1 thread, backward, saved statistics passed: layerNormBackward / rmsNormBackward',
        q(t, 'lnBwdSaved', 'rmsBwdSaved'),
        '>=',
        1.2,
        `rmsNormBackward ${T('rmsBwdSaved')}, layerNormBackward ${T('lnBwdSaved')}`,
      ),
    );
    figures.push(
      figure(
        '6d',
        '64×4096 float32, 1 thread, backward, statistics recomputed (default): layerNormBackward / rmsNormBackward',
        q(t, 'lnBwd', 'rmsBwd'),
        '>=',
        1.2,
        `rmsNormBackward ${T('rmsBwd')}, layerNormBackward ${T('lnBwd')}`,
      ),
    );
  }
  gc();

  // 8192 x 4096: against the copy, then the event loop under back-to-back async calls.
  {
    const d = f32(8192);
    const c = ops(api, fallback, d).rmsNorm;
    const t = await measureTogether({ syncN: { fn: c.sync, setup: all }, copy: { fn: () => d.out.set(d.x) } }, budget);
    const n = d.n;
    figures.push(
      figure(
        '3b',
        `8192×4096 float32 rmsNorm, ${nThreads}: native time / copy time`,
        q(t, 'syncN', 'copy'),
        '<=',
        1.1,
        `native ${formatTime(t.syncN.median)} (${gbps(4 * (2 * n + dim), t.syncN.median).toFixed(1)} GB/s), out.set(x) ${formatTime(t.copy.median)} (${gbps(8 * n, t.copy.median).toFixed(1)} GB/s)`,
      ),
    );

    for (const [id, threads] of [
      ['9a', N],
      ['9b', 1],
    ]) {
      const e = await eventLoopDelay(api, c.async, threads, 20);
      figures.push(
        figure(
          id,
          `event loop during 20 back-to-back 8192×4096 float32 rmsNormAsync calls, ${threads} thread${threads === 1 ? '' : 's'}: worst delay (ms)`,
          e.max,
          '<',
          2,
          `max ${e.max.toFixed(2)} ms, p99 ${e.p99.toFixed(2)} ms, mean ${e.mean.toFixed(2)} ms over ${e.count} ticks, ${formatTime(e.perCall)} per call; idle loop for as long: max ${e.idle.max.toFixed(2)} ms, p99 ${e.idle.p99.toFixed(2)} ms`,
          { eventLoop: e },
        ),
      );
    }
  }
  gc();

  // Layouts: rows inside a fused QKV buffer of 2048 tokens × 6144 (Granite-8B's q, k and v: 32 + 8 + 8 heads of
  // 128). (10) rmsNorm of the first 4096 values of each row (row stride 6144) into a dense out, against dense
  // rmsNorm of as many values and against copying the rows out first; (11) per-head QK-norm of q (32 heads of
  // 128, in place) in one call, against one dense call per head of each token.
  {
    const tokens = 2048;
    const stride = 6144;
    const qkv = fill(new Float32Array(tokens * stride), 21);
    const d = f32(tokens);
    const c = ops(api, fallback, d).rmsNorm;
    const packed = new Float32Array(tokens * dim);
    const stridedOpts = { dim, eps: EPS, rows: tokens, xRowStride: stride, out: d.out };
    const strided = () => api.rmsNorm(qkv, d.w, stridedOpts);
    const copyThenDense = () => {
      for (let r = 0; r < tokens; r++) packed.set(qkv.subarray(r * stride, r * stride + dim), r * dim);
      api.rmsNorm(packed, d.w, d.opts.rmsNorm);
    };
    const headDim = 128;
    const heads = 32;
    const qw = fill(new Float32Array(headDim), 22, 1, 0.2);
    const qk = { dim: headDim, heads, eps: EPS, xRowStride: stride, out: qkv, outRowStride: stride };
    const qkNorm = () => api.rmsNorm(qkv, qw, qk);
    const perHeadOpts = [];
    for (let t = 0; t < tokens; t++) {
      for (let h = 0; h < heads; h++) {
        const v = qkv.subarray(t * stride + h * headDim, t * stride + (h + 1) * headDim);
        perHeadOpts.push([v, { eps: EPS, out: v }]);
      }
    }
    const perHead = () => {
      for (const [v, o] of perHeadOpts) api.rmsNorm(v, qw, o);
    };
    const t = await measureTogether(
      {
        dense: { fn: c.sync, setup: all },
        strided: { fn: strided, setup: all },
        copyThenDense: { fn: copyThenDense, setup: all },
        qkNorm: { fn: qkNorm, setup: all },
        perHead: { fn: perHead, setup: all, iterations: 2 },
      },
      budget,
    );
    const T = (k) => formatTime(t[k].median);
    figures.push(
      figure(
        '10a',
        `2048×4096 float32 rmsNorm of rows 6144 apart (xRowStride), ${nThreads}: strided time / dense time`,
        q(t, 'strided', 'dense'),
        '<=',
        1.2,
        `strided ${T('strided')}, dense ${T('dense')} (the same 2048×4096 values)`,
      ),
    );
    figures.push(
      figure(
        '10b',
        `2048×4096 float32 rmsNorm of rows 6144 apart, ${nThreads}: copy-then-dense time / strided time`,
        q(t, 'copyThenDense', 'strided'),
        '>=',
        1.5,
        `copy the rows out then rmsNorm ${T('copyThenDense')}, strided ${T('strided')}`,
      ),
    );
    figures.push(
      figure(
        '11',
        `QK-norm, 2048 tokens × 32 heads × 128 in a 6144-wide QKV buffer, in place, ${nThreads}: per-head dense calls / one call (heads)`,
        q(t, 'perHead', 'qkNorm'),
        '>=',
        3,
        `one call ${T('qkNorm')}, 65536 dense calls (one per token and head) ${T('perHead')}`,
      ),
    );
  }
  gc();

  const order = [
    '1',
    '2',
    '3a',
    '3b',
    '4',
    '5a',
    '5b',
    '5c',
    '5d',
    '5e',
    '5f',
    '5g',
    '5h',
    '6a',
    '6b',
    '6c',
    '6d',
    '7a',
    '7b',
    '7c',
    '7d',
    '8a',
    '8b',
    '9a',
    '9b',
    '10a',
    '10b',
    '11',
  ];
  figures.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  return { isa: info.isa, native: info.native, threads: N, version: info.version, budget, figures };
}

// ---------------------------------------------------------------- child: onnxruntime-node, when installed

/**
 * rmsnorm against onnxruntime-node on the default ISA, float32, dim 4096: rmsNorm against onnxruntime's
 * SimplifiedLayerNormalization (or ONNX RMSNormalization), layerNorm against LayerNormalization; one session
 * per thread setting (intraOpNumThreads), inputs and the output tensor wrapped once and reused.
 */
async function peersChild(quick, threadsAll) {
  const { api, fallback } = loadApi();
  const info = api.backend();
  const budget = quick ? SWEEP.quick : SWEEP.full;
  const threadSettings = threadsAll > 1 ? [1, threadsAll] : [1];
  const dim = 4096;
  const results = [];
  for (const rows of [1, 64, 2048]) {
    const d = makeData(api, 'float32', rows, dim);
    const calls = ops(api, fallback, d);
    for (const op of ['rmsNorm', 'layerNorm']) {
      const peer = await onnxPeer(op, 'float32', dim, EPS, threadsAll);
      if (peer.error) return { isa: info.isa, error: peer.error, results };
      const ortOut = new Float32Array(d.n);
      const tasks = {};
      for (const t of threadSettings) {
        const setup = () => api.setThreads(t);
        tasks[`sync${t}`] = { fn: calls[op].sync, setup };
        tasks[`async${t}`] = { fn: calls[op].async, async: true, setup };
        tasks[`ort${t}`] = { fn: peer.bind(t, d.x, d.w, op === 'layerNorm' ? d.b : null, ortOut), async: true };
      }
      const t = await measureTogether(tasks, budget);
      let diff = 0; // agreement with rmsnorm, as a check that both compute the same thing
      for (let i = 0; i < d.n; i++) diff = Math.max(diff, Math.abs(ortOut[i] - d.out[i]));
      results.push({
        rows,
        dim,
        op,
        ortOp: peer.opType,
        ortVersion: peer.version,
        maxAbsDiff: diff,
        times: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.median])),
      });
      await peer.release();
    }
    gc();
  }
  return { isa: info.isa, threads: threadSettings, results };
}

// ---------------------------------------------------------------- parent: spawn, collect, print

function candidateIsas() {
  return process.arch === 'arm64' ? ['neon', 'scalar'] : ['avx512bf16', 'avx512', 'avx2', 'scalar'];
}

function runChild(args, env) {
  const r = spawnSync(process.execPath, ['--expose-gc', self, '--child', ...args], {
    env,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`child ${args.join(' ')} failed (status ${r.status}, signal ${r.signal})`);
  return JSON.parse(r.stdout);
}

const ratio = (a, b) => (a == null || b == null ? '—' : `${(a / b).toFixed(a / b >= 10 ? 1 : 2)}x`);

function printTables(report) {
  const m = report.meta;
  console.log(
    `rmsnorm ${m.version}, node ${m.node}, ${m.cpu} (${m.cores} cores, availableParallelism ${m.availableParallelism}), ${m.date}`,
  );
  console.log(
    `load average at start ${m.loadavg.map((v) => v.toFixed(2)).join(' ')}; ${m.quick ? 'quick run' : 'full run'}`,
  );
  console.log(
    `eps ${EPS.toExponential()}, weight given (and bias for layerNorm), every output preallocated, backward passes given`,
  );
  console.log(
    'the forward statistics; median time per call. sync: the call; async: the ...Async twin awaited, one call in',
  );
  console.log(
    `flight; 1t / ${m.threadsAll}t: setThreads(1) / setThreads(${m.threadsAll}). fallback: the pure-TypeScript kernel, one thread,`,
  );
  console.log(
    `not run above ${FALLBACK_MAX / 4096}x4096. copy: out.set(x) on the same x. GB/s: bytes the op must move / sync ${m.threadsAll}t time.\n`,
  );
  for (const { isa, threads, results } of report.isas) {
    const N = threads[threads.length - 1];
    for (const dtype of Object.keys(DTYPES)) {
      const rs = results.filter((r) => r.dtype === dtype);
      if (!rs.length) continue;
      console.log(`### ${isa}, ${dtype}\n`);
      const header = [
        'shape',
        'op',
        'sync 1t',
        `sync ${N}t`,
        'async 1t',
        `async ${N}t`,
        'GB/s',
        'fallback',
        'fb/1t',
        `fb/${N}t`,
        'copy',
        '1t/copy',
        `${N}t/copy`,
      ];
      const rows = rs.map((r) => [
        `${r.rows}x${r.dim}`,
        r.op,
        formatTime(r.sync[1]),
        formatTime(r.sync[N]),
        formatTime(r.async[1]),
        formatTime(r.async[N]),
        gbps(r.bytes, r.sync[N]).toFixed(1),
        formatTime(r.fallback ?? NaN),
        ratio(r.fallback, r.sync[1]),
        ratio(r.fallback, r.sync[N]),
        formatTime(r.copy),
        ratio(r.sync[1], r.copy),
        ratio(r.sync[N], r.copy),
      ]);
      console.log(`${table(header, rows)}\n`);
    }
  }
  printPeers(report.peers.onnxruntime);
}

function printPeers(o) {
  if (!o.installed) return console.log(`Peers: ${o.note}\n`);
  if (o.error && !o.results.length)
    return console.log(`Peers: onnxruntime-node (${o.path}) could not run: ${o.error}\n`);
  console.log(`### Peer: onnxruntime-node ${o.results[0]?.ortVersion ?? ''} (${o.path}), kernel ${o.isa}, float32\n`);
  console.log(
    'onnxruntime: `await session.run(feeds, fetches)` with the output tensor preallocated; intraOpNumThreads 1 / N.',
  );
  console.log('ort/async: onnxruntime time over rmsnorm async time on the same threads (both are awaited promises).\n');
  const rows = o.results.flatMap((r) =>
    o.threads.map((t) => [
      `${r.rows}x${r.dim}`,
      `${r.op} / ${r.ortOp}`,
      String(t),
      formatTime(r.times[`sync${t}`]),
      formatTime(r.times[`async${t}`]),
      formatTime(r.times[`ort${t}`]),
      ratio(r.times[`ort${t}`], r.times[`async${t}`]),
      ratio(r.times[`ort${t}`], r.times[`sync${t}`]),
      r.maxAbsDiff.toExponential(1),
    ]),
  );
  console.log(
    table(
      [
        'shape',
        'op',
        'threads',
        'rmsnorm sync',
        'rmsnorm async',
        'onnxruntime',
        'ort/async',
        'ort/sync',
        'max abs diff',
      ],
      rows,
      2,
    ),
  );
  if (o.error) console.log(`\n(stopped early: ${o.error})`);
  console.log();
}

/** Other work on the machine: a 1-minute load average above what this benchmark itself puts on it. */
const busy = (m) => Math.max(m.loadavg[0], m.loadavgEnd[0]) > m.availableParallelism + 0.5;

function printFigures(report) {
  const f = report.figures;
  const passed = f.figures.filter((x) => x.pass).length;
  console.log(`## Figures\n`);
  console.log(
    `kernel: ${f.isa}${f.native ? '' : ' (fallback!)'} (the default, best ISA of this CPU); "N threads" = setThreads(${f.threads});`,
  );
  console.log(
    `measured in one child process, the tasks of a figure taking turns over ${f.budget.rounds} rounds. "measured" is the`,
  );
  console.log(
    'ratio of median times and decides PASS/FAIL; "of minima" is the same ratio of the fastest samples, less',
  );
  console.log('sensitive to other load on the machine (it is not the figure).\n');
  const rows = f.figures.map((x) => [
    x.id,
    x.title,
    x.id.startsWith('9') ? `${x.value.toFixed(2)} ms` : x2(x.value),
    x.valueMin === null ? '' : x2(x.valueMin),
    `${x.cmp === '>=' ? '≥' : x.cmp === '<' ? '<' : '≤'} ${x.id.startsWith('9') ? `${x.target} ms` : `${x.target}×`}`,
    x.pass ? 'PASS' : 'FAIL',
    x.detail,
  ]);
  console.log(table(['#', 'figure', 'measured', 'of minima', 'target', 'result', 'details'], rows, 2));
  const m = report.meta;
  console.log(
    `\n${passed} of ${f.figures.length} figures met their targets. Run time ${m.elapsedS.toFixed(0)} s; load average at start`,
  );
  console.log(
    `${m.loadavg.map((v) => v.toFixed(2)).join(' ')}, at the end ${m.loadavgEnd.map((v) => v.toFixed(2)).join(' ')} on ${m.availableParallelism} CPUs${busy(m) ? ': the machine was busy with other work, so these times are unreliable' : ''}.`,
  );
}

function parent({ json, quick, threadsAll }) {
  const started = performance.now();
  const report = {
    meta: {
      version: require('../package.json').version,
      node: process.version,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      availableParallelism: os.availableParallelism(),
      threadsAll,
      loadavg: os.loadavg(),
      date: new Date().toISOString(),
      quick,
    },
    isas: [],
  };
  const childEnv = (isa) => {
    const env = { ...process.env, RMSNORM_BACKEND: 'native' };
    if (isa) env.RMSNORM_ISA = isa;
    else delete env.RMSNORM_ISA;
    return env;
  };
  const log = (s) =>
    process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${s}\n`);
  const dtypes = quick ? ['float32'] : Object.keys(DTYPES);
  for (const isa of candidateIsas()) {
    const results = [];
    let threads;
    for (const dtype of dtypes) {
      log(`measuring ${isa} ${dtype}...`);
      const r = runChild(
        ['sweep', dtype, '--threads', String(threadsAll), ...(quick ? ['--quick'] : [])],
        childEnv(isa),
      );
      if (r.isa !== isa) {
        log(`  skipped: this CPU runs ${r.isa} when ${isa} is asked for`);
        break;
      }
      threads = r.threads;
      results.push(...r.results);
    }
    if (results.length) report.isas.push({ isa, threads, results });
    if (quick && results.length) break; // quick: the best ISA only
  }
  if (report.isas.length === 0) throw new Error('no native ISA could be measured');
  log('measuring the figures on the default ISA...');
  report.figures = runChild(
    ['figures', '--threads', String(threadsAll), ...(quick ? ['--quick'] : [])],
    childEnv(null),
  );
  report.figures.passed = report.figures.figures.filter((f) => f.pass).length;
  report.figures.total = report.figures.figures.length;
  const ortPath = findOnnxRuntime();
  if (ortPath) {
    log(`measuring onnxruntime-node (${ortPath})...`);
    report.peers = {
      onnxruntime: {
        installed: true,
        path: ortPath,
        ...runChild(['peers', '--threads', String(threadsAll), ...(quick ? ['--quick'] : [])], childEnv(null)),
      },
    };
  } else {
    report.peers = { onnxruntime: { installed: false, note: 'onnxruntime-node not installed: skipped' } };
  }
  if (!quick) {
    log('measuring the check (sweep, targets, PyTorch) on the default ISA...');
    report.check = runChild(['check', '--threads', String(threadsAll)], childEnv(null));
  }
  report.meta.elapsedS = (performance.now() - started) / 1000;
  report.meta.loadavgEnd = os.loadavg();
  log('done');
  if (json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    printTables(report);
    printFigures(report);
    if (report.check) {
      console.log();
      printCheck(report.check);
    }
  }
}

/** --check: the check alone, on the default ISA; exit status 1 when a figure FAILs. */
function checkParent({ json, threadsAll }) {
  const env = { ...process.env, RMSNORM_BACKEND: 'native' };
  delete env.RMSNORM_ISA;
  const result = runChild(['check', '--threads', String(threadsAll)], env);
  if (json) console.log(JSON.stringify(result, null, 2));
  const fails = json ? result.figures.filter((f) => f.result === 'FAIL' && f.gate).length : printCheck(result);
  process.exitCode = fails > 0 ? 1 : 0;
}

const USAGE = `Usage: node bench/run.mjs [options]      (npm run bench -- [options])

  (no option)    full run: every ISA this CPU runs, float32/float64 (+ bfloat16 rmsNorm), Granite shapes,
                 sync/async, 1 thread/all threads; then the Figures, onnxruntime-node when installed, and the
                 check below with its sweep and PyTorch tables (about 10 minutes on 2 vCPUs)
  --quick        float32, 1/64/2048 x 4096 on the best ISA, then the Figures (under a minute)
  --check        the check alone, on the default ISA (1-3 minutes): the one-thread sweep of every op against
                 out.set(x), backward vs copy, half vs float32, async vs sync, event loop delay vs idle, small
                 calls, PyTorch beside us (when /usr/bin/python3 imports torch); each figure PASS / MISS / FAIL;
                 exit status 1 when one FAILs (misses its target by more than the wide margin)
  --json         the same results as JSON on stdout (progress goes to stderr)
  --threads N    what "all threads" means (default os.availableParallelism(), here ${os.availableParallelism()})
  -h, --help     this text

bench/README.md describes every figure, its target and the margins.
`;

/** The parent's options; usage on --help (exit 0) or on anything it does not know (stderr, exit 2). */
function parseArgs(args) {
  const opts = { json: false, quick: false, check: false, threadsAll: os.availableParallelism() };
  const usageError = (message) => {
    process.stderr.write(`bench/run.mjs: ${message}\n\n${USAGE}`);
    process.exit(2);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (a === '--json') opts.json = true;
    else if (a === '--quick') opts.quick = true;
    else if (a === '--check') opts.check = true;
    else if (a === '--threads' || a.startsWith('--threads=')) {
      const v = a === '--threads' ? args[++i] : a.slice('--threads='.length);
      const n = Number(v);
      if (v === undefined || !Number.isInteger(n) || n < 1 || n > 1024)
        usageError(`--threads takes an integer from 1 to 1024, not ${v ?? 'nothing'}`);
      opts.threadsAll = n;
    } else usageError(`unknown option ${a}`);
  }
  if (opts.check && opts.quick) usageError('--check and --quick are separate runs: give one');
  return opts;
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  const flag = (name) => argv.includes(name);
  const threadsAll = Number(argv[argv.indexOf('--threads') + 1]);
  const kind = argv[1];
  const log = (s) => process.stderr.write(`  ${s}\n`);
  const result =
    kind === 'figures'
      ? await figuresChild(flag('--quick'), threadsAll)
      : kind === 'peers'
        ? await peersChild(flag('--quick'), threadsAll)
        : kind === 'check'
          ? await checkChild(loadApi().api, loadApi().fallback, threadsAll, log) // one module, loaded once
          : await sweepChild(argv[2], flag('--quick'), threadsAll);
  process.stdout.write(JSON.stringify(result));
} else {
  const opts = parseArgs(argv);
  if (opts.check) checkParent(opts);
  else parent(opts);
}
