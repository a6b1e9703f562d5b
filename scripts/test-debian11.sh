#!/usr/bin/env bash
# The linux prebuilds on Debian 11 (bullseye: glibc 2.31 and GCC 10's libstdc++, GLIBCXX_3.4.28, older than
# the GCC 12 that builds them), with the official Node.js binaries of this Node.js's major version:
#   scripts/test-debian11.sh setup   a minimal Debian 11 x64 chroot and an arm64 root for qemu, made with
#                                    debootstrap (~1 min; apt-get install debootstrap qemu-user)
#   scripts/test-debian11.sh x64     the native vitest projects of this CPU inside the chroot, loading
#                                    prebuilds/linux-x64/rmsnorm.napi.glibc.node (RMSNORM_BINARY)
#   scripts/test-debian11.sh arm64   scripts/test-arm64.mjs (every kernel of the linux-arm64 prebuild against
#                                    the float64 reference) under qemu-aarch64 with Debian 11 as its root
# The roots live in RMSNORM_DEBIAN11 (default /tmp/rmsnorm-debian11). Needs root (chroot, mount).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${RMSNORM_DEBIAN11:-/tmp/rmsnorm-debian11}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

case ${1:-} in
  setup)
    mkdir -p "$base"
    [ -x "$base/x64/bin/bash" ] || debootstrap --variant=minbase bullseye "$base/x64" "$mirror" >"$base/x64.log" 2>&1 ||
      { tail -20 "$base/x64.log"; exit 1; }
    # --foreign: only unpacked, which is all qemu needs; musl's package comes along for scripts/test-musl.sh.
    [ -e "$base/arm64/lib/aarch64-linux-gnu/libc.so.6" ] ||
      debootstrap --arch=arm64 --foreign --variant=minbase --include=musl bullseye "$base/arm64" "$mirror" >"$base/arm64.log" 2>&1 ||
      { tail -20 "$base/arm64.log"; exit 1; }
    printf '127.0.0.1 localhost\n::1 localhost\n' >"$base/x64/etc/hosts" # vitest listens on localhost
    mkdir -p "$base/x64/opt/node/bin"
    cp "$(scripts/fetch-node.sh linux-x64)" "$base/x64/opt/node/bin/node"
    echo "Debian 11 roots ready in $base"
    ;;
  x64)
    shift
    root=$base/x64
    [ -x "$root/opt/node/bin/node" ] || { echo "no Debian 11 chroot in $root: run $0 setup" >&2; exit 1; }
    binary=$PWD/prebuilds/linux-x64/rmsnorm.napi.glibc.node
    [ -f "$binary" ] || { echo "$binary is missing: npm run prebuilds" >&2; exit 1; }
    # The repository at the same path inside the chroot, so every absolute path (node_modules, the binary) holds.
    # The native projects of the kernels this CPU runs (a project for an instruction set the CPU lacks would
    # run its best one again), unless vitest arguments name others.
    projects=(--project scalar --project avx2)
    grep -qw avx512bw /proc/cpuinfo && projects+=(--project avx512)
    grep -qw avx512_bf16 /proc/cpuinfo && projects+=(--project avx512bf16)
    mkdir -p "$root$PWD"
    cleanup() { umount "$root$PWD" 2>/dev/null || true; umount "$root/dev" 2>/dev/null || true; umount "$root/proc" 2>/dev/null || true; }
    trap cleanup EXIT
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
    mountpoint -q "$root$PWD" || mount --bind "$PWD" "$root$PWD"
    chroot "$root" /usr/bin/env -i PATH=/opt/node/bin:/usr/bin:/bin HOME=/root CI=1 NO_COLOR=1 RMSNORM_BINARY="$binary" \
      bash -c 'cd "$1" && shift && echo "Debian $(cat /etc/debian_version), glibc $(ldd --version | head -1 | grep -o "[0-9.]*$"), libstdc++ up to $(grep -ao "GLIBCXX_3\.4\.[0-9]*" /usr/lib/x86_64-linux-gnu/libstdc++.so.6 | sort -uV | tail -1), Node.js $(node -v)" &&
        node node_modules/vitest/vitest.mjs run "$@"' bash "$PWD" "${projects[@]}" "$@"
    ;;
  arm64)
    root=$base/arm64
    [ -e "$root/lib/aarch64-linux-gnu/libc.so.6" ] || { echo "no Debian 11 arm64 root in $root: run $0 setup" >&2; exit 1; }
    echo "Debian $(cat "$root/etc/debian_version") arm64, $(basename "$(readlink -f "$root/lib/aarch64-linux-gnu/libc.so.6")")"
    RMSNORM_CROSS_SYSROOT=$root node scripts/test-arm64.mjs
    ;;
  *)
    echo "usage: $0 setup|x64 [vitest args]|arm64" >&2
    exit 2
    ;;
esac
