// onnxruntime-node as a peer, when it happens to be installed (it is not a dependency of this package): a
// one-node ONNX model per op, written here as protobuf bytes, so no model file is needed.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The resolved path of onnxruntime-node, or null. */
export function findOnnxRuntime() {
  try {
    return require.resolve('onnxruntime-node');
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- protobuf, just what ModelProto needs

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
const key = (field, wire) => varint((field << 3) | wire);
const int = (field, n) => [...key(field, 0), ...varint(n)];
const bytes = (field, b) => [...key(field, 2), ...varint(b.length), ...b];
const str = (field, s) => bytes(field, [...Buffer.from(s, 'utf8')]);
const float = (field, f) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(f);
  return [...key(field, 5), ...b];
};

const ELEM = { float32: 1, float64: 11 };

/** ValueInfoProto of a tensor: dims are numbers (fixed) or strings (symbolic). */
function valueInfo(name, elemType, dims) {
  const shape = dims.flatMap((d) => bytes(1, typeof d === 'number' ? int(1, d) : str(2, d)));
  const tensor = [...int(1, elemType), ...bytes(2, shape)];
  return [...str(1, name), ...bytes(2, bytes(1, tensor))];
}

/**
 * A model of one normalization node over the last axis of X [rows, dim]:
 *   'RMSNormalization' (ONNX opset 23; inputs X, scale), 'SimplifiedLayerNormalization' (onnxruntime's own
 *   RMSNorm, opset 1 in its ONNX-domain registrations; inputs X, scale) or 'LayerNormalization' (opset 17;
 *   inputs X, scale, B).
 */
export function normModel(opType, dtype, dim, eps) {
  const elem = ELEM[dtype];
  const withBias = opType === 'LayerNormalization';
  const inputs = withBias ? ['X', 'scale', 'B'] : ['X', 'scale'];
  const opset = { RMSNormalization: 23, SimplifiedLayerNormalization: 17, LayerNormalization: 17 }[opType];
  const node = [
    ...inputs.flatMap((n) => str(1, n)),
    ...str(2, 'Y'),
    ...str(3, 'norm'),
    ...str(4, opType),
    ...bytes(5, [...str(1, 'axis'), ...int(3, 1), ...int(20, 2)]), // INT attribute: axis 1 (the last of 2)
    ...bytes(5, [...str(1, 'epsilon'), ...float(2, eps), ...int(20, 1)]), // FLOAT attribute
  ];
  const graph = [
    ...bytes(1, node),
    ...str(2, 'norm'),
    ...bytes(11, valueInfo('X', elem, ['rows', dim])),
    ...bytes(11, valueInfo('scale', elem, [dim])),
    ...(withBias ? bytes(11, valueInfo('B', elem, [dim])) : []),
    ...bytes(12, valueInfo('Y', elem, ['rows', dim])),
  ];
  const model = [
    ...int(1, opset >= 23 ? 11 : 8), // ir_version
    ...str(2, 'rmsnorm-bench'), // producer_name
    ...bytes(7, graph),
    ...bytes(8, [...str(1, ''), ...int(2, opset)]), // opset_import
  ];
  return Uint8Array.from(model);
}

/**
 * Sessions of onnxruntime-node for the given op on one thread and on `threads`; null with a reason when the
 * runtime or the op is unavailable. run(x, scale, bias, out) runs one inference into the preallocated `out`.
 */
export async function onnxPeer(op, dtype, dim, eps, threads) {
  const path = findOnnxRuntime();
  if (!path) return { error: 'onnxruntime-node not installed' };
  const ort = require(path);
  const candidates = op === 'rmsNorm' ? ['SimplifiedLayerNormalization', 'RMSNormalization'] : ['LayerNormalization'];
  const errors = [];
  for (const opType of candidates) {
    try {
      const make = (n) =>
        ort.InferenceSession.create(normModel(opType, dtype, dim, eps), {
          intraOpNumThreads: n,
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
        });
      const sessions = { 1: await make(1), [threads]: await make(threads) };
      const type = dtype === 'float32' ? 'float32' : 'float64';
      return {
        opType,
        version: require(require.resolve('onnxruntime-node/package.json', { paths: [path] })).version,
        /** A function running one inference on `n` threads: inputs and output wrapped once, reused. */
        bind(n, x, scale, bias, out) {
          const rows = x.length / dim;
          const feeds = { X: new ort.Tensor(type, x, [rows, dim]), scale: new ort.Tensor(type, scale, [dim]) };
          if (bias) feeds.B = new ort.Tensor(type, bias, [dim]);
          const fetches = { Y: new ort.Tensor(type, out, [rows, dim]) };
          const session = sessions[n];
          return () => session.run(feeds, fetches);
        },
        release: () => Promise.all(Object.values(sessions).map((s) => s.release?.())),
      };
    } catch (error) {
      errors.push(`${opType}: ${String(error?.message ?? error).split('\n')[0]}`);
    }
  }
  return { error: errors.join('; ') };
}
