// allocate(): arrays over memory the package owns, for async calls (docs/async.md has the whole contract).
// The native module reference-counts that memory, so an async call uses it directly (no copy) and keeps it
// alive until the call settles, whatever happens to the array's ArrayBuffer meanwhile. On the fallback, an
// ordinary array (no other thread ever touches it).
import type { DataArray } from '../binding';
import { binding } from './backend';
import { invalidType, invalidValue, outOfRange } from './validate';

/** Element types allocate() can make: float32 and float64, or the bits of bfloat16/float16 in a Uint16Array. */
export type AllocateDType = 'float32' | 'float64' | 'bfloat16' | 'float16';

const sizes: Record<AllocateDType, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2 };

/**
 * A zero-filled array of `length` elements over memory the package owns: async calls use it directly (no
 * copy) and keep it alive until they settle, whatever happens to the array meanwhile. Other ordinary arrays
 * are copied in and out by async calls; SharedArrayBuffer memory is also used directly. See docs/async.md.
 */
export function allocate(dtype: 'float32', length: number): Float32Array;
export function allocate(dtype: 'float64', length: number): Float64Array;
export function allocate(dtype: 'bfloat16' | 'float16', length: number): Uint16Array;
export function allocate(dtype: AllocateDType, length: number): DataArray;
export function allocate(dtype: unknown, length: unknown): DataArray {
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
  const buffer = binding ? binding.allocate(length * size) : new ArrayBuffer(length * size);
  if (dtype === 'float32') return new Float32Array(buffer);
  return dtype === 'float64' ? new Float64Array(buffer) : new Uint16Array(buffer);
}
