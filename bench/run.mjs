// Benchmarks rmsNorm per native instruction set against the pure-TypeScript fallback and a plain copy.
//
//   node bench/run.mjs            tables, one per ISA this CPU runs (about 1-2 minutes on 2 cores)
//   node bench/run.mjs --json     the same results as JSON on stdout
//   node bench/run.mjs --quick    float32, rows 1 and 2048 only (CI smoke)
//   --threads N                   threads a native call may use (default 1, like the fallback and the copy)
//
// The kernel ISA is chosen when the addon loads, so this script (the parent) runs itself once per
// (ISA, dtype) as a child with RMSNORM_ISA set; each child measures native, fallback and copy for every shape
// in one process, so their ratios share the same machine state. One dtype per child keeps the fallback's
// JIT-compiled loops monomorphic: its best case, and what an application using one dtype sees.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';

const require = createRequire(import.meta.url);
const self = fileURLToPath(import.meta.url);

const EPS = 1e-5;
const DTYPES = { float32: Float32Array, float64: Float64Array };

/** [rows, dim] pairs; dims are IBM Granite-3B-Code (2560) and Granite-8B-Code (4096) hidden sizes. */
function shapes(quick) {
  const rows = quick ? [1, 2048] : [1, 64, 2048];
  const list = [];
  for (const dim of [2560, 4096]) for (const r of rows) list.push([r, dim]);
  // 8192 x 4096 float64 is 256 MiB per array (x and out): the largest that stays comfortable in memory.
  if (!quick) list.push([8192, 4096]);
  return list;
}

// ---------------------------------------------------------------- child: measure one (ISA, dtype)

/** Deterministic pseudo-normal data (mulberry32 + sum of uniforms) so every child sees the same inputs. */
function fill(array, seed, mean = 0, spread = 1) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < array.length; i++) array[i] = mean + spread * (uniform() + uniform() + uniform() - 1.5);
  return array;
}

/** Calls of fn per timed batch: enough for a batch to last about 0.1 ms, far above the timer's grain. */
function batchSize(fn) {
  // Per-call time: the fastest of ~20 ms of repeated, growing batches, which also warms fn up (lazy
  // initialization, JIT). A minimum, so that one pause (GC, scheduler) cannot make fn look slow.
  let calls = 1;
  let perCall = Infinity;
  const deadline = performance.now() + 20;
  do {
    const start = performance.now();
    for (let i = 0; i < calls; i++) fn();
    perCall = Math.min(perCall, (performance.now() - start) / calls);
    if (calls * perCall < 0.1) calls *= 2;
  } while (performance.now() < deadline);
  return Math.max(1, Math.ceil(0.1 / perCall));
}

/**
 * Latency samples (ms per call) of fn from one tinybench run. A call far below the timer's grain (1 row: well
 * under a microsecond) is timed in batches of `inner` calls, each sample being one batch's mean.
 */
