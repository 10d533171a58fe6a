// ops::linear: y = x w^T + b with its GEMM backward (each gradient computed only when its input needs it).
#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in) {
  Tensor x = x_in.to_plain(), w = w_in.to_plain();
  Tensor bias = bias_in.defined() ? bias_in.to_plain() : Tensor();
  check_dim("linear", "input", x, 2);
  check_dim("linear", "weight", w, 2);
  check_same_device("linear", {&x, &w, &bias});
  ISLKD_CHECK(x.dtype() == DType::F32 && w.dtype() == DType::F32 && (!bias.defined() || bias.dtype() == DType::F32),
              "linear: input, weight and bias must be float32");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  ISLKD_CHECK(w.size(1) == K, "linear: input ", shape_str(x.shape()), " and weight ", shape_str(w.shape()),
              " do not match (weight must be [out, ", K, "])");
  if (bias.defined()) check_shape("linear", "bias", bias, {N});
  Tensor y = Tensor::empty({M, N}, x.device());
  const float* bp = bias.defined() ? bias.data() : nullptr;
  if (x.is_cuda())
    cuda::linear_forward(M, K, N, x.data(), w.data(), bp, y.data());
  else
    cpu::linear_forward(M, K, N, x.data(), w.data(), bp, y.data());
  if (needs_grad({&x, &w, &bias})) {
    std::vector<Tensor> inputs{x, w};
    if (bias.defined()) inputs.push_back(bias);
    record("linear", inputs, {y}, [x, w, bias, M, K, N](const std::vector<Tensor>& g) {
      const Tensor dy = g[0].to_plain();
      const Device d = x.device();
      Tensor dx = x.requires_grad() ? Tensor::empty(x.shape(), d) : Tensor();
      Tensor dw = w.requires_grad() ? Tensor::empty(w.shape(), d) : Tensor();
      Tensor db = bias.defined() && bias.requires_grad() ? Tensor::empty(bias.shape(), d) : Tensor();
      float* dxp = dx.defined() ? dx.data() : nullptr;
      float* dwp = dw.defined() ? dw.data() : nullptr;
      float* dbp = db.defined() ? db.data() : nullptr;
      if (x.is_cuda())
        cuda::linear_backward(M, K, N, x.data(), w.data(), dy.data(), dxp, dwp, dbp);
      else
        cpu::linear_backward(M, K, N, x.data(), w.data(), dy.data(), dxp, dwp, dbp);
      if (dx.defined()) accumulate_grad(x, dx);
      if (dw.defined()) accumulate_grad(w, dw);
      if (db.defined()) accumulate_grad(bias, db);
    });
  }
  return y;
}

}  // namespace islkd::ops
