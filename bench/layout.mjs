// How the backward passes depend on where x, dy and dx lie relative to each other (docs/performance.md,
// "Limits measured"): the same 64 x 4096 float32 call with each array moved by a few elements inside its
// buffer. Prints ns per value, median of 300 calls, for each placement.
//
//   node bench/layout.mjs [--threads N] [--rows R] [--dim D]
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const api = require('../dist/index.js');
const { values } = parseArgs({
  options: { threads: { type: 'string' }, rows: { type: 'string' }, dim: { type: 'string' } },
});
if (values.threads) api.setThreads(Number(values.threads));
const rows = Number(values.rows ?? 64);
const dim = Number(values.dim ?? 4096);
const n = rows * dim;
const at = (offset) => new Float32Array(n + 64).subarray(offset, offset + n);

const median = (fn) => {
  const t = [];
  for (let i = 0; i < 300; i++) {
    const s = performance.now();
    fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return (t[150] * 1e6) / n;
};

console.log(`${api.backend().isa}, ${api.backend().threads} threads, ${rows} x ${dim} float32, ns per value`);
for (const [ox, ody, odx] of [
  [0, 0, 0],
  [0, 0, 4],
  [4, 4, 0],
  [4, 12, 0],
  [4, 4, 4],
  [1, 1, 0],
]) {
  const x = at(ox);
  const dy = at(ody);
  const dx = at(odx);
  for (let i = 0; i < n; i++) {
    x[i] = Math.sin(i * 0.37);
    dy[i] = Math.cos(i * 0.11);
  }
  const w = new Float32Array(dim).fill(1.1);
  const b = new Float32Array(dim).fill(0.1);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  const dw = new Float32Array(dim);
  const db = new Float32Array(dim);
  api.layerNorm(x, w, b, { out: new Float32Array(n), mean, rstd });
  const ln = median(() => api.layerNormBackward(dy, x, w, { mean, rstd, dx, dweight: dw, dbias: db }));
  const rms = median(() => api.rmsNormBackward(dy, x, w, { dx, dweight: dw }));
  console.log(
    `x, dy, dx moved by ${ox}, ${ody}, ${odx} elements: layerNormBackward ${ln.toFixed(3)}, rmsNormBackward ${rms.toFixed(3)}`,
  );
}
