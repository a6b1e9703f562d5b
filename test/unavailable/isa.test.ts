// The project of an instruction set this CPU lacks (see vitest.config.mts): the suite is not run again under
// another kernel's name. This file checks that the CPU indeed lacks it and reports the suite as skipped.
import { describe, expect, it } from 'vitest';
import { requested, supportedIsas } from '../setup';

const supported = supportedIsas();
const missing = !supported.includes(requested);

describe(`${requested} kernels`, () => {
  it('are not among the instruction sets this CPU runs', () => {
    expect(supported.length).toBeGreaterThan(0);
    expect(supported).not.toContain(requested);
  });

  it.skipIf(missing)(`whole suite skipped: this CPU lacks ${process.env.RMSNORM_TEST_REQUIRES}`, () => {
    expect(supported).toContain(requested);
  });
});
