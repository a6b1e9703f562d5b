// The async twins: same bits as the sync forms, same errors as rejections, off the JavaScript thread.
import { describe, expect, it } from 'vitest';
import {
  addRmsNorm,
  addRmsNormAsync,
  LayerNorm,
  layerNorm,
  layerNormAsync,
  layerNormBackward,
  layerNormBackwardAsync,
  RMSNorm,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
} from '../dist/index.js';
import { randomArray, thrownBy } from './reference';
import { nativeRequested } from './setup';

const same = (a: ArrayLike<number>, b: ArrayLike<number>) => expect(Array.from(a)).toEqual(Array.from(b));

describe.each([Float32Array, Float64Array] as const)('%s', (T) => {
  const dim = 97;
  const rows = 5;
  const x = randomArray(T, rows * dim, 1);
  const dy = randomArray(T, rows * dim, 2);
  const w = randomArray(T, dim, 3, 0.5, 1.5);
  const b = randomArray(T, dim, 4);

  it('each async op resolves to what the sync op returns', async () => {
    same(
      await rmsNormAsync(x, w, { bias: b, offset: 0.5, partial: 0.5 }),
      rmsNorm(x, w, { bias: b, offset: 0.5, partial: 0.5 }),
    );
    same(await layerNormAsync(x, w, b), layerNorm(x, w, b));
    const r1 = randomArray(T, rows * dim, 5);
    const r2 = r1.slice();
    same(await addRmsNormAsync(x, r1, w), addRmsNorm(x, r2, w));
    same(r1, r2);
    const ga = await rmsNormBackwardAsync(dy, x, w);
    const gs = rmsNormBackward(dy, x, w);
    same(ga.dx, gs.dx);
    same(ga.dweight!, gs.dweight!);
    same(ga.dbias, gs.dbias);
    const la = await layerNormBackwardAsync(dy, x, w);
    const ls = layerNormBackward(dy, x, w);
    same(la.dx, ls.dx);
    same(la.dweight!, ls.dweight!);
  });

  it('resolves to options.out, written in place when out is x', async () => {
    const out = new T(x.length);
    expect(await rmsNormAsync(x, w, { out })).toBe(out);
    const inPlace = x.slice();
    expect(await rmsNormAsync(inPlace, w, { out: inPlace })).toBe(inPlace);
    same(inPlace, out);
  });

  it('rejects with the same coded error as the sync form, and writes nothing', async () => {
    const out = new T(x.length).fill(9);
    const bad: [() => unknown, () => Promise<unknown>][] = [
      [() => rmsNorm(x, w, { out, eps: -1 }), () => rmsNormAsync(x, w, { out, eps: -1 })],
      [() => rmsNorm(x, new T(3), { out }), () => rmsNormAsync(x, new T(3), { out })],
      [() => layerNorm(x, w, null, { out, mean: new T(1) }), () => layerNormAsync(x, w, null, { out, mean: new T(1) })],
      [() => addRmsNorm(x, x, w, { out }), () => addRmsNormAsync(x, x, w, { out })],
      [
        () => rmsNormBackward(dy, x, w, { dx: out, accumulate: 3 as never }),
        () => rmsNormBackwardAsync(dy, x, w, { dx: out, accumulate: 3 as never }),
      ],
      [
        () => layerNormBackward(dy, x.subarray(1), w, { dx: out }),
        () => layerNormBackwardAsync(dy, x.subarray(1), w, { dx: out }),
      ],
      [
        () => rmsNorm('x' as unknown as Float32Array, w as Float32Array),
        () => rmsNormAsync('x' as unknown as Float32Array, w as Float32Array),
      ],
    ];
    for (const [sync, async] of bad) {
      const expected = thrownBy(() => sync());
      expect(expected).toBeInstanceOf(Error);
      const promise = async();
      expect(promise).toBeInstanceOf(Promise);
      const got = await promise.then(
        () => null,
        (e: unknown) => e,
      );
      expect(got).toBeInstanceOf((expected as Error).constructor);
      expect((got as { code: string }).code).toBe((expected as { code: string }).code);
      expect((got as Error).message).toBe((expected as Error).message);
    }
    expect(Array.from(out).every((v) => v === 9)).toBe(true);
  });

  it('runs many calls at once, each correct', async () => {
    const inputs = Array.from({ length: 24 }, (_, i) => randomArray(T, rows * dim, 100 + i));
    const results = await Promise.all(inputs.map((xi, i) => (i % 2 ? rmsNormAsync(xi, w) : layerNormAsync(xi, w, b))));
    results.forEach((y, i) => same(y, i % 2 ? rmsNorm(inputs[i]!, w) : layerNorm(inputs[i]!, w, b)));
  });

  it('module forwardAsync/backwardAsync match forward/backward', async () => {
    const a = new RMSNorm(dim, { dtype: T === Float32Array ? 'float32' : 'float64', bias: true });
    const s = new RMSNorm(dim, { dtype: T === Float32Array ? 'float32' : 'float64', bias: true });
    same(await a.forwardAsync(x), s.forward(x));
    same(await a.backwardAsync(dy), s.backward(dy));
    same(a.weightGrad!, s.weightGrad!);
    same(a.biasGrad!, s.biasGrad!);
    const la = new LayerNorm(dim, { dtype: T === Float32Array ? 'float32' : 'float64' });
    const ls = new LayerNorm(dim, { dtype: T === Float32Array ? 'float32' : 'float64' });
    same(await la.forwardAsync(x), ls.forward(x));
    same(await la.backwardAsync(dy), ls.backward(dy));
    same(la.weightGrad!, ls.weightGrad!);
    await expect(new RMSNorm(dim).backwardAsync(new Float32Array(dim))).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
  });
});

describe('where async work runs', () => {
  // Native: on a libuv thread, so the event loop turns while the call runs. Fallback: JavaScript has no other
  // thread, so the work runs in one later event-loop turn (setImmediate) and blocks that turn.
  it(
    nativeRequested
      ? 'native: a setImmediate callback runs while a large call is in flight'
      : 'fallback: the work runs in a later turn of the event loop',
    async () => {
      const x = new Float32Array(2048 * 4096).fill(1);
      const order: string[] = [];
      const done = rmsNormAsync(x, null, { dim: 4096 }).then(() => order.push('call'));
      order.push('returned');
      await new Promise<void>((resolve) => setImmediate(() => (order.push('immediate'), resolve())));
      await done;
      expect(order).toEqual(nativeRequested ? ['returned', 'immediate', 'call'] : ['returned', 'call', 'immediate']);
    },
  );
});
