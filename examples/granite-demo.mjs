// RMSNorm on hidden states shaped like IBM Granite code models, native kernels against the pure-TypeScript
// fallback. Run with `npm start` (after `npm run build`). Also a sanity check: it exits with status 1 when
// the two backends disagree.
import os from 'node:os';
import { createRequire } from 'node:module';
import { backend, rmsNorm } from '../dist/index.mjs';

// The fallback kernel itself, called directly so both backends are measured in this one process.
const require = createRequire(import.meta.url);
const { fallback } = require('../dist/fallback.js');

const EPS = 1e-5; // rms_norm_eps of the Granite code models
const MODELS = [
  { name: 'Granite-3B-Code', dim: 2560 },
  { name: 'Granite-8B-Code', dim: 4096 },
];
const ROWS = [1, 2048]; // one decoded token; a 2048-token prompt

/** Hidden-state-like values: roughly normal, with a few large outliers as real activations have. */
function hiddenStates(length, seed) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) x[i] = (uniform() + uniform() + uniform() - 1.5) * (uniform() < 0.001 ? 40 : 1);
  return x;
}

/**
 * Median time per call of fn in ms. Calls are timed in batches long enough (about 0.2 ms) for the timer not
 * to matter; budgetMs bounds the measurement.
 */
function medianTime(fn, budgetMs) {
  // Warm-up (JIT) and batch size: the fastest per-call time over ~50 ms of growing batches.
  let calls = 1;
  let perCall = Infinity;
  const warm = performance.now() + 50;
  do {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    perCall = Math.min(perCall, (performance.now() - t0) / calls);
    if (calls * perCall < 0.2) calls *= 2;
  } while (performance.now() < warm);
  const batch = Math.max(1, Math.ceil(0.2 / perCall));

  const samples = [];
  const end = performance.now() + budgetMs;
  while (samples.length < 5 || (performance.now() < end && samples.length < 1000)) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    samples.push((performance.now() - t0) / batch);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

function maxRelativeDifference(a, b) {
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) max = Math.max(max, Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), Math.abs(b[i])));
  }
  return max;
}

function formatTime(ms) {
  return ms < 1 ? `${(ms * 1e3).toPrecision(3)} µs` : `${ms.toPrecision(3)} ms`;
}

const info = backend();
console.log(`rmsnorm ${info.version}, kernels: ${info.isa}, node ${process.version}, CPU: ${os.cpus()[0]?.model ?? '?'}`);
if (!info.native) console.log(`native addon not loaded (${info.loadError?.message ?? 'RMSNORM_BACKEND=js'})`);
console.log(`float32, eps ${EPS.toExponential()}, weight given, out preallocated; median time per call`);
console.log(`native may use up to ${info.threads} thread(s) on large calls, the fallback uses one\n`);

const table = [];
let ok = true;
for (const { name, dim } of MODELS) {
  const weight = hiddenStates(dim, 99).map((v) => 1 + 0.1 * v);
  for (const rows of ROWS) {
    const x = hiddenStates(rows * dim, rows + dim);
    const out = new Float32Array(x.length);
    const reference = new Float32Array(x.length);
    const options = { dim, eps: EPS, out }; // reused: no allocation in the timed call

    rmsNorm(x, weight, options);
    fallback.rmsNorm(x, weight, null, reference, null, dim, EPS, 0, 1);
    const diff = maxRelativeDifference(out, reference);
    ok &&= diff < 1e-5;

    const budget = rows === 1 ? 500 : 1500;
    const native = medianTime(() => rmsNorm(x, weight, options), budget);
    const js = medianTime(() => fallback.rmsNorm(x, weight, null, out, null, dim, EPS, 0, 1), budget);
    const bytes = (2 * x.length + dim) * Float32Array.BYTES_PER_ELEMENT; // x read, out written, weight read

    table.push({
      model: name,
      shape: `${rows}x${dim}`,
      native: formatTime(native),
      fallback: formatTime(js),
      'native GB/s': (bytes / native / 1e6).toFixed(1),
      speedup: `${(js / native).toFixed(1)}x`,
      kernel: info.isa,
      'max rel diff': diff.toExponential(1),
    });
  }
}
const columns = Object.keys(table[0]);
const widths = columns.map((c) => Math.max(c.length, ...table.map((row) => row[c].length)));
for (const cells of [columns, widths.map((w) => '-'.repeat(w)), ...table.map((row) => columns.map((c) => row[c]))]) {
  console.log(cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
}
console.log();

if (ok) {
  console.log('native and fallback agree (max relative difference < 1e-5)');
} else {
  console.log('MISMATCH: native and fallback differ by 1e-5 or more');
  process.exitCode = 1;
}
