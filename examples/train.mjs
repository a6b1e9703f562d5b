// Fits the parameters of an RMSNorm layer by gradient descent, then times the same training step with
// LayerNorm in its place at Granite-8B-Code width (4096).
//
//   node examples/train.mjs            (after npm install)
import { LayerNorm, RMSNorm, backend, rmsNorm } from '../dist/index.mjs';

const dim = 4096; // Granite-8B-Code hidden size
const rows = 64; // tokens per step
const steps = 40;
const lr = 0.5;

// Deterministic values in [lo, hi): the fractional part of a scaled sine, enough for an example.
function random(n, seed, lo = -1, hi = 1) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = Math.sin((i + 1) * 12.9898 + seed * 78.233) * 43758.5453;
    a[i] = lo + (hi - lo) * (t - Math.floor(t));
  }
  return a;
}

// A "teacher" RMSNorm with hidden weights and bias produces the targets; the student starts from the
// defaults (weight 1, bias 0) and learns them from (x, target) pairs by plain gradient descent on the mean
// squared error.
const x = random(rows * dim, 1, -3, 3);
const teacherWeight = random(dim, 2, 0.5, 1.5);
const teacherBias = random(dim, 3, -0.2, 0.2);
const target = rmsNorm(x, teacherWeight, { bias: teacherBias });

/** One training step: forward, loss, backward, SGD update. Returns the loss before the update. */
function step(layer, x, target) {
  const y = layer.forward(x);
  const n = y.length;
  const dy = new Float32Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const d = y[i] - target[i];
    loss += d * d;
    dy[i] = (2 * d) / rows; // d(mean over rows of the summed squared error)/dy
  }
  layer.zeroGrad();
  layer.backward(dy);
  for (const [p, g] of [
    [layer.weight, layer.weightGrad],
    [layer.bias, layer.biasGrad],
  ]) {
    if (p) for (let j = 0; j < p.length; j++) p[j] -= lr * g[j];
  }
  return loss / rows;
}

console.log(`rmsnorm ${backend().version}, kernels: ${backend().isa}, threads: ${backend().threads}`);
console.log(`\nFitting RMSNorm(${dim}, { bias: true }) to a teacher, ${rows} rows per step:`);
const student = new RMSNorm(dim, { bias: true });
for (let s = 0; s <= steps; s++) {
  const loss = step(student, x, target);
  if (s % 5 === 0) console.log(`  step ${String(s).padStart(3)}  loss ${loss.toExponential(3)}`);
}
let worst = 0;
for (let j = 0; j < dim; j++) worst = Math.max(worst, Math.abs(student.weight[j] - teacherWeight[j]));
console.log(`  largest weight error after ${steps} steps: ${worst.toExponential(2)}`);

// The same loop, timed, with LayerNorm in RMSNorm's place (both with weight and bias).
function timeSteps(layer, n) {
  for (let i = 0; i < 5; i++) step(layer, x, target);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    step(layer, x, target);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}
const rms = timeSteps(new RMSNorm(dim, { bias: true }), 30);
const ln = timeSteps(new LayerNorm(dim), 30);
console.log(`\nTraining step at ${rows} x ${dim} (forward + loss + backward + update, median of 30):`);
console.log(`  RMSNorm   ${rms.toFixed(3)} ms`);
console.log(`  LayerNorm ${ln.toFixed(3)} ms   (${(ln / rms).toFixed(2)}x the RMSNorm step)`);
console.log('  (the loss and update loops in JavaScript are the same for both and dominate the step)');
