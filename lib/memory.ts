// Memory for async calls (docs/async.md has the whole contract).
//
// - allocate(dtype, length): arrays over memory the package owns. The native module reference-counts it, so
//   an async call uses it directly (no copy) and keeps it alive until the call settles, whatever happens to
//   the array's ArrayBuffer meanwhile. On the fallback, an ordinary array (no other thread ever touches it).
// - changedWhileRunning(): the fallback's check, before its deferred work runs, that no array of the call was
//   detached or resized since the call; the native module makes the same check at completion
//   (native/async_memory.cc), with the same code and message.
import type { DataArray } from '../binding';
import { invalidType, invalidValue, outOfRange } from './validate';

/** Element types allocate() can make: float32 and float64, or the bits of bfloat16/float16 in a Uint16Array. */
export type AllocateDType = 'float32' | 'float64' | 'bfloat16' | 'float16';

/** What native code offers: a zero-filled ArrayBuffer of `bytes` bytes over package-owned memory. */
export interface Allocator {
  allocate(bytes: number): ArrayBuffer;
}

const sizes: Record<AllocateDType, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2 };

export function allocateWith(allocator: Allocator | null, dtype: unknown, length: unknown): DataArray {
  if (typeof dtype !== 'string') throw invalidType('dtype', 'of type string', dtype);
  if (!Object.prototype.hasOwnProperty.call(sizes, dtype)) {
    throw invalidValue('dtype', `must be 'float32', 'float64', 'bfloat16' or 'float16', received '${dtype}'`);
  }
  if (typeof length !== 'number') throw invalidType('length', 'of type number', length);
  const size = sizes[dtype as AllocateDType];
  // The most elements a typed array may have in this engine is far above what memory allows; 2^53 bytes bounds
  // the request so that the byte count stays exact.
  if (!Number.isInteger(length) || length < 0 || length * size > Number.MAX_SAFE_INTEGER) {
    throw outOfRange('length', 'be a non-negative integer', String(length));
  }
  const buffer = allocator ? allocator.allocate(length * size) : new ArrayBuffer(length * size);
  return dtype === 'float32' ? new Float32Array(buffer) : dtype === 'float64' ? new Float64Array(buffer) : new Uint16Array(buffer);
}

// The array arguments of each op, in the order of binding.d.ts (the slot order of native/args.h).
const slotNames: Record<string, readonly string[]> = {
  rmsNorm: ['x', 'weight', 'options.bias', 'options.out', 'options.rstd'],
  layerNorm: ['x', 'weight', 'bias', 'options.out', 'options.mean', 'options.rstd'],
  addRmsNorm: ['x', 'residual', 'weight', 'options.bias', 'options.out', 'options.rstd'],
  rmsNormBackward: ['dy', 'x', 'weight', 'options.rstd', 'options.dx', 'options.dweight', 'options.dbias'],
  layerNormBackward: ['dy', 'x', 'weight', 'options.mean', 'options.rstd', 'options.dx', 'options.dweight', 'options.dbias'],
};

/** The error of an async call one of whose arrays was detached or resized while it ran. */
export function invalidState(name: string, op: string): Error & { code: 'ERR_INVALID_STATE' } {
  const error = new Error(`The "${name}" argument was detached or resized while ${op}Async ran; the result was not delivered`) as Error & {
    code: 'ERR_INVALID_STATE';
  };
  Object.defineProperty(error, 'code', { value: 'ERR_INVALID_STATE', enumerable: true, writable: true, configurable: true });
  return error;
}

/**
 * Records the length and position of every array argument of `op` now; the returned function throws
 * ERR_INVALID_STATE when any of them has changed since (detached: length 0; a resizable buffer shrunk under a
 * view: length 0; a length-tracking view: a new length).
 */
export function changedWhileRunning(op: string, args: readonly unknown[]): () => void {
  const names = slotNames[op]!;
  const seen: [number, DataArray, number, number][] = [];
  for (let i = 0; i < names.length; i++) {
    const a = args[i];
    if (ArrayBuffer.isView(a)) seen.push([i, a as DataArray, (a as DataArray).length, (a as DataArray).byteOffset]);
  }
  return () => {
    for (const [i, a, length, offset] of seen) {
      if (a.length !== length || (length !== 0 && a.byteOffset !== offset)) throw invalidState(names[i]!, op);
    }
  };
}
