// Fused multi-tensor SGD step (weight decay, momentum with dampening, Nesterov) with torch.optim.SGD semantics.
//
// One pass per tensor: each element reads param, grad and the momentum buffer once and writes param and buffer
// once (12 bytes read, 8 written per element with momentum), so the update is memory-bound; OpenMP splits large
// tensors, small ones (BN scales, biases) run on one thread because a fork/join costs more than the loop.
// The arithmetic order follows PyTorch's (d = g + wd*p; buf = m*buf + (1-damp)*d; d = d + m*buf or buf;
// p = p - lr*d) so results agree with torch.optim.SGD to rounding. On the first step the buffer is the
// gradient itself (no dampening), as in PyTorch.
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;

void sgd_update_one(const SGDTensor& t, const SGDParams& p) {
  float* __restrict param = t.param;
  const float* __restrict grad = t.grad;
  float* __restrict buf = t.momentum_buf;
  const int64_t n = t.n;
  const float lr = p.lr, wd = p.weight_decay, m = p.momentum, keep = 1.0f - p.dampening;
  if (m == 0.0f || buf == nullptr) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float d = grad[i];
      if (wd != 0.0f) d = d + wd * param[i];
      param[i] = param[i] - lr * d;
    }
    return;
  }
  const bool first = p.first_step, nesterov = p.nesterov;
#pragma omp parallel for if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float d = grad[i];
    if (wd != 0.0f) d = d + wd * param[i];
    float b = first ? d : m * buf[i] + keep * d;
    buf[i] = b;
    d = nesterov ? d + m * b : b;
    param[i] = param[i] - lr * d;
  }
}
}  // namespace

void sgd_update(const std::vector<SGDTensor>& tensors, const SGDParams& p) {
  for (const SGDTensor& t : tensors) sgd_update_one(t, p);
}

}  // namespace islkd::cpu
