// The training modules: parameters, forward/backward through the functional ops, gradient accumulation.
import { describe, expect, it } from 'vitest';
import { LayerNorm, RMSNorm, layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from '../dist/index.js';
import { maxRelError, randomArray } from './reference';

describe('RMSNorm module', () => {
  it('starts with offset + weight = 1 and no bias, like torch.nn.RMSNorm', () => {
    const m = new RMSNorm(6);
    expect(Array.from(m.weight!)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(m.bias).toBeNull();
    expect(m.eps).toBe(1e-5);
    const gemma = new RMSNorm(4, { offset: 1, bias: true, dtype: 'float64' });
    expect(gemma.weight).toBeInstanceOf(Float64Array);
    expect(Array.from(gemma.weight!)).toEqual([0, 0, 0, 0]);
    expect(Array.from(gemma.bias!)).toEqual([0, 0, 0, 0]);
    expect(new RMSNorm(4, { affine: false }).weight).toBeNull();
  });

  it('forward/backward match the functional ops and accumulate gradients until zeroGrad', () => {
    const dim = 16;
    const m = new RMSNorm(dim, { bias: true, partial: 0.5, eps: 1e-6 });
    m.weight!.set(randomArray(Float32Array, dim, 1, 0.5, 1.5));
    m.bias!.set(randomArray(Float32Array, dim, 2));
    const x = randomArray(Float32Array, 3 * dim, 3);
    const dy = randomArray(Float32Array, 3 * dim, 4);
    const y = m.forward(x);
    expect(Array.from(y)).toEqual(
      Array.from(rmsNorm(x, m.weight as Float32Array, { bias: m.bias as Float32Array, partial: 0.5, eps: 1e-6 })),
    );
    const dx = m.backward(dy);
    const ref = rmsNormBackward(dy, x, m.weight as Float32Array, { partial: 0.5, eps: 1e-6 });
    expect(maxRelError(dx, ref.dx)).toBeLessThan(1e-6);
    expect(maxRelError(m.weightGrad!, ref.dweight!)).toBeLessThan(1e-6);
    m.forward(x);
    m.backward(dy);
    expect(
      maxRelError(
        m.weightGrad!,
        ref.dweight!.map((v) => 2 * v),
      ),
    ).toBeLessThan(1e-6);
    expect(
      maxRelError(
        m.biasGrad!,
        ref.dbias.map((v) => 2 * v),
      ),
    ).toBeLessThan(1e-6);
    m.zeroGrad();
    expect(Array.from(m.weightGrad!).every((v) => v === 0)).toBe(true);
    expect(Array.from(m.biasGrad!).every((v) => v === 0)).toBe(true);
  });

  it('learns: gradient descent on the weight lowers a squared error', () => {
    const dim = 32;
    const m = new RMSNorm(dim, { dtype: 'float64' });
    const x = randomArray(Float64Array, 8 * dim, 5);
    const target = rmsNorm(x, randomArray(Float64Array, dim, 6, 0.2, 2));
    const loss = () => {
      const y = m.forward(x);
      return y.reduce((s, v, i) => s + (v - target[i]!) ** 2, 0);
    };
    const first = loss();
    for (let step = 0; step < 50; step++) {
      const y = m.forward(x);
      m.zeroGrad();
      m.backward(y.map((v, i) => 2 * (v - target[i]!)));
      for (let j = 0; j < dim; j++) m.weight![j] = m.weight![j]! - 0.02 * m.weightGrad![j]!;
    }
    expect(loss()).toBeLessThan(first * 0.01);
  });
});

describe('LayerNorm module', () => {
  it('starts with ones and zeros, like torch.nn.LayerNorm', () => {
    const m = new LayerNorm(3);
    expect(Array.from(m.weight!)).toEqual([1, 1, 1]);
    expect(Array.from(m.bias!)).toEqual([0, 0, 0]);
    expect(new LayerNorm(3, { bias: false }).bias).toBeNull();
    expect(new LayerNorm(3, { affine: false }).weight).toBeNull();
  });

  it('forward/backward match the functional ops', () => {
    const dim = 24;
    const m = new LayerNorm(dim, { dtype: 'float64' });
    m.weight!.set(randomArray(Float64Array, dim, 7, 0.5, 1.5));
    const x = randomArray(Float64Array, 4 * dim, 8);
    const dy = randomArray(Float64Array, 4 * dim, 9);
    expect(Array.from(m.forward(x))).toEqual(
      Array.from(layerNorm(x, m.weight as Float64Array, m.bias as Float64Array)),
    );
    const dx = m.backward(dy);
    const ref = layerNormBackward(dy, x, m.weight as Float64Array);
    expect(maxRelError(dx, ref.dx)).toBeLessThan(1e-13);
    expect(maxRelError(m.weightGrad!, ref.dweight!)).toBeLessThan(1e-13);
    expect(maxRelError(m.biasGrad!, ref.dbias)).toBeLessThan(1e-13);
  });
});
