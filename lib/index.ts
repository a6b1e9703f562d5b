// The public API of rmsnorm. Each op checks its arguments completely (lib/validate.ts), then runs on the
// native kernels when they loaded (lib/loader.ts) or on the pure-TypeScript fallback (lib/fallback.ts).
//
//   lib/ops.ts          the ops, sync and async          lib/op-table.ts   each op's arguments
//   lib/modules.ts      RMSNorm and LayerNorm modules    lib/validate.ts   every argument check
//   lib/conversions.ts  float32 <-> bfloat16/float16     lib/backend.ts    which implementation runs
//   lib/types.ts        the public types                 lib/memory.ts     allocate(): memory for async calls
export { backend, setThreads } from './backend';
export { fromBFloat16, fromFloat16, toBFloat16, toFloat16 } from './conversions';
export { allocate, type AllocateDType } from './memory';
export type { Isa } from './loader';
export { LayerNorm, RMSNorm, type DType, type LayerNormModuleOptions, type RMSNormModuleOptions } from './modules';
export {
  addRmsNorm,
  addRmsNormAsync,
  layerNorm,
  layerNormAsync,
  layerNormBackward,
  layerNormBackwardAsync,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
} from './ops';
export type {
  Backend,
  CastMode,
  Data,
  DataArray,
  FloatArray,
  Gradients,
  HalfDType,
  LayerNormBackwardOptions,
  LayerNormOptions,
  Param,
  PrecisionOptions,
  RmsNormBackwardOptions,
  RmsNormOptions,
  SameFloat,
  Stat,
} from './types';
