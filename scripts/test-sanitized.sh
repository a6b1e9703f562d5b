#!/usr/bin/env bash
# Runs the vitest suite against the ASan + UBSan build of the addon (scripts/build-sanitized.sh builds it),
# with the ASan runtime preloaded since node is not instrumented. Fails when any test fails or when either
# sanitizer reports anything (reports go to files, so none can be lost in a child's stderr).
# - Every native backend project (not 'js', which runs no native code): RMSNORM_BINARY makes the loader, in
#   every test process, worker thread and child process, load the sanitized file.
# - The 'package' project tests how the loader finds binaries, including with no binary at all, so it runs
#   without RMSNORM_BINARY, in a copy of the package whose build/Release holds the sanitized file.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="$PWD/build-asan/Release/rmsnorm.node"
[ -f "$binary" ] || scripts/build-sanitized.sh
asan_runtime=$(ldd "$binary" | awk '/libasan/ { print $3 }')
[ -n "$asan_runtime" ] || { echo "no ASan runtime linked into $binary" >&2; exit 1; }

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
status=0
# detect_leaks=0: node itself is not instrumented and keeps allocations until exit, which LeakSanitizer
# would report as leaks; leaks of the addon are measured by scripts/leak-check.mjs and scripts/valgrind.sh.
export LD_PRELOAD="$asan_runtime"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
RMSNORM_BINARY="$binary" npx vitest run --project='avx*' --project=neon --project=scalar "$@" || status=$?

copy=$(mktemp -d "$PWD/.sanitized-package-XXXXXX")
trap 'rm -rf "$logs" "$copy"' EXIT
# What the package tests pack and install (test/package/install.test.ts): the sources and scripts the tarball
# ships or builds its prebuilds with, and the prebuilds already built (else it builds them in the copy).
cp -r dist lib test package.json vitest.config.mts tsconfig.json binding.d.ts README.md CMakeLists.txt cmake native scripts .prettierrc.json .clang-format "$copy/"
if [ -d prebuilds ]; then cp -r prebuilds "$copy/"; fi
ln -s "$PWD/node_modules" "$copy/node_modules"
mkdir -p "$copy/build/Release"
cp "$binary" "$copy/build/Release/rmsnorm.node"
(cd "$copy" && env -u RMSNORM_BINARY npx vitest run --project=package --passWithNoTests "$@") || status=$?

reports=$(find "$logs" -type f | wc -l)
if [ "$reports" -gt 0 ]; then
  echo "sanitizers: $reports report(s):"
  for f in "$logs"/*; do echo "== $f"; head -60 "$f"; done
  status=1
else
  echo "sanitizers: no ASan or UBSan report"
fi
exit "$status"
