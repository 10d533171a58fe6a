#!/bin/sh
# CUDA compiler launcher for islkd_cuda: runs the nvcc command, keeps ptxas's -v resource report of the .cu in
# <report-dir>/<file>.cu.txt, and passes every other diagnostic through to the build log.
# usage: ptxas_capture.sh <report-dir> <nvcc> <args...>
dir=$1
shift
src=
for a in "$@"; do
  case "$a" in *.cu) src=$a ;; esac
done
mkdir -p "$dir"
log="$dir/$(basename "${src:-unknown.cu}").txt"
"$@" 2>"$log.tmp"
rc=$?
grep -v -e '^ptxas info' -e '^ *[0-9]* bytes stack frame' "$log.tmp" >&2
mv "$log.tmp" "$log"
exit $rc
