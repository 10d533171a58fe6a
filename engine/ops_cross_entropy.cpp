// ops::cross_entropy: mean cross-entropy from logits. The kernel computes the loss and dL/dlogits in one pass;
// the node keeps that gradient and scales it by the upstream gradient in backward.
#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

Tensor cross_entropy(const Tensor& logits_in, const Tensor& labels) {
  Tensor x = logits_in.to_plain();
  check_dim("cross_entropy", "logits", x, 2);
  ISLKD_CHECK(x.dtype() == DType::F32, "cross_entropy: logits must be float32");
  ISLKD_CHECK(labels.defined() && labels.dtype() == DType::I32, "cross_entropy: labels must be an int32 tensor");
  check_shape("cross_entropy", "labels", labels, {x.size(0)});
  check_same_device("cross_entropy", {&x, &labels});
  ISLKD_CHECK(x.size(0) > 0 && x.size(1) > 0, "cross_entropy: empty logits ", shape_str(x.shape()));
  const int64_t M = x.size(0), C = x.size(1);
  const bool grad = needs_grad({&x});
  Tensor dlogits = grad ? Tensor::empty(x.shape(), x.device()) : Tensor();
  float* dp = grad ? dlogits.data() : nullptr;
  float loss = x.is_cuda() ? cuda::cross_entropy_forward_backward(M, C, x.data(), labels.data_i32(), nullptr, dp)
                           : cpu::cross_entropy_forward_backward(M, C, x.data(), labels.data_i32(), nullptr, dp);
  Tensor y = Tensor::full({1}, loss, x.device());
  if (grad) {
    record("cross_entropy", {x}, {y}, [x, dlogits](const std::vector<Tensor>& g) {
      const float go = g[0].item();
      if (go == 1.0f) {
        accumulate_grad(x, dlogits);
        return;
      }
      Tensor dx = Tensor::empty(x.shape(), x.device());
      if (x.is_cuda())
        cuda::scale(dlogits.data(), go, dx.data(), x.numel());
      else
        cpu::scale(dlogits.data(), go, dx.data(), x.numel());
      accumulate_grad(x, dx);
    });
  }
  return y;
}

}  // namespace islkd::ops
