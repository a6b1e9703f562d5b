// The long property-based run: every property of test/property*.test.ts with many more runs, on every backend,
// with a fresh seed (printed first, so a failure can be reproduced with RMSNORM_PROPERTY_SEED=<seed>).
//   npm run test:property:long                       2000 runs per property, a random seed
//   RMSNORM_PROPERTY_RUNS=10000 RMSNORM_PROPERTY_SEED=42 npm run test:property:long
import { spawnSync } from 'node:child_process';

const runs = process.env.RMSNORM_PROPERTY_RUNS ?? '2000';
const seed = process.env.RMSNORM_PROPERTY_SEED ?? String((Math.random() * 2 ** 31) | 0);
console.log(`property tests: ${runs} runs per property, seed ${seed}`);
const r = spawnSync(
  'npx',
  ['vitest', 'run', 'test/property.test.ts', 'test/property-errors.test.ts', ...process.argv.slice(2)],
  {
    stdio: 'inherit',
    env: { ...process.env, RMSNORM_PROPERTY_RUNS: runs, RMSNORM_PROPERTY_SEED: seed, RMSNORM_PROPERTY_REPORT: '1' },
  },
);
if (r.status !== 0)
  console.log(
    `property tests failed with seed ${seed}: RMSNORM_PROPERTY_SEED=${seed} RMSNORM_PROPERTY_RUNS=${runs} npm run test:property:long`,
  );
process.exit(r.status ?? 1);
