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

// Knowledge-distillation loss settings (Hinton): total = alpha * T^2 * KL(p_t^T || p_s^T) + (1 - alpha) * CE(s, y).
struct KDLossParams {
  float temperature = 4.0f;
  float alpha = 0.9f;
};

// Per-instance difficulty measures used by the ISL curriculum (lower = easier).
enum class DifficultyMeasure : int { CE = 0, KD = 1, Loss = 2, Confidence = 3 };

// One parameter tensor handed to the fused multi-tensor SGD update.
struct SGDTensor {
  float* param;
  const float* grad;
  float* momentum_buf;  // may be null when momentum == 0
  int64_t n;
};

struct SGDParams {
  float lr = 0.1f, momentum = 0.9f, weight_decay = 5e-4f, dampening = 0.0f;
  bool nesterov = false;
  bool first_step = false;  // PyTorch semantics: on the first step the buffer is set to the gradient
};

}  // namespace islkd
