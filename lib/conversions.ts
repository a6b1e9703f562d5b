// Conversions between float32 and half-precision bits: round to nearest even, NaN stays NaN, overflow goes to
// infinity (float16), subnormals are kept.
import { converter, native } from './backend';
import { allocLike, checkArray, checkKind, checkOverlaps, invalidType, kindOf, type Kind } from './validate';

const enum Direction {
  ToBFloat16 = 0,
  FromBFloat16 = 1,
  ToFloat16 = 2,
  FromFloat16 = 3,
}

function convert<R extends Float32Array | Uint16Array>(direction: Direction, src: unknown, out: unknown): R {
  const toHalf = direction === Direction.ToBFloat16 || direction === Direction.ToFloat16;
  const srcKind: Kind = toHalf ? 1 : 3;
  const dstKind: Kind = toHalf ? 3 : 1;
  if (kindOf(src) !== srcKind) throw invalidType('src', `a ${toHalf ? 'Float32Array' : 'Uint16Array'}`, src);
  const s = checkKind('src', src, srcKind, false)!;
  const o = checkArray('out', out, dstKind, s.length, 'src.length', true);
  if (o && !native)
    checkOverlaps([
      { name: 'src', a: s, output: false },
      { name: 'out', a: o, output: true },
    ]);
  const dst = o ?? allocLike(dstKind, s.length);
  converter.convert(direction, s as Float32Array | Uint16Array, dst as Float32Array | Uint16Array);
  return dst as R;
}

/** float32 to bfloat16 bits. Returns `out` when given (same length as src), else a new Uint16Array. */
export function toBFloat16(src: Float32Array, out?: Uint16Array | null): Uint16Array {
  return convert(Direction.ToBFloat16, src, out);
}
/** bfloat16 bits to float32 (exact). */
export function fromBFloat16(src: Uint16Array, out?: Float32Array | null): Float32Array {
  return convert(Direction.FromBFloat16, src, out);
}
/** float32 to IEEE float16 bits. */
export function toFloat16(src: Float32Array, out?: Uint16Array | null): Uint16Array {
  return convert(Direction.ToFloat16, src, out);
}
/** IEEE float16 bits to float32 (exact). */
export function fromFloat16(src: Uint16Array, out?: Float32Array | null): Float32Array {
  return convert(Direction.FromFloat16, src, out);
}
