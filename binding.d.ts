// Types of the native module (build/Release/rmsnorm.node, prebuilds/<platform>-<arch>/rmsnorm.napi.glibc.node) as the
// facade in lib/ sees it. The native functions take positional arguments already checked by lib/validate.ts;
// they check again and throw coded errors rather than crash. Their array arguments are in the slot order of
// the OpSpec tables in native/binding.cc; after the arrays come dim, eps, the op's other numbers, then
// dtype (0 float data, 1 bfloat16, 2 float16) and castMode (0 'fp32', 1 'llama').

export type DataArray = Float32Array | Float64Array | Uint16Array;
type Arr = DataArray | null;

/** The compute entry points, shared by the native module and the pure-TypeScript fallback (lib/fallback.ts). */
export interface Kernels {
  /** RMSNorm of each row of x into out (which may be x); 1/rms into rstd when given. */
  rmsNorm(x: DataArray, weight: Arr, bias: Arr, out: DataArray, rstd: Arr, dim: number, eps: number, offset: number, partial: number, dtype: number, castMode: number): void;
  /** LayerNorm of each row of x into out (which may be x); statistics into mean and rstd when given. */
  layerNorm(x: DataArray, weight: Arr, bias: Arr, out: DataArray, mean: Arr, rstd: Arr, dim: number, eps: number, dtype: number, castMode: number): void;
  /** residual += x, then RMSNorm of residual into out (which may be x). */
  addRmsNorm(x: DataArray, residual: DataArray, weight: Arr, bias: Arr, out: DataArray, rstd: Arr, dim: number, eps: number, offset: number, partial: number, dtype: number, castMode: number): void;
  /** Gradients of rmsNorm: dx (may be dy); dweight/dbias when given, overwritten or added to (accumulate). */
  rmsNormBackward(dy: DataArray, x: DataArray, weight: Arr, rstd: Arr, dx: DataArray, dweight: Arr, dbias: Arr, dim: number, eps: number, offset: number, partial: number, accumulate: boolean, dtype: number, castMode: number): void;
  /** Gradients of layerNorm; mean and rstd are recomputed unless both are given. */
  layerNormBackward(dy: DataArray, x: DataArray, weight: Arr, mean: Arr, rstd: Arr, dx: DataArray, dweight: Arr, dbias: Arr, dim: number, eps: number, accumulate: boolean, dtype: number, castMode: number): void;
}

/** The same entry points, run off the JavaScript thread: each resolves once its outputs are written. */
export type AsyncKernels = {
  [K in keyof Kernels as `${K}Async`]: (...args: Parameters<Kernels[K]>) => Promise<void>;
};

export interface Converter {
  /** direction 0: float32 -> bfloat16 bits, 1: bfloat16 -> float32, 2: float32 -> float16, 3: float16 -> float32. */
  convert(direction: number, src: Float32Array | Uint16Array, out: Float32Array | Uint16Array): void;
}

export interface NativeBinding extends Kernels, AsyncKernels, Converter {
  /** Set the most threads a large call may use (1..1024). */
  setThreads(n: number): void;
  /** The current thread setting. */
  threads(): number;
  /** Instruction sets this CPU and OS can run, best first, e.g. ['avx512bf16', 'avx512', 'avx2', 'scalar']. */
  supportedIsas(): string[];
  /** Use the best kernels at or below `cap`; returns the ISA now in use. Throws for a name this architecture lacks. */
  selectIsa(cap: string): string;
  /** The ISA of the kernels in use. */
  isa(): string;
  /** A zero-filled ArrayBuffer of `bytes` bytes over reference-counted memory of the addon (lib/memory.ts). */
  allocate(bytes: number): ArrayBuffer;
}
