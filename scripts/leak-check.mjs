// Leak check: many sync and async calls of every op (and of calls that fail, in the facade and in the native
// module), then the growth of the resident set size after garbage collection. Every async call gets fresh
// arrays, so a reference the addon failed to release would keep ~2 KB each alive (200 MB over 1e5 calls).
//   node scripts/leak-check.mjs                        1e6 sync calls and 4 rounds of 1e5 async calls, fails
//                                                      when the sync calls or every async round grow the RSS
//                                                      by 10 MB or more
//   node scripts/leak-check.mjs --sync 1e7 --async 1e6 --limit 10
// Uses the package entry (dist/), so RMSNORM_BACKEND, RMSNORM_ISA and RMSNORM_BINARY apply.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SYNC = arg('sync', 1e6);
const ASYNC = arg('async', 1e5);
const LIMIT_MB = arg('limit', 10);

const require = createRequire(import.meta.url);
const m = require('../dist/index.js');

const dim = 64;
const rows = 2;
const n = dim * rows;
const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
const dy = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
const w = new Float32Array(dim).fill(1.25);
const b = new Float32Array(dim).fill(0.5);
const out = new Float32Array(n);
const rstd = new Float32Array(rows);
const residual = new Float32Array(n);
const shared = new Float32Array(n + 1);
const overlapping = shared.subarray(1); // overlaps shared.subarray(0, n): refused by the native overlap check

// One call of each kind, in turn: every op, with new and given outputs, and three failing calls.
const syncCalls = [
  () => m.rmsNorm(x, w),
  () => m.rmsNorm(x, w, { out, rstd, bias: b, offset: 1, partial: 0.5 }),
  () => m.layerNorm(x, w, b, { out }),
  () => m.addRmsNorm(x, residual.fill(0), w, { out }),
  () => m.rmsNormBackward(dy, x, w),
  () => m.layerNormBackward(dy, x, w, { dx: out }),
  () => expectThrow(() => m.rmsNorm(shared.subarray(0, n), w, { out: overlapping }), 'ERR_INVALID_ARG_VALUE'),
  () => expectThrow(() => m.rmsNorm(x, w, { eps: -1 }), 'ERR_OUT_OF_RANGE'),
  () => expectThrow(() => m.layerNorm(x, new Float64Array(dim)), 'ERR_INVALID_ARG_TYPE'),
];

function expectThrow(f, code) {
  try {
    f();
  } catch (e) {
    if (e.code === code) return;
    throw e;
  }
  throw new Error(`expected ${code}`);
}

function fresh(len, seed) {
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = Math.sin(seed + i);
  return a;
}

// Async calls on fresh arrays; every eighth fails in the native module (its promise must reject).
function asyncCall(i) {
  const xi = fresh(n * 2, i);
  switch (i % 8) {
    case 0:
      return m.rmsNormAsync(xi, w);
    case 1:
      return m.layerNormAsync(xi, w, b, { mean: new Float32Array(rows * 2), rstd: new Float32Array(rows * 2) });
    case 2:
      return m.addRmsNormAsync(xi, fresh(n * 2, i + 1), w);
    case 3:
      return m.rmsNormBackwardAsync(fresh(n * 2, i + 2), xi, w);
    case 4:
      return m.layerNormBackwardAsync(fresh(n * 2, i + 2), xi, w);
    case 5:
      return m.rmsNormAsync(xi, null, { dim, out: xi });
    case 6:
      return m.rmsNormAsync(xi.subarray(0, n), w, { out: xi.subarray(1, n + 1) }).then(
        () => {
          throw new Error('an overlapping out was accepted');
        },
        (e) => {
          if (e.code !== 'ERR_INVALID_ARG_VALUE') throw e;
        },
      );
    default:
      return m.rmsNormAsync(xi, w, { eps: NaN }).then(
        () => {
          throw new Error('eps NaN was accepted');
        },
        (e) => {
          if (e.code !== 'ERR_OUT_OF_RANGE') throw e;
        },
      );
  }
}

async function settle() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
  }
}
const mb = (bytes) => bytes / (1 << 20);
const rss = () => process.memoryUsage().rss;

function runSync(count) {
  for (let i = 0; i < count; i++) syncCalls[i % syncCalls.length]();
}

async function runAsync(count) {
  const batch = 256;
  for (let i = 0; i < count; i += batch) {
    const p = [];
    for (let j = i; j < Math.min(count, i + batch); j++) p.push(asyncCall(j));
    await Promise.all(p);
  }
}

const info = m.backend();
console.log(`leak-check: backend ${info.isa}${process.env.RMSNORM_BINARY ? ` (${process.env.RMSNORM_BINARY})` : ''}`);
// Warm up until memory is at its steady state (JIT, V8's heap sizing, the allocator's arenas of the threads that
// run async calls: the RSS steps up by ~14 MB at a time over the first few 1e5 async calls, then stays flat):
// rounds of async calls until one grows the RSS by less than 1 MB, ten at most (a leak never settles, and then
// fails below).
runSync(Math.min(SYNC, 2e5));
for (let k = 0, prev = rss(); k < 10; k++) {
  await runAsync(ASYNC);
  await settle();
  const now = rss();
  if (now - prev < 1 << 20) break;
  prev = now;
}
const base = rss();

let t = performance.now();
runSync(SYNC);
await settle();
const afterSync = rss();
const syncSeconds = (performance.now() - t) / 1000;

// The async calls in four rounds, each measured: a leak grows the RSS in every round, while the steps above can
// still come late (one of 28 MB after a flat round was seen on Zen 3), in one round. The figure is the smallest.
t = performance.now();
const rounds = [];
let before = afterSync;
for (let k = 0; k < 4; k++) {
  await runAsync(ASYNC);
  await settle();
  const now = rss();
  rounds.push(mb(now - before));
  before = now;
}
const asyncSeconds = (performance.now() - t) / 1000;

const growthSync = mb(afterSync - base);
const growthAsync = Math.min(...rounds);
const ok = growthSync < LIMIT_MB && growthAsync < LIMIT_MB;
const signed = (v) => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
console.log(
  `leak-check: ${SYNC} sync calls in ${syncSeconds.toFixed(1)} s: RSS ${signed(growthSync)} MB; ` +
    `4 x ${ASYNC} async calls in ${asyncSeconds.toFixed(1)} s: RSS ${rounds.map(signed).join(', ')} MB, smallest ${signed(growthAsync)} ` +
    `(limit ${LIMIT_MB} MB each; RSS after warm-up ${mb(base).toFixed(1)} MB) - ${ok ? 'ok' : 'FAILED'}`,
);
process.exit(ok ? 0 : 1);
