#!/bin/sh
# Builds the libFuzzer targets of the binary parsers with clang-14 (ASan + UBSan) in their own build dir and runs
# each for a fixed number of inputs from a small seed corpus. CI calls this; it takes a few minutes on 2 cores.
# usage: tests/fuzz/run_fuzzers.sh [build-dir] [runs]
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build-fuzz}
runs=${2:-20000}
CC=${CC_FUZZ:-clang-14}
CXX=${CXX_FUZZ:-clang++-14}

# Only the parsers and their fuzz targets are built: no CUDA, tests or benchmarks.
mkdir -p "$build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
  -DISLKD_FUZZ=ON -DISLKD_CUDA=OFF -DISLKD_TESTS=OFF -DISLKD_BENCH=OFF >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2 --target fuzzers

corpus=$build/fuzz-corpus
rm -rf "$corpus"
/usr/bin/python3 "$src/tests/fuzz/make_seeds.py" "$corpus"

status=0
for name in idx cifar mat image safetensors toml; do
  work=$build/fuzz-work-$name
  rm -rf "$work" && mkdir -p "$work"
  cp "$corpus/$name"/* "$work/"
  echo "== fuzz_$name: $runs runs"
  if ! (cd "$build" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "./tests/fuzz/fuzz_$name" -runs="$runs" -seed=1 -max_len=16384 -rss_limit_mb=2048 \
        -artifact_prefix="$build/crash-$name-" "$work" 2>"$build/fuzz_$name.log"); then
    echo "fuzz_$name FAILED; log: $build/fuzz_$name.log"
    tail -40 "$build/fuzz_$name.log"
    status=1
  else
    grep -E "DONE|^Done" "$build/fuzz_$name.log"
  fi
done
exit $status
