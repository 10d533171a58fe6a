// The convolution benchmarks' argument convention, shared by the CPU (oneDNN) and CUDA (cuDNN) microbenchmarks:
// Args N, C, H (square), K, kernel, stride; pad = kernel / 2. And the FLOPs one such convolution does.
#pragma once
#include <benchmark/benchmark.h>

#include "kernels/common/shapes.h"

namespace islkd::bench {

inline Conv2dShape conv_shape(benchmark::State& st) {
  Conv2dShape s;
  s.N = st.range(0), s.C = st.range(1), s.H = s.W = st.range(2), s.K = st.range(3);
  s.R = s.S = st.range(4), s.stride = st.range(5), s.pad = s.R / 2;
  return s;
}
inline double conv_flops(const Conv2dShape& s) { return 2.0 * s.N * s.K * s.OH() * s.OW() * s.C * s.R * s.S; }

}  // namespace islkd::bench
