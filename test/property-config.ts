// Settings of the property-based suites (test/property*.test.ts). CI runs them with a fixed seed and few runs,
// once per vitest project; `npm run test:property:long` runs many more with a fresh seed:
//   RMSNORM_PROPERTY_RUNS   runs per property (default 40)
//   RMSNORM_PROPERTY_SEED   the seed (default fixed, so CI is reproducible); fast-check prints the seed and
//                           the path of a failing run, and RMSNORM_PROPERTY_SEED=<seed> reproduces it
import fc from 'fast-check';

export const runs = Number(process.env.RMSNORM_PROPERTY_RUNS ?? 40);
export const seed = Number(process.env.RMSNORM_PROPERTY_SEED ?? 0x5eed0007);
if (!Number.isInteger(runs) || runs < 1)
  throw new Error(`RMSNORM_PROPERTY_RUNS must be a positive integer, got ${process.env.RMSNORM_PROPERTY_RUNS}`);
if (!Number.isInteger(seed))
  throw new Error(`RMSNORM_PROPERTY_SEED must be an integer, got ${process.env.RMSNORM_PROPERTY_SEED}`);

/** fast-check parameters of one property: its own seed (derived from its name), the configured run count. */
export function params(name: string, scale = 1): fc.Parameters<unknown> {
  let h = seed | 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return { seed: h | 0, numRuns: Math.max(1, Math.round(runs * scale)), endOnFailure: true };
}

/** Counts what the properties tried, printed once per file when RMSNORM_PROPERTY_REPORT is set. */
export const tally: Record<string, number> = {};
export function count(what: string, n = 1): void {
  tally[what] = (tally[what] ?? 0) + n;
}
