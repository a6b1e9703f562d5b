// RMSNorm on hidden states shaped like IBM Granite code models: native kernels against the pure-TypeScript
// fallback and a plain copy of the same bytes, with a progress bar while it measures, a table, and an SVG
// chart of throughput against rows (written to bench/out/granite.svg). Run with `npm start` (after
// `npm run build`); about half a minute. Also a sanity check: it exits with status 1 when the two backends
// disagree. The full benchmark, every op and ISA with the project's target figures, is `npm run bench`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backend, rmsNorm, setThreads } from '../dist/index.mjs';
import { EPS, formatTime, gbps, lineChartSvg, measureTogether, table } from '../bench/lib.mjs';

// The fallback kernel itself, called directly so both backends are measured in this one process.
const require = createRequire(import.meta.url);
const { fallback } = require('../dist/fallback.js');

const MODELS = [
  { name: 'Granite-3B-Code', dim: 2560, rows: [1, 2048] },
  { name: 'Granite-8B-Code', dim: 4096, rows: [1, 8, 64, 256, 512, 2048, 8192] },
];
const CHART_DIM = 4096;
const FALLBACK_MAX_ROWS = 2048; // the fallback takes ~0.1 s per call at 8192 x 4096: left out there
const threadsAll = os.availableParallelism();
const BUDGET = { rounds: 3, time: 300, iterations: 6 };
const SVG_PATH = fileURLToPath(new URL('../bench/out/granite.svg', import.meta.url));

/**
 * Hidden-state-like values: roughly normal, with a few large outliers as real activations have. Long arrays
 * repeat a block of 2^20 values (the kernels' speed does not depend on the values).
 */
function hiddenStates(length, seed) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const x = new Float32Array(length);
  const block = Math.min(length, 1 << 20);
  for (let i = 0; i < block; i++) x[i] = (uniform() + uniform() + uniform() - 1.5) * (uniform() < 0.001 ? 40 : 1);
  for (let i = block; i < length; i += block) x.copyWithin(i, 0, Math.min(block, length - i));
  return x;
}

function maxRelativeDifference(a, b) {
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) max = Math.max(max, Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), Math.abs(b[i])));
  }
  return max;
}

