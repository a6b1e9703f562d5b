// Helpers shared by bench/run.mjs and examples/granite-demo.mjs: test data, timing with tinybench, formatting,
// a WebAssembly SIMD add (the fair native-speed baseline for the separate add of addRmsNorm's figure) and the
// hand-written SVG chart.
import { Bench } from 'tinybench';

/** Granite code models' rms_norm_eps. */
export const EPS = 1e-5;

// ---------------------------------------------------------------- data

/**
 * Deterministic pseudo-normal values (mulberry32, sum of three uniforms) of the given mean and spread. Large
 * arrays repeat a block of 2^20 values: the kernels' speed does not depend on the values, and generating 32M
 * of them in JavaScript would cost more than measuring them.
 */
export function fill(array, seed, mean = 0, spread = 1) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const block = Math.min(array.length, 1 << 20);
  for (let i = 0; i < block; i++) array[i] = mean + spread * (uniform() + uniform() + uniform() - 1.5);
  for (let i = block; i < array.length; i += block) array.copyWithin(i, 0, Math.min(block, array.length - i));
  return array;
}

// ---------------------------------------------------------------- timing

/**
 * Warms fn up (JIT, lazy initialization, first-touch page faults of its outputs) for about warmMs and at
 * least two calls, and returns how many calls a timed batch needs to last about targetMs: calls far below
 * the timer's grain (one row: well under a microsecond) are timed in batches, each sample a batch's mean.
 */
export async function calibrate(fn, isAsync, { warmMs = 20, targetMs = 0.1 } = {}) {
  let calls = 1;
  let perCall = Infinity;
  let done = 0;
  const deadline = performance.now() + warmMs;
  do {
    const start = performance.now();
    if (isAsync) for (let i = 0; i < calls; i++) await fn();
    else for (let i = 0; i < calls; i++) fn();
    perCall = Math.min(perCall, (performance.now() - start) / calls);
    done += calls;
    if (calls * perCall < targetMs) calls *= 2;
  } while (performance.now() < deadline || done < 2);
  return Math.max(1, Math.ceil(targetMs / perCall));
}

/**
 * Samples (ms per call) of fn from one tinybench run of at least `iterations` batches and `time` ms. An async
 * fn is awaited before the next call starts: one call in flight, so the samples measure its throughput.
 */
export async function sample(fn, isAsync, inner, { time, iterations }) {
  const bench = new Bench({ time, iterations, warmup: false, retainSamples: true, throws: true });
  if (isAsync) {
    bench.add(
      'task',
      async () => {
        const start = bench.now();
        for (let i = 0; i < inner; i++) await fn();
        const elapsed = bench.now() - start;
        return { overriddenDuration: elapsed / inner, overriddenIterationCost: elapsed };
      },
      { async: true },
    );
    const [task] = await bench.run();
    return task.result.latency.samples;
  }
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

export function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Median and minimum time per call (ms) of each task. A task is { fn, async?, setup?, time?, iterations? }; setup (for
 * example setThreads) runs before each of its blocks, outside the timing. The tasks take turns over `rounds`
 * rounds, so a slow spell of this shared machine lands on all of them rather than on one, and ratios between
 * them stay meaningful. Budgets are per task and split over the rounds.
 */
export async function measureTogether(tasks, { rounds = 2, time = 100, iterations = 4, onBlock } = {}) {
  const prepared = [];
  for (const [name, t] of Object.entries(tasks)) {
    t.setup?.();
    const inner = await calibrate(t.fn, !!t.async);
    prepared.push({ name, ...t, inner, samples: [] });
  }
  for (let round = 0; round < rounds; round++) {
    for (const t of prepared) {
      t.setup?.();
      const budget = {
        time: (t.time ?? time) / rounds,
        iterations: Math.max(1, Math.ceil((t.iterations ?? iterations) / rounds)),
      };
      for (const v of await sample(t.fn, !!t.async, t.inner, budget)) t.samples.push(v);
      onBlock?.();
    }
  }
  return Object.fromEntries(
    prepared.map((t) => [
      t.name,
      { median: median(t.samples), min: Math.min(...t.samples), samples: t.samples.length, batch: t.inner },
    ]),
  );
}

// ---------------------------------------------------------------- WebAssembly SIMD add

function leb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
const section = (id, bytes) => [id, ...leb(bytes.length), ...bytes];
const name = (s) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];

/**
 * A WebAssembly memory of at least `bytes` bytes and add(dst, src, nbytes): dst[i] += src[i] over float32
 * values at byte offsets dst and src, 4 lanes at a time (f32x4.add, rounding like `res[i] += x[i]` on a
 * Float32Array). nbytes must be a multiple of 16. One thread; V8 compiles it to SSE/AVX code.
 *
 *   (func (param $dst i32) (param $src i32) (param $n i32) (local $i i32)
 *     (block (loop (br_if 1 (i32.ge_u $i $n))
 *       (v128.store (dst+i) (f32x4.add (v128.load (dst+i)) (v128.load (src+i))))
 *       (local.set $i (i32.add $i 16)) (br 0))))
 */
