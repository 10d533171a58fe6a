// ops::avg_pool2d (count_include_pad=true) and ops::global_avg_pool: checks, dispatch, autograd.
#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

Tensor avg_pool2d(const Tensor& x_in, int64_t kernel, int64_t stride, int64_t pad) {
  Tensor x = x_in.to_plain();
  const Pool2dShape s = pool_shape("avg_pool2d", x, kernel, stride, pad);
  Tensor y = Tensor::empty({s.N, s.C, s.OH(), s.OW()}, x.device());
  if (x.is_cuda())
    cuda::avg_pool2d_forward(s, x.data(), y.data());
  else
    cpu::avg_pool2d_forward(s, x.data(), y.data());
  if (needs_grad({&x})) {
    record("avg_pool2d", {x}, {y}, [x, s](const std::vector<Tensor>& g) {
      const Tensor dy = g[0].to_plain();
      Tensor dx = Tensor::empty(x.shape(), x.device());
      if (x.is_cuda())
        cuda::avg_pool2d_backward(s, dy.data(), dx.data());
      else
        cpu::avg_pool2d_backward(s, dy.data(), dx.data());
      accumulate_grad(x, dx);
    });
  }
  return y;
}

}  // namespace islkd::ops
