// One attention pre-norm step of a Granite-3.0-8B-shaped decoder layer (hidden 4096, 32 query heads and 8
// key/value heads of 128, residual_multiplier 0.22, eps 1e-5) on a fused QKV buffer, without copying a slice:
//
//   1. residual += attention output * 0.22, then RMSNorm of the new residual: one addRmsNorm call
//      (residualScale), in one pass;
//   2. the fused QKV projection: each token's row of 6144 = (32 + 8 + 8) * 128 values in one buffer;
//   3. per-head QK-norm (the q_norm/k_norm of Qwen3, OLMo2 and Gemma-3 style layers) straight on the q and k
//      parts of that buffer, in place: one call for the 32 q heads, one for the 8 k heads; v is never touched.
//
// It then checks each step against the same work done with copies and dense calls, and exits with status 1
// when they differ. Run with `node examples/granite-qkv.mjs` after `npm run build`.
import { addRmsNorm, backend, rmsNorm } from '../dist/index.mjs';

const tokens = 4;
const hidden = 4096;
const headDim = 128;
const qHeads = 32;
const kvHeads = 8;
const width = (qHeads + 2 * kvHeads) * headDim; // 6144: one token's q, k and v
const residualMultiplier = 0.22;
const eps = 1e-5;

let seed = 12345;
const random = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296 - 0.5;
};
const filled = (n, scale = 1, mean = 0) => new Float32Array(n).map(() => mean + random() * scale);

const attentionOut = filled(tokens * hidden);
const residual = filled(tokens * hidden, 4);
const residualBefore = residual.slice();
const inputNorm = filled(hidden, 0.2, 1);
const qNorm = filled(headDim, 0.2, 1);
const kNorm = filled(headDim, 0.2, 1);
const wqkv = filled(width * hidden, 0.05); // [width, hidden], row-major like a torch Linear weight

// 1. residual += attentionOut * 0.22; normed = rmsNorm(residual) * inputNorm.
const normed = addRmsNorm(attentionOut, residual, inputNorm, { eps, residualScale: residualMultiplier });

// 2. qkv = normed @ wqkv^T (a plain loop: the projection is not this library's business).
const qkv = new Float32Array(tokens * width);
for (let t = 0; t < tokens; t++) {
  const x = normed.subarray(t * hidden, (t + 1) * hidden);
  for (let o = 0; o < width; o++) {
    const w = wqkv.subarray(o * hidden, (o + 1) * hidden);
    let s = 0;
    for (let i = 0; i < hidden; i++) s += x[i] * w[i];
    qkv[t * width + o] = s;
  }
}
const projected = qkv.slice();

// 3. QK-norm in place on the fused buffer: q heads start at 0, k heads at 32 * 128, rows 6144 apart.
const layout = { dim: headDim, eps, xRowStride: width, outRowStride: width };
rmsNorm(qkv, qNorm, { ...layout, heads: qHeads, out: qkv });
const k = qkv.subarray(qHeads * headDim);
rmsNorm(k, kNorm, { ...layout, heads: kvHeads, out: k });

// The same with copies: the residual step in two dense calls' worth of work, each head copied out and
// normalized by a dense call.
let worst = 0;
const expectSame = (what, got, want) => {
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= 1e-6 * Math.max(1, Math.abs(want[i])))) {
      console.error(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
      process.exit(1);
    }
    worst = Math.max(worst, d);
  }
};
const summed = residualBefore.map((r, i) => r + attentionOut[i] * residualMultiplier);
expectSame('residual', residual, summed);
expectSame('input norm', normed, rmsNorm(summed, inputNorm, { eps }));
for (let t = 0; t < tokens; t++) {
  for (let h = 0; h < qHeads + 2 * kvHeads; h++) {
    const at = t * width + h * headDim;
    const head = projected.slice(at, at + headDim);
    const want =
      h < qHeads ? rmsNorm(head, qNorm, { eps }) : h < qHeads + kvHeads ? rmsNorm(head, kNorm, { eps }) : head;
    expectSame(`token ${t} head ${h}`, qkv.subarray(at, at + headDim), want);
  }
}
console.log(
  `${backend().isa}: ${tokens} tokens, residual += h * ${residualMultiplier} and its RMSNorm in one call; QK-norm of ` +
    `${qHeads} q and ${kvHeads} k heads in place in a ${width}-wide QKV buffer in two calls, v untouched; ` +
    `matches the copy-and-dense computation (largest difference ${worst.toExponential(2)})`,
);
