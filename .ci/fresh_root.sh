#!/usr/bin/env bash
# CI stage: proves the README's main-job command works on a bare Debian 12 by running it (on a smaller run) in a fresh
# minbase root built with mmdebstrap, where every package must come from `.ci/run deps-main` itself.
set -euo pipefail
# Usage (as root): .ci/fresh_root.sh [ROOTFS_DIR]      (default: build-fresh-root/rootfs in the repository root)
# The host's CUDA toolkit (/usr/local/cuda), when present, is bind-mounted read-only, so configure finds nvcc as on a
# CUDA machine; ISLKD_FRESH_ROOT_CUDA=off leaves it out (a machine without the toolkit). Logs go next to ROOTFS_DIR:
# main-job.log (the command's output), main-job.ts.log (the same, each line prefixed with the epoch second it arrived)
# and mmdebstrap.log. Downloaded .debs are reused across runs through $ISLKD_FRESH_ROOT_APT_CACHE (default
# /var/cache/islkd-ci/apt-archives, outside the checkout; "none" disables it); nothing depends on that cache.
cd "$(dirname "$0")/.."
ROOT=$PWD
T0=$(date +%s)

die() { echo "fresh-root: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root, mount, chroot)"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing: run .ci/run deps (or apt-get install mmdebstrap)"

RF=$(realpath -m "${1:-$ROOT/build-fresh-root/rootfs}")
# Paths are matched against /proc/mounts (which escapes blanks) and removed with rm -rf: keep them plain and deep.
[[ $RF =~ ^/[A-Za-z0-9._/-]+$ ]] || die "rootfs path '$RF' must be absolute and use only [A-Za-z0-9._/-]"
[ "$(tr -cd / <<<"$RF" | wc -c)" -ge 2 ] || die "rootfs path '$RF' is too close to /"
OUTDIR=$(dirname "$RF")
mkdir -p "$OUTDIR"
LOG=$OUTDIR/main-job.log
TSLOG=$OUTDIR/main-job.ts.log
exec 9>"$OUTDIR/.fresh_root.lock"
flock -n 9 || die "another fresh-root run holds $OUTDIR/.fresh_root.lock"

# ---- mounts ----------------------------------------------------------------------------------------------------------
mounts_under_rf() {  # every mount point at or below $RF, in /proc/mounts order (parents before children)
  awk -v rf="$RF" '$2 == rf || index($2, rf "/") == 1 { print $2 }' /proc/mounts
}
unmount_all() {  # unmounts everything at or below $RF, innermost/newest first; lazily when busy
  local m
  for _ in 1 2 3; do
    local list
    list=$(mounts_under_rf | tac)
    [ -z "$list" ] && return 0
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" || echo "fresh-root: warning: cannot unmount $m" >&2
    done <<<"$list"
  done
  [ -z "$(mounts_under_rf)" ]
}
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

PHASES=()
phase() { PHASES+=("$(printf '  %-22s %5d s' "$1" "$2")"); }
on_exit() {
  local rc=$?
  set +e
  if ! unmount_all; then
    echo "fresh-root: ERROR: mounts left under $RF:" >&2
    mounts_under_rf >&2
    rc=1
  fi
  echo "=== fresh-root: times"
  for p in "${PHASES[@]}"; do echo "$p"; done
  printf '  %-22s %5d s  (exit %d)\n' total $(($(date +%s) - T0)) "$rc"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 0. the README's main-job command --------------------------------------------------------------------------------
# The first line starting with `.ci/run deps-main` in the ```sh block under "**Main job**".
MAIN_CMD=$(awk '
  /^\*\*Main job\*\*/ { inmain = 1; next }
  inmain && !inblock && /^\*\*/ { exit }
  inmain && /^```sh/ { inblock = 1; next }
  inblock && /^```/ { exit }
  inblock && /^\.ci\/run deps-main/ { print; exit }
' README.md)
[ -n "$MAIN_CMD" ] ||
  die "no line starting with '.ci/run deps-main' in the \`\`\`sh block under **Main job** in README.md"
[[ ${MAIN_CMD##*&& } == *train_kd* ]] || die "the main-job command does not end with the train_kd run: '$MAIN_CMD'"
# A smaller run: the extra flags go to train_kd, the chain's last command. ISL needs 3 epochs (warm-up, phase, final).
CMD="$MAIN_CMD --limit 2048 --test-limit 1000 --epochs 3"
echo "fresh-root: README main-job command: $MAIN_CMD"
echo "fresh-root: run in the root as:       $CMD"

# ---- 1. a fresh minbase root -----------------------------------------------------------------------------------------
unmount_all || die "cannot unmount the leftovers under $RF"
if [ -e "$RF" ]; then
  [ -z "$(mounts_under_rf)" ] || die "refusing to remove $RF: something is still mounted in it"
  echo "fresh-root: removing the previous root $RF"
  rm -rf --one-file-system "$RF"
fi

CACHE=${ISLKD_FRESH_ROOT_APT_CACHE:-/var/cache/islkd-ci/apt-archives}
if [ "$CACHE" = none ] || ! mkdir -p "$CACHE/partial" 2>/dev/null; then
  CACHE=""
  echo "fresh-root: no .deb cache: every package is downloaded"
else
  CACHE=$(realpath "$CACHE")
  case "$CACHE/" in "$ROOT"/* | "$RF"/*) die "the .deb cache must live outside the checkout: $CACHE" ;; esac
  echo "fresh-root: .deb cache $CACHE ($(find "$CACHE" -maxdepth 1 -name '*.deb' | wc -l) .debs)"
fi

# The host's mirror (/etc/apt/sources.list.d/debian.sources): deb.debian.org bookworm, bookworm-updates, -security.
MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
MMD_OPTS=(--mode=root --variant=minbase --format=directory)
# The host's apt snippets that apt needs to work with this mirror (it serves a snapshot: no Valid-Until checks).
# They end up in the root's /etc/apt/apt.conf.d/99mmdebstrap.
if [ -f /etc/apt/apt.conf.d/99artifact-registry ]; then
  MMD_OPTS+=(--aptopt=/etc/apt/apt.conf.d/99artifact-registry)
fi
if [ -n "$CACHE" ]; then
  # The cache is bind-mounted over the root's apt archives while mmdebstrap downloads, kept (no unlink after the
  # essential install) and unmounted before mmdebstrap's final `apt-get clean`. On failure the EXIT trap unmounts it.
  MMD_OPTS+=(--skip=essential/unlink
    --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && mount --bind '$CACHE' \"\$1/var/cache/apt/archives\""
    --customize-hook="umount \"\$1/var/cache/apt/archives\"")
fi
echo "=== fresh-root: mmdebstrap"
t=$(date +%s)
mmdebstrap "${MMD_OPTS[@]}" bookworm "$RF" "${MIRRORS[@]}" 2>&1 | tee "$OUTDIR/mmdebstrap.log"
phase mmdebstrap $(($(date +%s) - t))
if [ ! -x "$RF/bin/bash" ] || [ ! -x "$RF/usr/bin/apt-get" ]; then die "mmdebstrap produced no usable root in $RF"; fi

# ---- 2. mounts and host files ----------------------------------------------------------------------------------------
t=$(date +%s)
bind /proc "$RF/proc"   # a bind, not a new procfs: this also works in containers that forbid mounting proc
bind /sys "$RF/sys" ro
bind /dev "$RF/dev"
bind /dev/pts "$RF/dev/pts"
if [ "${ISLKD_FRESH_ROOT_CUDA:-on}" = off ]; then
  echo "fresh-root: ISLKD_FRESH_ROOT_CUDA=off: no CUDA toolkit in the root (a CPU-only machine)"
elif [ -e /usr/local/cuda ]; then
  CUDA_REAL=$(realpath /usr/local/cuda)
  if [ -L /usr/local/cuda ]; then
    # Same layout as the host: the real toolkit at its own path, /usr/local/cuda a link to it.
    bind "$CUDA_REAL" "$RF$CUDA_REAL" ro
    ln -sfn "$(readlink /usr/local/cuda)" "$RF/usr/local/cuda"
  else
    bind "$CUDA_REAL" "$RF/usr/local/cuda" ro
  fi
  echo "fresh-root: CUDA toolkit $CUDA_REAL mounted read-only; /usr/local/cuda/bin/nvcc in the root: $(
    [ -x "$RF/usr/local/cuda/bin/nvcc" ] && echo yes || echo NO)"
else
  echo "fresh-root: no /usr/local/cuda on this machine: the build has no nvcc (CUDA sources not compiled)"
fi
rm -f "$RF/etc/resolv.conf"
cp -L /etc/resolv.conf "$RF/etc/resolv.conf"
if [ -n "$CACHE" ]; then
  if grep -rqs 'archives' "$RF/etc/apt/apt.conf.d/" && grep -rqs 'Post-Invoke' "$RF/etc/apt/apt.conf.d/"; then
    echo "fresh-root: the root's apt config may delete downloaded .debs: not using the cache for the deps"
  else
    bind "$CACHE" "$RF/var/cache/apt/archives"
    printf '%s\n' '// written by .ci/fresh_root.sh: the .debs go to a cache shared across runs; keep them' \
      'APT::Keep-Downloaded-Packages "true";' 'Binary::apt::APT::Keep-Downloaded-Packages "true";' \
      >"$RF/etc/apt/apt.conf.d/99islkd-ci-keep-debs"
  fi
fi

# ---- 3. the clean checkout (the committed tree, no build folders) ----------------------------------------------------
mkdir -p "$RF/work/islkd"
git -C "$ROOT" archive HEAD | tar -x -C "$RF/work/islkd"
echo "fresh-root: checkout $(git -C "$ROOT" rev-parse --short HEAD) copied to /work/islkd in the root"
phase "mounts + checkout" $(($(date +%s) - t))

# ---- 4. the main-job command, inside the root ------------------------------------------------------------------------
stamp() {  # copies stdin to stdout and to $TSLOG, each line there prefixed with the epoch second it arrived
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line"
    printf '%(%s)T %s\n' -1 "$line" >>"$TSLOG"
  done
}
echo "=== fresh-root: main-job command in the root"
: >"$TSLOG"
t_start=$(date +%s)
set +e
chroot "$RF" /usr/bin/env -i HOME=/root CI=true DEBIAN_FRONTEND=noninteractive \
  PATH=/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash -c "cd /work/islkd && $CMD" 2>&1 | tee "$LOG" | stamp
rc=${PIPESTATUS[0]}
set -e
t_end=$(date +%s)

# Phase boundaries from the time-stamped log: configure starts with cmake's first "-- " line; the run starts when
# ninja reports its last edge ("[N/N] ...", printed when the edge finishes) or train_kd's first line.
t_cfg=$(awk '$2 == "--" { print $1; exit }' "$TSLOG")
t_run=$(awk '{ l = substr($0, length($1) + 2) }
  match(l, /^\[[0-9]+\/[0-9]+\] /) {
    split(substr(l, 2, RLENGTH - 3), a, "/"); if (a[1] == a[2]) { print $1; exit } }
  l ~ /^islkd: device / || l ~ /^train_kd/ || l ~ /^ninja: no work to do/ { print $1; exit }' "$TSLOG")
if [ -z "$t_cfg" ]; then
  phase "deps (apt in the root)" $((t_end - t_start))
else
  phase "deps (apt in the root)" $((t_cfg - t_start))
  phase "configure + build" $((${t_run:-$t_end} - t_cfg))
  if [ -n "$t_run" ]; then phase "run train_kd" $((t_end - t_run)); fi
fi
[ "$rc" -eq 0 ] || die "the main-job command failed in the root (exit $rc); see $LOG"

# ---- 5. the result lines ---------------------------------------------------------------------------------------------
missing=()
for m in ce kd isl; do
  grep -Eq "^$m [0-9]+\.[0-9]+\$" "$LOG" || missing+=("$m")
done
[ ${#missing[@]} -eq 0 ] ||
  die "no final line '<method> <accuracy>' (e.g. 'kd 90.61') for: ${missing[*]}; see $LOG"
unmount_all || die "cannot unmount everything under $RF"
echo "=== fresh-root: passed; result lines:"
grep -E '^(ce|kd|isl) [0-9]+\.[0-9]+$' "$LOG"
echo "fresh-root: root size $(du -sh --one-file-system "$RF" | cut -f1) ($RF)"
