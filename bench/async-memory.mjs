// What staging costs an async call (docs/async.md): for each shape, the sync call, and async calls over an
// ordinary ArrayBuffer (staged: copied in at the call, out at completion), a SharedArrayBuffer and allocate()d
// memory (both used directly). Reports medians per call of: the sync call; the async call awaited alone (wall
// time); its synchronous part (validation, holding the arrays, copies in); and the time it kept the event loop
// busy in all (performance.eventLoopUtilization's active time: the synchronous part, the completion with its
// copies out, and the promise's resolution).
//   node bench/async-memory.mjs
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
const require = createRequire(import.meta.url);
const m = require('../dist/index.js');

const dim = 4096;
const median = (a) => a.slice().sort((p, q) => p - q)[a.length >> 1];
const now = () => Number(process.hrtime.bigint()) / 1e3; // microseconds

async function measure(rows, make, reps) {
  const x = make(rows * dim).fill(1.25);
  const w = new Float32Array(dim).fill(1);
  const out = make(rows * dim);
  const sync = [],
    total = [],
    call = [],
    busy = [];
  for (let i = 0; i < reps + 2; i++) {
    let t0 = now();
    m.rmsNorm(x, w, { out });
    const s = now() - t0;
    await new Promise((r) => setImmediate(r));
    const elu = performance.eventLoopUtilization();
    t0 = now();
    const p = m.rmsNormAsync(x, w, { out });
    const c = now() - t0; // the synchronous part: validation, holding, staging copies in
    await p;
    const t = now() - t0;
    const b = performance.eventLoopUtilization(elu).active * 1e3;
    if (i >= 2) {
      sync.push(s);
      total.push(t);
      call.push(c);
      busy.push(b);
    }
  }
  return { sync: median(sync), call: median(call), total: median(total), busy: median(busy) };
}

const kinds = {
  ordinary: (n) => new Float32Array(n),
  shared: (n) => new Float32Array(new SharedArrayBuffer(n * 4)),
  allocate: (n) => m.allocate('float32', n),
};
console.log(`isa ${m.backend().isa}, threads ${m.backend().threads}`);
console.log(
  '| shape | memory | sync (us) | async awaited (us) | async, at the call (us) | async, event loop busy (us) |',
);
console.log('|---|---|---|---|---|---|');
for (const rows of [1, 64, 2048]) {
  const reps = rows === 2048 ? 15 : rows === 64 ? 200 : 2000;
  for (const [name, make] of Object.entries(kinds)) {
    const r = await measure(rows, make, reps);
    console.log(
      `| ${rows} x ${dim} | ${name} | ${r.sync.toFixed(1)} | ${r.total.toFixed(1)} | ${r.call.toFixed(1)} | ${r.busy.toFixed(1)} |`,
    );
  }
}