function sample(fn, inner, { time, iterations, warmup }) {
  const bench = new Bench({
    time,
    iterations,
    warmup,
    warmupTime: 100,
    warmupIterations: 2,
    retainSamples: true,
    throws: true,
  });
  bench.add(
    'task',
    () => {
      const start = bench.now();
      for (let i = 0; i < inner; i++) fn();
      const elapsed = bench.now() - start;
      return { overriddenDuration: elapsed / inner, overriddenIterationCost: elapsed };
    },
    { async: false },
  );
  const [task] = bench.runSync();
  return task.result.latency.samples;
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Median time per call of each task. The tasks take turns over a few rounds, so a slow spell of this shared
 * machine lands on all of them rather than on one, and the ratios between them stay meaningful.
 */
function measureTogether(tasks, rounds) {
  const prepared = Object.entries(tasks).map(([name, t]) => ({ name, ...t, inner: batchSize(t.fn), samples: [] }));
  for (let round = 0; round < rounds; round++) {
    for (const t of prepared) {
      const budget = { time: t.time / rounds, iterations: Math.ceil(t.iterations / rounds), warmup: round === 0 };
      for (const v of sample(t.fn, t.inner, budget)) t.samples.push(v);
    }
  }
  return Object.fromEntries(
    prepared.map((t) => [t.name, { median: median(t.samples), samples: t.samples.length, batch: t.inner }]),
  );
}

function child(dtypeName, quick, threads) {
  const api = require('../dist/index.js');
  const { rmsNorm, backend } = api;
  const { fallback } = require('../dist/fallback.js');
  api.setThreads?.(threads); // builds without a thread pool always run on one thread
  const info = backend();
  const requested = process.env.RMSNORM_ISA;
  // An ISA this CPU lacks falls back to a lower one: report it and stop, the parent drops the duplicate.
  if (info.isa !== requested) return { requested, isa: info.isa, results: [] };

  const Float = DTYPES[dtypeName];
  const results = [];
  for (const [rows, dim] of shapes(quick)) {
    const n = rows * dim;
    const x = fill(new Float(n), 1 + rows + dim);
    const weight = fill(new Float(dim), 7, 1, 0.2);
    const out = new Float(n);
    const options = { dim, eps: EPS, out };
    // The fallback is 4-20x slower than native: on the big shapes it gets fewer samples, not more wall time.
    const big = n >= 2048 * 4096;
    const time = quick ? 150 : 450;
    const timings = measureTogether(
      {
        native: { fn: () => rmsNorm(x, weight, options), time, iterations: big ? 9 : 30 },
        fallback: {
          fn: () => fallback.rmsNorm(x, weight, null, out, null, dim, EPS, 0, 1),
          time,
          iterations: big ? 3 : 9,
        },
        copy: { fn: () => out.set(x), time, iterations: big ? 9 : 30 },
      },
      quick ? 1 : 3,
    );
    // Bytes the kernel must move: x read, out written, weight read once.
    const bytes = (2 * n + dim) * Float.BYTES_PER_ELEMENT;
    results.push({ rows, dim, dtype: dtypeName, bytes, ...timings });
  }
  return { requested, isa: info.isa, threads: info.threads, version: info.version, results };
}

// ---------------------------------------------------------------- parent: spawn, collect, print

function candidateIsas() {
  return process.arch === 'arm64' ? ['neon', 'scalar'] : ['avx512', 'avx2', 'scalar'];
}

function runChild(isa, dtype, quick, threads) {
  const args = [self, '--child', dtype, '--threads', String(threads), ...(quick ? ['--quick'] : [])];
  const r = spawnSync(process.execPath, args, {
    env: { ...process.env, RMSNORM_ISA: isa, RMSNORM_BACKEND: 'native' },
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  if (r.status !== 0) {
    throw new Error(`child for ${isa} ${dtype} failed (status ${r.status}):\n${r.stderr}`);
  }
  return JSON.parse(r.stdout);
}

function formatTime(ms) {
  if (ms < 1e-3) return `${(ms * 1e6).toFixed(0)} ns`;
  if (ms < 1) return `${(ms * 1e3).toPrecision(3)} µs`;
  return `${ms.toPrecision(3)} ms`;
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

function printTables(report) {
  console.log(`rmsnorm ${report.version}, node ${report.node}, ${report.cpu} (${report.cores} cores), ${report.date}`);
  console.log(`eps ${EPS.toExponential()}, weight given, out preallocated; median time per call.\n`);
  for (const { isa, threads, results } of report.isas) {
    console.log(`ISA ${isa}, ${threads} thread${threads === 1 ? '' : 's'}`);
    const header = ['shape', 'dtype', 'native', 'GB/s', 'fallback', 'fallback/native', 'copy', 'native/copy'];
    const rows = results.map((r) => [
      `${r.rows}x${r.dim}`,
      r.dtype,
      formatTime(r.native.median),
      (r.bytes / r.native.median / 1e6).toFixed(1),
      formatTime(r.fallback.median),
      `${(r.fallback.median / r.native.median).toFixed(1)}x`,
      formatTime(r.copy.median),
      `${(r.native.median / r.copy.median).toFixed(2)}x`,
    ]);
    console.log(`${table(header, rows)}\n`);
  }
}

function parent({ json, quick, threads }) {
  const dtypes = quick ? ['float32'] : ['float32', 'float64'];
  const report = {
    version: require('../package.json').version,
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    date: new Date().toISOString(),
    quick,
    isas: [],
  };
  for (const isa of candidateIsas()) {
    const results = [];
    let used;
    for (const dtype of dtypes) {
      process.stderr.write(`measuring ${isa} ${dtype}...\n`);
      const r = runChild(isa, dtype, quick, threads);
      if (r.isa !== isa) {
        process.stderr.write(`  skipped: this CPU runs ${r.isa} when ${isa} is asked for\n`);
        break;
      }
      used = r.threads;
      results.push(...r.results);
    }
    if (results.length) report.isas.push({ isa, threads: used, results });
  }
  if (report.isas.length === 0) throw new Error('no native ISA could be measured');
  if (json) console.log(JSON.stringify(report, null, 2));
  else printTables(report);
}

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const threadsAt = argv.indexOf('--threads');
const threads = threadsAt < 0 ? 1 : Number(argv[threadsAt + 1]);
if (!Number.isInteger(threads) || threads < 1) throw new Error('--threads takes a positive integer');
if (argv[0] === '--child') {
  process.stdout.write(JSON.stringify(child(argv[1], flag('--quick'), threads)));
} else {
  parent({ json: flag('--json'), quick: flag('--quick'), threads });
}
