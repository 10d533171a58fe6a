// ops::softmax: row-wise probabilities of an M x C tensor. Forward only (metrics, inference): the result never
// carries a gradient; losses use the fused cross_entropy / kd_loss ops instead.
#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

Tensor softmax(const Tensor& x_in) {
  Tensor x = x_in.to_plain();
  check_dim("softmax", "input", x, 2);
  ISLKD_CHECK(x.dtype() == DType::F32, "softmax: input must be float32");
  Tensor y = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda())
    cuda::softmax_forward(x.size(0), x.size(1), x.data(), y.data());
  else
    cpu::softmax_forward(x.size(0), x.size(1), x.data(), y.data());
  return y;
}

}  // namespace islkd::ops
