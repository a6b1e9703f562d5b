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

objs=()
kernel() {  # name, define, extra flags...
  local name=$1 define=$2
  shift 2
  for src in forward backward table; do
    "$CXX" "${common[@]}" -fsanitize=fuzzer-no-link -D"$define" "$@" -c "native/kernels/$src.cc" -o "$out/${src}_$name.o"
    objs+=("$out/${src}_$name.o")
  done
}
kernel scalar RMSNORM_TARGET_SCALAR
case "$(uname -m)" in
  x86_64 | amd64)
    kernel avx2 RMSNORM_TARGET_AVX2 -mavx2 -mfma -mf16c
    kernel avx512 RMSNORM_TARGET_AVX512 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl
    kernel avx512bf16 RMSNORM_TARGET_AVX512BF16 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16
    ;;
  aarch64 | arm64)
    kernel neon RMSNORM_TARGET_NEON
    ;;
esac
"$CXX" "${common[@]}" -fsanitize=fuzzer-no-link -c native/cpu.cc -o "$out/cpu.o"

"$CXX" "${common[@]}" -fsanitize=fuzzer fuzz/kernels_fuzz.cc "${objs[@]}" "$out/cpu.o" -o "$out/kernels_fuzz"
"$CXX" "${common[@]}" -fsanitize=fuzzer fuzz/args_fuzz.cc -o "$out/args_fuzz"
echo "fuzz targets built in $out/: kernels_fuzz args_fuzz"
