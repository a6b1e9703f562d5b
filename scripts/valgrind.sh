#!/usr/bin/env bash
# Valgrind memcheck of the addon, on demand (slow: ~50 times slower than a normal run): every op, sync and
# async, failing calls included (scripts/leak-check.mjs with small counts), once per instruction set valgrind
# can run (it has no AVX-512, so avx2 and scalar). Fails on any memcheck error (invalid reads or writes, use
# of uninitialised values, bad frees; scripts/valgrind.supp silences a known one of node itself) and on any
# definitely lost block.
#   scripts/valgrind.sh            3000 sync and 300 async calls per instruction set
#   scripts/valgrind.sh 20000 2000
# Needs valgrind (Debian: apt-get install valgrind) and the addon built (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."

sync=${1:-3000}
async=${2:-300}
status=0
for isa in avx2 scalar; do
  log=$(mktemp)
  if RMSNORM_BACKEND=native RMSNORM_ISA=$isa valgrind --tool=memcheck --smc-check=all-non-file \
    --suppressions=scripts/valgrind.supp --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=40 --error-exitcode=99 \
    node --expose-gc scripts/leak-check.mjs --sync "$sync" --async "$async" --limit 1000 >"$log" 2>&1; then
    echo "valgrind ($isa): $(grep -o 'ERROR SUMMARY: .*' "$log"); $(grep -o 'definitely lost: .*' "$log" || echo 'no leak summary')"
  else
    echo "valgrind ($isa): FAILED"
    grep -v '^==[0-9]*== *$' "$log" | tail -80
    status=1
  fi
  rm -f "$log"
done
exit "$status"
