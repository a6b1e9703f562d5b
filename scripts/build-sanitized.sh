#!/usr/bin/env bash
# Builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/Release/rmsnorm.node
# (the same CMakeLists.txt and flags as `npm run build:native`, plus the sanitizers). Node itself is not
# instrumented, so the ASan runtime must be preloaded; scripts/test-sanitized.sh does that and runs the whole
# vitest suite against this build.
set -euo pipefail
cd "$(dirname "$0")/.."

flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
npx cmake-js compile --out build-asan \
  --CDCMAKE_CXX_FLAGS="$flags" \
  --CDCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
echo "sanitized addon: build-asan/Release/rmsnorm.node"