/** The progress bar (cli-progress, a devDependency), or a stand-in that prints nothing without it. */
async function progressBar(total) {
  try {
    const { default: cliProgress } = await import('cli-progress');
    const bar = new cliProgress.SingleBar(
      { format: 'measuring |{bar}| {percentage}% | {step}', hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { step: '' });
    return bar;
  } catch {
    return { update() {}, increment() {}, stop() {} };
  }
}

const info = backend();
console.log(
  `rmsnorm ${info.version}, kernels: ${info.isa}, node ${process.version}, CPU: ${os.cpus()[0]?.model ?? '?'} (${threadsAll} threads)`,
);
if (!info.native) console.log(`native addon not loaded (${info.loadError?.message ?? 'RMSNORM_BACKEND=js'})`);
console.log(`float32, eps ${EPS.toExponential()}, weight given, out preallocated; median time per call`);
console.log(
  `native: setThreads(${threadsAll}) and setThreads(1); fallback: the pure-TypeScript kernel (one thread); copy: out.set(x)\n`,
);

// Tasks per shape: native on all threads and on one, fallback (up to 2048 rows), copy.
const plan = MODELS.flatMap(({ name, dim, rows }) => rows.map((r) => ({ name, dim, rows: r })));
const tasksOf = (p) => (threadsAll > 1 ? 2 : 1) + (p.rows <= FALLBACK_MAX_ROWS ? 1 : 0) + 1;
const bar = await progressBar(plan.reduce((sum, p) => sum + tasksOf(p) * BUDGET.rounds, 0));

const results = [];
let ok = true;
for (const p of plan) {
  const { dim, rows } = p;
  bar.update({ step: `${p.name} ${rows}x${dim}` });
  const weight = hiddenStates(dim, 99).map((v) => 1 + 0.1 * v);
  const x = hiddenStates(rows * dim, rows + dim);
  const out = new Float32Array(x.length);
  const reference = new Float32Array(x.length);
  const options = { dim, eps: EPS, out }; // reused: no allocation in the timed call

  rmsNorm(x, weight, options);
  fallback.rmsNorm(x, weight, null, reference, null, dim, EPS, 0, 1);
  const diff = maxRelativeDifference(out, reference);
  ok &&= diff < 1e-5;

  const tasks = { native: { fn: () => rmsNorm(x, weight, options), setup: () => setThreads(threadsAll) } };
  if (threadsAll > 1) tasks.native1 = { fn: () => rmsNorm(x, weight, options), setup: () => setThreads(1) };
  if (rows <= FALLBACK_MAX_ROWS) {
    tasks.fallback = { fn: () => fallback.rmsNorm(x, weight, null, out, null, dim, EPS, 0, 1), iterations: 2 };
  }
  tasks.copy = { fn: () => out.set(x) };
  const t = await measureTogether(tasks, { ...BUDGET, onBlock: () => bar.increment() });
  setThreads(threadsAll);
  results.push({
    ...p,
    bytes: (2 * x.length + dim) * 4, // x read, out written, weight read
    copyBytes: 2 * x.length * 4,
    native: t.native.median,
    native1: t.native1?.median ?? t.native.median,
    fallback: t.fallback?.median ?? null,
    copy: t.copy.median,
    diff,
  });
}
bar.stop();

const rowsOut = results.map((r) => [
  r.name,
  `${r.rows}x${r.dim}`,
  formatTime(r.native),
  formatTime(r.native1),
  r.fallback === null ? '—' : formatTime(r.fallback),
  gbps(r.bytes, r.native).toFixed(1),
  r.fallback === null ? '—' : `${(r.fallback / r.native1).toFixed(1)}x`,
  formatTime(r.copy),
  `${(r.native / r.copy).toFixed(2)}x`,
  r.diff.toExponential(1),
]);
console.log(
  table(
    [
      'model',
      'shape',
      `native ${threadsAll}t`,
      'native 1t',
      'fallback',
      'GB/s',
      'fallback/1t',
      'copy',
      'native/copy',
      'max rel diff',
    ],
    rowsOut,
    2,
  ),
);
console.log(
  `\nkernel: ${info.isa}; GB/s: x read + out written + weight read, over the native ${threadsAll}-thread time`,
);

// The chart: dim 4096, GB/s against rows.
const chart = results.filter((r) => r.dim === CHART_DIM);
const biggest = chart[chart.length - 1];
const copyGbps = gbps(biggest.copyBytes, biggest.copy);
const svg = lineChartSvg({
  title: `rmsNorm throughput, float32, dim ${CHART_DIM} (Granite-8B-Code)`,
  subtitle: `${os.cpus()[0]?.model ?? 'CPU'}, ${threadsAll} threads, kernel ${info.isa}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  xLabel: 'rows (tokens), log scale',
  yLabel: 'GB/s (x read + out written + weight read)',
  series: [
    {
      label: `native, setThreads(${threadsAll})`,
      color: '#1f77b4',
      points: chart.map((r) => [r.rows, gbps(r.bytes, r.native)]),
    },
    ...(threadsAll > 1
      ? [
          {
            label: 'native, setThreads(1)',
            color: '#2ca02c',
            dash: '8 3',
            points: chart.map((r) => [r.rows, gbps(r.bytes, r.native1)]),
          },
        ]
      : []),
    {
      label: 'pure-TypeScript fallback',
      color: '#d62728',
      points: chart.filter((r) => r.fallback !== null).map((r) => [r.rows, gbps(r.bytes, r.fallback)]),
    },
  ],
  hlines: [
    {
      label: `copy, out.set(x) at ${biggest.rows}x${CHART_DIM}: ${copyGbps.toFixed(1)} GB/s`,
      color: '#7f7f7f',
      y: copyGbps,
    },
  ],
});
mkdirSync(path.dirname(SVG_PATH), { recursive: true });
writeFileSync(SVG_PATH, svg);
console.log(`chart: ${path.relative(process.cwd(), SVG_PATH) || SVG_PATH}\n`);

if (ok) {
  console.log('native and fallback agree (max relative difference < 1e-5)');
} else {
  console.log('MISMATCH: native and fallback differ by 1e-5 or more');
  process.exitCode = 1;
}
