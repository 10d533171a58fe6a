// ops::global_avg_pool: N x C x H x W -> N x C means, with its broadcasting backward.
#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

Tensor global_avg_pool(const Tensor& x_in) {
  Tensor x = x_in.to_plain();
  check_dim("global_avg_pool", "input", x, 4);
  ISLKD_CHECK(x.dtype() == DType::F32, "global_avg_pool: input must be float32");
  const int64_t NC = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
  ISLKD_CHECK(HW > 0, "global_avg_pool: empty planes in input ", shape_str(x.shape()));
  Tensor y = Tensor::empty({x.size(0), x.size(1)}, x.device());
  if (x.is_cuda())
    cuda::global_avg_pool_forward(NC, HW, x.data(), y.data());
  else
    cpu::global_avg_pool_forward(NC, HW, x.data(), y.data());
  if (needs_grad({&x})) {
    record("global_avg_pool", {x}, {y}, [x, NC, HW](const std::vector<Tensor>& g) {
      const Tensor dy = g[0].to_plain();
      Tensor dx = Tensor::empty(x.shape(), x.device());
      if (x.is_cuda())
        cuda::global_avg_pool_backward(NC, HW, dy.data(), dx.data());
      else
        cpu::global_avg_pool_backward(NC, HW, dy.data(), dx.data());
      accumulate_grad(x, dx);
    });
  }
  return y;
}

}  // namespace islkd::ops
