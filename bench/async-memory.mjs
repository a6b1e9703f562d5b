// What staging costs an async call (docs/async.md): for each shape, the sync call, and async calls over an
// ordinary ArrayBuffer (staged: copied in at the call, out at completion), a SharedArrayBuffer and allocate()d
// memory (both used directly). Reports the median wall time per call and the time the call holds the event
// loop (the synchronous part of the call plus its completion callback, measured as the time until a
// setImmediate queued right after the call can run, minus nothing: an upper bound).
//   node bench/async-memory.mjs
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const m = require('../dist/index.js');

const dim = 4096;
const median = (a) => a.slice().sort((p, q) => p - q)[a.length >> 1];
const now = () => Number(process.hrtime.bigint()) / 1e3; // microseconds

async function measure(rows, make, reps) {
  const x = make(rows * dim).fill(1.25);
  const w = new Float32Array(dim).fill(1);
  const out = make(rows * dim);
  const sync = [], total = [], call = [];
  for (let i = 0; i < reps + 2; i++) {
    let t0 = now();
    m.rmsNorm(x, w, { out });
    const s = now() - t0;
    t0 = now();
    const p = m.rmsNormAsync(x, w, { out });
    const c = now() - t0; // the synchronous part: validation, holding, staging copies in
    await p;
    const t = now() - t0;
    if (i >= 2) (sync.push(s), total.push(t), call.push(c));
  }
  return { sync: median(sync), call: median(call), total: median(total) };
}

// The completion's share (copies out) by difference: time from the worker finishing to resolution is not
// observable from JavaScript, so it is measured as total(staged) - total(direct) - (call(staged) - call(direct)).
const kinds = {
  ordinary: (n) => new Float32Array(n),
  shared: (n) => new Float32Array(new SharedArrayBuffer(n * 4)),
  allocate: (n) => m.allocate('float32', n),
};
console.log(`isa ${m.backend().isa}, threads ${m.backend().threads}`);
for (const rows of [1, 64, 2048]) {
  const reps = rows === 2048 ? 15 : rows === 64 ? 200 : 2000;
  for (const [name, make] of Object.entries(kinds)) {
    const r = await measure(rows, make, reps);
    console.log(`${rows}x${dim} ${name.padEnd(9)} sync ${r.sync.toFixed(1).padStart(8)} us  async: total ${r.total.toFixed(1).padStart(8)} us, at the call ${r.call.toFixed(1).padStart(8)} us`);
  }
}
