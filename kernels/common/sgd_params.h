// Arguments of the fused multi-tensor SGD update kernel (CPU and CUDA): the tensors and the step's settings.
#pragma once
#include <cstdint>

namespace islkd {

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
