// Plain shape descriptors shared by the CPU and CUDA kernel APIs (kernels take raw pointers + these).
#pragma once
#include <cstdint>

namespace islkd {

// 2-D convolution, NCHW activations, KCRS weights (K out channels, C/groups in channels per group).
struct Conv2dShape {
  int64_t N = 1, C = 1, H = 1, W = 1;  // input
  int64_t K = 1, R = 1, S = 1;         // output channels, kernel height, kernel width
  int64_t stride = 1, pad = 0, groups = 1;
  int64_t OH() const { return (H + 2 * pad - R) / stride + 1; }
  int64_t OW() const { return (W + 2 * pad - S) / stride + 1; }
};

// Max / average pooling window (square), NCHW.
struct Pool2dShape {
  int64_t N = 1, C = 1, H = 1, W = 1;
  int64_t kernel = 2, stride = 2, pad = 0;
  int64_t OH() const { return (H + 2 * pad - kernel) / stride + 1; }
  int64_t OW() const { return (W + 2 * pad - kernel) / stride + 1; }
};

}  // namespace islkd
