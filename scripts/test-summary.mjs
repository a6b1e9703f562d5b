// Prints the one-line summary CI reads ("N passed, N failed") from vitest's JSON report, plus the other checks
// of .ci/run when given (--checks-passed N --checks-failed M). Exits non-zero when the report is missing or
// shows no test at all, or when anything failed.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args.splice(i, 2)[1]) || 0 : 0;
};
const checksPassed = option('--checks-passed');
const checksFailed = option('--checks-failed');
const file = args[0] ?? '.vitest-report.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (error) {
  console.log(`${checksPassed} passed, ${checksFailed + 1} failed`);
  console.error(`no test report at ${file}: ${error.message}`);
  process.exit(1);
}
const tests = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + (report.numFailedTestSuites ?? 0) + checksFailed;
console.log(`${tests + checksPassed} passed, ${failed} failed`);
process.exit(tests > 0 && failed === 0 ? 0 : 1);
