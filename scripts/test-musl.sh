#!/usr/bin/env bash
# Load check of the musl prebuilds (linuxmusl-x64, linuxmusl-arm64), for want of a musl Node.js on this machine:
# test/package/musl-host/host.c, built with the zig toolchain against stubs of every Node-API function, dlopens
# each under musl's own dynamic loader (Debian's musl package; for arm64 the same package of Debian 11's
# arm64 archive, under qemu-aarch64). It fails when the loader refuses a binary (a missing library or symbol,
# a glibc-only symbol version, a broken TLS model) or a static initialiser crashes.
#   scripts/test-musl.sh            both (needs: apt-get install musl qemu-user; the arm64 musl package is
#                                   taken from the Debian 11 arm64 sysroot of scripts/test-debian11.sh, else
#                                   downloaded from deb.debian.org)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zig=$(node --input-type=module -e "import { zigPath } from './scripts/prebuild.mjs'; console.log(zigPath())")
export ZIG_GLOBAL_CACHE_DIR=${ZIG_GLOBAL_CACHE_DIR:-$(dirname "$zig")/cache}

# One stub per Node-API function of every version: each returns napi_generic_failure.
node -e "
  const s = require('node-api-headers').symbols;
  const names = new Set(Object.values(s).flatMap((v) => [...v.js_native_api_symbols, ...v.node_api_symbols]));
  console.log([...names].sort().map((n) => 'int ' + n + '(void) { return 9; }').join('\n'));
" >"$work/napi_stubs.c"

status=0
check() {  # target zig-target musl's-libc.so file runner...
  local target=$1 ztarget=$2 libc=$3 file=$4
  shift 4
  if [ ! -f "$file" ]; then echo "FAIL $target: $file is missing (npm run prebuilds -- --target $target)"; status=1; return; fi
  # Linked against musl's own libc.so, which makes it a dynamic executable whose interpreter is musl's loader
  # (zig alone would link it statically, and a static program cannot dlopen).
  "$zig" cc -target "$ztarget" -O1 -rdynamic -o "$work/host-$target" test/package/musl-host/host.c "$work/napi_stubs.c" "$libc"
  if ! "$@" "$work/host-$target" "$file"; then echo "FAIL $target: $file"; status=1; fi
}

if [ -x /lib/ld-musl-x86_64.so.1 ]; then
  check linuxmusl-x64 x86_64-linux-musl /lib/x86_64-linux-musl/libc.so prebuilds/linux-x64/rmsnorm.napi.musl.node
else
  echo "FAIL linuxmusl-x64: no /lib/ld-musl-x86_64.so.1 (Debian: apt-get install musl)"; status=1
fi

# musl for arm64: Debian's package, unpacked into a directory that qemu-aarch64 uses as its root.
sysroot=${RMSNORM_DEBIAN11:-/tmp/rmsnorm-debian11}/arm64
deb=$(ls "$sysroot"/var/cache/apt/archives/musl_*_arm64.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  deb="$work/musl_arm64.deb"
  curl -fsSL -o "$deb" "https://deb.debian.org/debian/pool/main/m/musl/musl_1.2.2-1_arm64.deb" || deb=""
fi
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
if [ -n "$deb" ] && [ -n "$qemu" ]; then
  mkdir -p "$work/musl-arm64"
  dpkg-deb -x "$deb" "$work/musl-arm64"
  # The loader is a symlink to an absolute path, which would lead out of qemu's root: make it the file itself.
  cp --remove-destination "$work/musl-arm64/lib/aarch64-linux-musl/libc.so" "$work/musl-arm64/lib/ld-musl-aarch64.so.1"
  check linuxmusl-arm64 aarch64-linux-musl "$work/musl-arm64/lib/aarch64-linux-musl/libc.so" \
    prebuilds/linux-arm64/rmsnorm.napi.musl.node "$qemu" -L "$work/musl-arm64"
else
  echo "FAIL linuxmusl-arm64: needs qemu-aarch64 and Debian's musl package for arm64"; status=1
fi
exit "$status"
