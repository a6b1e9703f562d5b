#!/usr/bin/env bash
# Builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/Release/rmsnorm.node
# (the same CMakeLists.txt and flags as `npm run build:native`, plus the sanitizers). Node itself is not
# instrumented, so the ASan runtime must be preloaded; scripts/test-sanitized.sh does that and runs the whole
# vitest suite against this build.
set -euo pipefail
cd "$(dirname "$0")/.."

flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
# cmake-js passes its own CMAKE_CXX_FLAGS after ours, so the sanitizers go in the Release configuration's flags,
# which it leaves alone.
# RMSNORM_PORTABLE_GLIBC=OFF: the shipped binaries link a private libstdc++, whose operator new and delete
# the sanitizer could not see.
# -O1 (RMSNORM_OPT), as ASan's documentation advises: the same code instrumented, in a third of -O3's compile time.
npx cmake-js compile --out build-asan --CDRMSNORM_PORTABLE_GLIBC=OFF --CDRMSNORM_OPT=-O1 \
  --CDCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG $flags" \
  --CDCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"

# Make sure the code is instrumented, not merely linked against the runtimes.
binary=build-asan/Release/rmsnorm.node
undefined=$(nm -D --undefined-only "$binary")
for symbol in __asan_report_store __ubsan_handle_; do
  if ! grep -q "$symbol" <<<"$undefined"; then
    echo "$binary is not instrumented (no $symbol* references)" >&2
    exit 1
  fi
done
echo "sanitized addon: $binary"
