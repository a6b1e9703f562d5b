// Compile-time checks of the public types, run by `npm run typecheck` (part of `npm test`): each line
// marked as an expected error must fail to compile, every other line must compile.
import { backend, rmsNorm, type Backend, type RmsNormOptions } from '../dist/index.js';

const x32 = new Float32Array(8);
const w32 = new Float32Array(4);
const x64 = new Float64Array(8);
const w64 = new Float64Array(4);

// A Float32Array in gives a Float32Array out; a Float64Array, a Float64Array.
export const y32: Float32Array = rmsNorm(x32, w32);
export const y64: Float64Array = rmsNorm(x64, w64, { eps: 1e-6, rstd: new Float64Array(2) });
export const yNull: Float32Array = rmsNorm(x32, null, { dim: 4, bias: w32, out: new Float32Array(8) });
export const opts: RmsNormOptions<Float32Array> = { dim: 4, offset: 1, partial: 0.5 };
export const info: Backend = backend();
export const isa: 'avx512bf16' | 'avx512' | 'avx2' | 'neon' | 'scalar' | 'js' = backend().isa;

// @ts-expect-error: a Float64Array result is not a Float32Array
export const wrongOut: Float32Array = rmsNorm(x64, w64);
// @ts-expect-error: weight must have the element type of x
rmsNorm(x32, w64);
// @ts-expect-error: out must have the element type of x
rmsNorm(x32, w32, { out: new Float64Array(8) });
// @ts-expect-error: plain arrays are not accepted
rmsNorm([1, 2, 3, 4], null, { dim: 4 });
// @ts-expect-error: eps is a number
rmsNorm(x32, w32, { eps: '1e-5' });
// @ts-expect-error: unknown option
rmsNorm(x32, w32, { epsilon: 1e-5 });

// Half precision: a Uint16Array needs options with a dtype; weights may be float32 or the half type;
// statistics are Float32Array.
const h16 = new Uint16Array(8);
export const yHalf: Uint16Array = rmsNorm(h16, new Float32Array(4), {
  dtype: 'bfloat16',
  castMode: 'llama',
  rstd: new Float32Array(2),
});
export const yHalf2: Uint16Array = rmsNorm(h16, new Uint16Array(4), { dtype: 'float16' });
// @ts-expect-error: a Uint16Array call needs options.dtype
rmsNorm(h16, null, { dim: 4 });
// @ts-expect-error: a Uint16Array call needs options at all
rmsNorm(h16, new Uint16Array(4));
// @ts-expect-error: statistics of half data are Float32Array
rmsNorm(h16, null, { dim: 4, dtype: 'float16', rstd: new Uint16Array(2) });
// @ts-expect-error: dtype names a half type
rmsNorm(h16, null, { dim: 4, dtype: 'float32' });
