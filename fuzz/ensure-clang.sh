#!/usr/bin/env bash
# Makes sure clang++ with libFuzzer and the sanitizer runtimes is installed, installing it with apt-get
# (Debian/Ubuntu, as root) when it is not: the clang package and the compiler-rt package of its version.
set -euo pipefail

probe() {
  local dir
  dir=$(mktemp -d)
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$dir/t.cc"
  clang++ -fsanitize=fuzzer,address,undefined "$dir/t.cc" -o "$dir/t" >/dev/null 2>&1
  local ok=$?
  rm -rf "$dir"
  return $ok
}

if command -v clang++ >/dev/null 2>&1 && probe; then exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "clang with libFuzzer is missing and apt-get is not available" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq clang >/dev/null
version=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
apt-get install -y -qq "libclang-rt-$version-dev" >/dev/null 2>&1 || true  # a separate package since LLVM 14
probe || { echo "clang $version installed, but it cannot build a libFuzzer target with ASan and UBSan" >&2; exit 1; }
echo "installed clang $version with libFuzzer"
