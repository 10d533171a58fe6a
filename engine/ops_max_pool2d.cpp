// ops::max_pool2d: checks, dispatch, and the backward that scatters dy to the saved argmax positions.
#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

// Shared with avg_pool2d: PyTorch's limits (pad at most half the window, at least one output).
Pool2dShape detail::pool_shape(const char* op, const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  check_dim(op, "input", x, 4);
  ISLKD_CHECK(x.dtype() == DType::F32, op, ": input must be float32");
  ISLKD_CHECK(kernel > 0 && stride > 0 && pad >= 0, op, ": needs kernel > 0, stride > 0, pad >= 0 (got kernel ",
              kernel, ", stride ", stride, ", pad ", pad, ")");
  ISLKD_CHECK(2 * pad <= kernel, op, ": pad ", pad, " must be at most half the kernel size ", kernel);
  Pool2dShape s;
  s.N = x.size(0), s.C = x.size(1), s.H = x.size(2), s.W = x.size(3);
  s.kernel = kernel, s.stride = stride, s.pad = pad;
  ISLKD_CHECK(s.H + 2 * pad >= kernel && s.W + 2 * pad >= kernel, op, ": kernel ", kernel,
              " is larger than the padded input ", shape_str(x.shape()), " (pad ", pad, ")");
  return s;
}

Tensor max_pool2d(const Tensor& x_in, int64_t kernel, int64_t stride, int64_t pad) {
  Tensor x = x_in.to_plain();
  const Pool2dShape s = pool_shape("max_pool2d", x, kernel, stride, pad);
  Tensor y = Tensor::empty({s.N, s.C, s.OH(), s.OW()}, x.device());
  Tensor argmax = Tensor::empty(y.shape(), x.device(), DType::I32);
  if (x.is_cuda())
    cuda::max_pool2d_forward(s, x.data(), y.data(), argmax.data_i32());
  else
    cpu::max_pool2d_forward(s, x.data(), y.data(), argmax.data_i32());
  if (needs_grad({&x})) {
    record("max_pool2d", {x}, {y}, [x, argmax, s](const std::vector<Tensor>& g) {
      const Tensor dy = g[0].to_plain();
      Tensor dx = Tensor::empty(x.shape(), x.device());
      if (x.is_cuda())
        cuda::max_pool2d_backward(s, dy.data(), argmax.data_i32(), dx.data());
      else
        cpu::max_pool2d_backward(s, dy.data(), argmax.data_i32(), dx.data());
      accumulate_grad(x, dx);
    });
  }
  return y;
}

}  // namespace islkd::ops
