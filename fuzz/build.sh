#!/usr/bin/env bash
# Builds the libFuzzer targets into build-fuzz/ with clang, AddressSanitizer and UndefinedBehaviorSanitizer:
#   kernels_fuzz  native/kernels/*.cc compiled once per instruction set of this architecture, with the addon's
#                 flags (-O3 -ffp-contract=off -fno-math-errno), plus native/cpu.cc to pick the tables the host runs
#   args_fuzz     the argument rules of native/args.h
# Needs clang with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev, or a later version). CXX picks
# the compiler (default: clang++).
set -euo pipefail
cd "$(dirname "$0")/.."

CXX=${CXX:-clang++}
out=build-fuzz
mkdir -p "$out"

san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g)
common=(-std=c++17 -O3 -ffp-contract=off -fno-math-errno -Wall -Wextra "${san[@]}")

# The objects compile in parallel, one job per core. A table this CPU cannot run is never called by the target
# (native/cpu.cc picks only what the host has), but its symbols must link: it is built at -O0, which takes a
# fraction of the time.
jobs=$(nproc 2>/dev/null || echo 2)
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
objs=()
pids=()
waited=0
failed=0
collect() {  # waits for the oldest compile still running
  wait "${pids[$waited]}" || failed=1
  waited=$((waited + 1))
}
compile() {  # output, arguments...
  local o=$1
  shift
  while [ $((${#pids[@]} - waited)) -ge "$jobs" ]; do collect; done
  "$CXX" "$@" -o "$o" &
  pids+=($!)
  objs+=("$o")
}
kernel() {  # name, runs here (1/0), define, extra flags...
  local name=$1 here=$2 define=$3 opt=()
  shift 3
  [ "$here" = 1 ] || opt=(-O0)
  for src in forward backward table; do
    compile "$out/${src}_$name.o" "${common[@]}" "${opt[@]}" -fsanitize=fuzzer-no-link -D"$define" "$@" -c "native/kernels/$src.cc"
  done
}
kernel scalar 1 RMSNORM_TARGET_SCALAR
case "$(uname -m)" in
  x86_64 | amd64)
    avx512=0 avx512bf16=0
    if has avx512f avx512bw avx512dq avx512vl; then avx512=1; fi
    if [ "$avx512" = 1 ] && has avx512_bf16; then avx512bf16=1; fi
    kernel avx2 1 RMSNORM_TARGET_AVX2 -mavx2 -mfma -mf16c
    kernel avx512 "$avx512" RMSNORM_TARGET_AVX512 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl
    kernel avx512bf16 "$avx512bf16" RMSNORM_TARGET_AVX512BF16 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16
    ;;
  aarch64 | arm64)
    kernel neon 1 RMSNORM_TARGET_NEON
    ;;
esac
compile "$out/cpu.o" "${common[@]}" -fsanitize=fuzzer-no-link -c native/cpu.cc
while [ "$waited" -lt ${#pids[@]} ]; do collect; done
[ "$failed" = 0 ] || { echo "fuzz/build.sh: a compile failed" >&2; exit 1; }

"$CXX" "${common[@]}" -fsanitize=fuzzer fuzz/kernels_fuzz.cc "${objs[@]}" -o "$out/kernels_fuzz"
"$CXX" "${common[@]}" -fsanitize=fuzzer fuzz/args_fuzz.cc -o "$out/args_fuzz"
echo "fuzz targets built in $out/: kernels_fuzz args_fuzz"