export function wasmAdder(bytes) {
  const pages = Math.ceil(bytes / 65536) + 1;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const body = [
    0x01,
    0x01,
    0x7f, // one local: i32 $i
    0x02,
    0x40,
    0x03,
    0x40, // block, loop
    0x20,
    0x03,
    0x20,
    0x02,
    0x4f,
    0x0d,
    0x01, // br_if 1 ($i >= $n)
    0x20,
    0x00,
    0x20,
    0x03,
    0x6a, // store address: $dst + $i
    0x20,
    0x00,
    0x20,
    0x03,
    0x6a,
    0xfd,
    0x00,
    0x04,
    0x00, // v128.load ($dst + $i)
    0x20,
    0x01,
    0x20,
    0x03,
    0x6a,
    0xfd,
    0x00,
    0x04,
    0x00, // v128.load ($src + $i)
    0xfd,
    0xe4,
    0x01, // f32x4.add
    0xfd,
    0x0b,
    0x04,
    0x00, // v128.store
    0x20,
    0x03,
    0x41,
    0x10,
    0x6a,
    0x21,
    0x03, // $i += 16
    0x0c,
    0x00,
    0x0b,
    0x0b,
    0x0b, // br 0; end loop; end block; end function
  ];
  const wasm = new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // magic, version 1
    ...section(1, [0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00]), // type: (i32 i32 i32) -> ()
    ...section(2, [0x01, ...name('env'), ...name('mem'), 0x02, 0x01, ...leb(pages), ...leb(pages)]), // import memory
    ...section(3, [0x01, 0x00]), // one function of type 0
    ...section(7, [0x01, ...name('add'), 0x00, 0x00]), // export "add"
    ...section(10, [0x01, ...leb(body.length), ...body]), // code
  ]);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem: memory } });
  return { memory, add: instance.exports.add };
}

// ---------------------------------------------------------------- formatting

export function formatTime(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1e-3) return `${(ms * 1e6).toFixed(0)} ns`;
  if (ms < 1) return `${(ms * 1e3).toPrecision(3)} µs`;
  return `${ms.toPrecision(3)} ms`;
}

export const gbps = (bytes, ms) => bytes / ms / 1e6;

/** A Markdown table; the first `left` columns are left-aligned, the others right-aligned. */
export function table(header, rows, left = 2) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    `| ${cells.map((c, i) => (i < left ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < left ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------- SVG chart

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Round axis maximum: 1, 2 or 5 times a power of ten at or above v. */
function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * A line chart as an SVG document: x on a log2 axis (rows), y linear from 0 (GB/s).
 * series: [{ label, color, dash?, points: [[x, y], ...] }]; hlines: [{ label, color, y, dash? }].
 */
export function lineChartSvg({ title, subtitle, xLabel, yLabel, series, hlines = [], width = 760, height = 460 }) {
  const m = { left: 70, right: 30, top: 64, bottom: 110 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = [...series.flatMap((s) => s.points.map((p) => p[1])), ...hlines.map((l) => l.y)].filter(Number.isFinite);
  const x0 = Math.log2(Math.min(...xs));
  const x1 = Math.log2(Math.max(...xs));
  const yMax = niceMax(Math.max(...ys) * 1.05);
  const px = (x) => m.left + (x1 === x0 ? w / 2 : ((Math.log2(x) - x0) / (x1 - x0)) * w);
  const py = (y) => m.top + h - (y / yMax) * h;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${width / 2}" y="44" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`);
  // Grid and y ticks.
  const yStep = yMax / 5;
  for (let i = 0; i <= 5; i++) {
    const y = py(i * yStep);
    out.push(`<line x1="${m.left}" y1="${y.toFixed(1)}" x2="${m.left + w}" y2="${y.toFixed(1)}" stroke="#e3e3e3"/>`);
    out.push(
      `<text x="${m.left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end">${+(i * yStep).toPrecision(3)}</text>`,
    );
  }
  // x ticks at the measured x values.
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    const X = px(x);
    out.push(`<line x1="${X.toFixed(1)}" y1="${m.top}" x2="${X.toFixed(1)}" y2="${m.top + h}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${X.toFixed(1)}" y="${m.top + h + 18}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${m.left + w / 2}" y="${m.top + h + 40}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.top + h / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  for (const l of hlines) {
    const y = py(l.y).toFixed(1);
    out.push(
      `<line x1="${m.left}" y1="${y}" x2="${m.left + w}" y2="${y}" stroke="${l.color}" stroke-width="1.5" stroke-dasharray="${l.dash ?? '6 4'}"/>`,
    );
  }
  for (const s of series) {
    const pts = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    out.push(
      `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    for (const [x, y] of s.points) {
      out.push(
        `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="4" fill="${s.color}"><title>${esc(`${s.label}: ${x} rows, ${y.toFixed(1)} GB/s`)}</title></circle>`,
      );
    }
  }
  // Legend under the plot, two entries per line.
  const entries = [
    ...series.map((s) => ({ ...s, line: true })),
    ...hlines.map((l) => ({ ...l, dash: l.dash ?? '6 4' })),
  ];
  entries.forEach((e, i) => {
    const x = m.left + (i % 2) * (w / 2);
    const y = m.top + h + 64 + Math.floor(i / 2) * 20;
    out.push(
      `<line x1="${x}" y1="${y - 4}" x2="${x + 28}" y2="${y - 4}" stroke="${e.color}" stroke-width="2.5"${e.dash ? ` stroke-dasharray="${e.dash}"` : ''}/>`,
    );
    out.push(`<text x="${x + 36}" y="${y}">${esc(e.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
