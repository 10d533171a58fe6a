#!/usr/bin/env bash
# Tests the GPU check's bundle where nothing of this machine's build is installed: a fresh Debian 12 minbase root
# (mmdebstrap, + xz-utils to unpack) with only the CUDA toolkit bind-mounted read-only (as on the GPU machine,
# which has its toolkit) and a copy of bench/gpu/check, bench/pytorch_baseline.py and build-gpu-bundle/. Runs
# `bench/gpu/check` there: the bundle must unpack, its binaries must load with the bundled libraries (no oneDNN,
# OpenBLAS or OpenMP in the root), and check must print its plan and stop at "no GPU" with exit 0.
# Usage (as root, after bench/gpu/bundle): bench/gpu/fresh_root_check.sh [ROOTFS_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RF=$(realpath -m "${1:-$ROOT/build-gpu-fresh-root/rootfs}")
die() { echo "gpu-fresh-root: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root, mount, chroot)"
[ -f build-gpu-bundle/islkd-gpu-bundle.tar.xz ] || die "no bundle: run bench/gpu/bundle first"
[[ $RF =~ ^/[A-Za-z0-9._/-]+$ ]] && [ "$(tr -cd / <<<"$RF" | wc -c)" -ge 2 ] || die "rootfs path '$RF' unsafe"

mounts_under_rf() { awk -v rf="$RF" '$2 == rf || index($2, rf "/") == 1 { print $2 }' /proc/mounts; }
cleanup() {
  local rc=$? m
  set +e
  for m in $(mounts_under_rf | tac); do umount "$m" 2>/dev/null || umount -l "$m"; done
  if [ -n "$(mounts_under_rf)" ]; then echo "gpu-fresh-root: ERROR: mounts left under $RF" >&2; rc=1; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -n "$(mounts_under_rf)" ] && die "mounts already under $RF"
rm -rf "$RF"
mkdir -p "$(dirname "$RF")"
MMD_OPTS=(--mode=root --variant=minbase --format=directory --include=xz-utils)
[ -f /etc/apt/apt.conf.d/99artifact-registry ] && MMD_OPTS+=(--aptopt=/etc/apt/apt.conf.d/99artifact-registry)
mmdebstrap "${MMD_OPTS[@]}" bookworm "$RF" "deb http://deb.debian.org/debian bookworm main" \
  >"$(dirname "$RF")/mmdebstrap.log" 2>&1 || { tail -20 "$(dirname "$RF")/mmdebstrap.log"; die "mmdebstrap failed"; }

mkdir -p "$RF/repo/bench/gpu" "$RF/proc" "$RF/dev"
cp bench/gpu/check "$RF/repo/bench/gpu/"
cp bench/pytorch_baseline.py "$RF/repo/bench/"
cp -r build-gpu-bundle "$RF/repo/"
rm -rf "$RF/repo/build-gpu-bundle/run" "$RF/repo/build-gpu-bundle/results"
mount --bind /proc "$RF/proc"
mount --bind /dev "$RF/dev"
if [ -e /usr/local/cuda ]; then
  CUDA_REAL=$(readlink -f /usr/local/cuda)
  mkdir -p "$RF$CUDA_REAL"
  mount --bind "$CUDA_REAL" "$RF$CUDA_REAL"
  mount -o remount,bind,ro "$RF$CUDA_REAL"
  [ "$CUDA_REAL" != /usr/local/cuda ] && ln -sfn "$CUDA_REAL" "$RF/usr/local/cuda"
fi

OUT=$(chroot "$RF" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c 'cd /repo && bench/gpu/check' 2>&1) ||
  { echo "$OUT"; die "check failed in the fresh root"; }
echo "$OUT"
grep -q "^check: no GPU" <<<"$OUT" || die "check did not stop at 'no GPU'"
grep -q "no usable CUDA device" <<<"$OUT" || die "the gpu test binary did not load and report the missing device"
grep -q "gpu-tests" <<<"$OUT" || die "check did not print its plan"
echo "gpu-fresh-root: bundle unpacked, binaries load, check stopped at 'no GPU'"
