// Types of the native module (build/Release/rmsnorm.node, prebuilds/<platform>-<arch>/rmsnorm.node) as the
// facade in lib/ sees it. The native functions take positional arguments already checked by lib/validate.ts;
// they check again and throw coded errors rather than crash, but their messages are terser.

export type FloatArray = Float32Array | Float64Array;

/** The compute entry points, shared by the native module and the pure-TypeScript fallback (lib/fallback.ts). */
export interface Kernels {
  /** Writes RMSNorm of each row of x into out (which may be x), and 1/rms into rstd when given. */
  rmsNorm(
    x: FloatArray,
    weight: FloatArray | null,
    bias: FloatArray | null,
    out: FloatArray,
    rstd: FloatArray | null,
    dim: number,
    eps: number,
    offset: number,
    partial: number,
  ): void;
}

export interface NativeBinding extends Kernels {
  /** Instruction sets this CPU and OS can run, best first, e.g. ['avx512', 'avx2', 'scalar']. */
  supportedIsas(): string[];
  /** Use the best kernels at or below `cap`; returns the ISA now in use. Throws for a name this architecture lacks. */
  selectIsa(cap: string): string;
  /** The ISA of the kernels in use. */
  isa(): string;
}
