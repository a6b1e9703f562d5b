#!/usr/bin/env bash
# A fuzzing campaign: builds the targets (fuzz/build.sh), then runs each for the given number of seconds
# (default 30 for kernels_fuzz and half that for args_fuzz) on its corpus in build-fuzz/corpus/, which grows
# from run to run. Prints each target's executions and exits non-zero on the first failure, with the input
# that failed saved in build-fuzz/artifacts/ (replay it: build-fuzz/<target> <file>).
#   fuzz/run.sh            CI's short campaign
#   fuzz/run.sh 1800       a longer one (npm run fuzz:long)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
fuzz/build.sh >/dev/null
mkdir -p build-fuzz/artifacts

status=0
run() {  # target, seconds
  local target=$1 time=$2 log
  log=build-fuzz/$target.log
  mkdir -p "build-fuzz/corpus/$target"
  if "build-fuzz/$target" -max_total_time="$time" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/ "build-fuzz/corpus/$target" >"$log" 2>&1; then
    local runs corpus
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    corpus=$(find "build-fuzz/corpus/$target" -type f | wc -l)
    echo "fuzz $target: ${runs:-?} executions in ${time} s, corpus ${corpus} inputs, no failure"
  else
    echo "fuzz $target: FAILED (log: $log)"
    grep -E -A6 '^(kernels_fuzz|args_fuzz):|ERROR: |runtime error' "$log" | head -40
    status=1
  fi
}
run kernels_fuzz "$seconds"
run args_fuzz "$(((seconds + 1) / 2))"
exit "$status"
