// ops::conv2d: boundary checks, device dispatch, and the autograd node (backward-data for x, backward-weights
// for w and the bias). fuse_relu applies ReLU inside the convolution and is for inference only. With
// set_cpu_blocked_activations on, CPU convolutions whose output channels are a multiple of the activation block B
// (cpu::activation_block(): 8 or 16) write nChw<B>c and read x as it comes (nChw<B>c or plain), and their
// backward works in those layouts too.
#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, int64_t stride, int64_t pad,
              int64_t groups, bool fuse_relu) {
  Tensor x = x_in, w = w_in.to_plain();
  Tensor bias = bias_in.defined() ? bias_in.to_plain() : Tensor();
  check_dim("conv2d", "input", x, 4);
  check_dim("conv2d", "weight", w, 4);
  check_same_device("conv2d", {&x, &w, &bias});
  ISLKD_CHECK(x.dtype() == DType::F32 && w.dtype() == DType::F32 && (!bias.defined() || bias.dtype() == DType::F32),
              "conv2d: input, weight and bias must be float32");
  ISLKD_CHECK(stride > 0 && pad >= 0 && groups > 0, "conv2d: needs stride > 0, pad >= 0, groups > 0 (got stride ",
              stride, ", pad ", pad, ", groups ", groups, ")");
  Conv2dShape s;
  s.N = x.size(0), s.C = x.size(1), s.H = x.size(2), s.W = x.size(3);
  s.K = w.size(0), s.R = w.size(2), s.S = w.size(3);
  s.stride = stride, s.pad = pad, s.groups = groups;
  ISLKD_CHECK(s.C % groups == 0 && s.K % groups == 0 && w.size(1) * groups == s.C, "conv2d: input ",
              shape_str(x.shape()), " and weight ", shape_str(w.shape()), " do not match with groups ", groups,
              " (weight must be [K, C/groups, R, S] with K and C divisible by groups)");
  if (bias.defined()) check_shape("conv2d", "bias", bias, {s.K});
  ISLKD_CHECK(s.H + 2 * pad >= s.R && s.W + 2 * pad >= s.S, "conv2d: kernel of weight ", shape_str(w.shape()),
              " is larger than the padded input ", shape_str(x.shape()), " (pad ", pad, ")");
  const bool grad = needs_grad({&x, &w, &bias});
  ISLKD_CHECK(!(fuse_relu && grad), "conv2d: fuse_relu is for inference only; an input requires grad (use "
                                    "NoGradGuard, or conv2d without fuse_relu followed by relu)");
  const bool use_blk = !x.is_cuda() && cpu_blocked_activations() && groups == 1 && !fuse_relu;
  const int64_t B = use_blk ? cpu::activation_block() : 0;
  const bool blk = use_blk && s.K % B == 0 && (channel_block_of(x) == B || x.layout() == Layout::Plain);
  const bool x_blk = blk && channel_block_of(x) == B;
  if (!x_blk) x = x.to_plain();
  const Shape y_shape{s.N, s.K, s.OH(), s.OW()};
  Tensor y = blk ? Tensor::empty_blocked(y_shape, cpu::activation_layout(s.N, s.K, s.OH(), s.OW()))
                 : Tensor::empty(y_shape, x.device());
  const float* bp = bias.defined() ? bias.data() : nullptr;
  const auto* xp = static_cast<const float*>(x.raw_data());
  if (x.is_cuda())
    cuda::conv2d_forward(s, x.data(), w.data(), bp, y.data(), fuse_relu);
  else if (blk)
    cpu::conv2d_forward_cb(s, x_blk, xp, w.data(), bp, static_cast<float*>(y.raw_data()));
  else
    cpu::conv2d_forward(s, x.data(), w.data(), bp, y.data(), fuse_relu);

  if (grad) {
    std::vector<Tensor> inputs{x, w};
    if (bias.defined()) inputs.push_back(bias);
    std::shared_ptr<void> y_layout = y.impl()->layout_desc;  // null when y is plain
    record("conv2d", inputs, {y}, [x, w, bias, s, blk, x_blk, y_layout](const std::vector<Tensor>& g) {
      const Tensor dy = blk ? g[0].to_blocked(y_layout) : g[0].to_plain();
      const auto* dyp = static_cast<const float*>(dy.raw_data());
      if (x.requires_grad()) {
        Tensor dx = x_blk ? empty_like_blocked(x) : Tensor::empty(x.shape(), x.device());
        if (x.is_cuda())
          cuda::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
        else if (blk)
          cpu::conv2d_backward_data_cb(s, dyp, w.data(), x_blk, static_cast<float*>(dx.raw_data()));
        else
          cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
        accumulate_grad(x, dx);
      }
      const bool want_db = bias.defined() && bias.requires_grad();
      if (w.requires_grad() || want_db) {
        Tensor dw = Tensor::empty(w.shape(), w.device());
        Tensor db = want_db ? Tensor::empty(bias.shape(), bias.device()) : Tensor();
        float* dbp = want_db ? db.data() : nullptr;
        if (x.is_cuda())
          cuda::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), dbp);
        else if (blk)
          cpu::conv2d_backward_weights_cb(s, x_blk, static_cast<const float*>(x.raw_data()), dyp, dw.data(), dbp);
        else
          cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), dbp);
        if (w.requires_grad()) accumulate_grad(w, dw);
        if (want_db) accumulate_grad(bias, db);
      }
    });
  }
  return y;
}

Tensor conv2d_inference(const Tensor& x, const Tensor& w_in, const Tensor& bias_in, int64_t stride, int64_t pad,
                        int64_t groups, bool fuse_relu, const Tensor& residual) {
  ISLKD_CHECK(!needs_grad({&x, &w_in, &bias_in, &residual}), "conv2d_inference: an input requires grad; use conv2d "
                                                             "(or a NoGradGuard)");
  if (groups != 1 || x.dim() != 4 || x.dtype() != DType::F32) {
    if (!residual.defined()) return conv2d(x, w_in, bias_in, stride, pad, groups, fuse_relu);
    Tensor y = add(conv2d(x, w_in, bias_in, stride, pad, groups), residual);
    return fuse_relu ? relu(y) : y;
  }
  Tensor w = w_in.to_plain();
  Tensor bias = bias_in.defined() ? bias_in.to_plain() : Tensor();
  check_dim("conv2d_inference", "weight", w, 4);
  check_same_device("conv2d_inference", {&x, &w, &bias});
  ISLKD_CHECK(stride > 0 && pad >= 0, "conv2d_inference: needs stride > 0 and pad >= 0 (got stride ", stride,
              ", pad ", pad, ")");
  Conv2dShape s;
  s.N = x.size(0), s.C = x.size(1), s.H = x.size(2), s.W = x.size(3);
  s.K = w.size(0), s.R = w.size(2), s.S = w.size(3);
  s.stride = stride, s.pad = pad, s.groups = 1;
  ISLKD_CHECK(w.size(1) == s.C, "conv2d_inference: input ", shape_str(x.shape()), " and weight ",
              shape_str(w.shape()), " do not match");
  if (bias.defined()) check_shape("conv2d_inference", "bias", bias, {s.K});
  ISLKD_CHECK(s.H + 2 * pad >= s.R && s.W + 2 * pad >= s.S, "conv2d_inference: kernel of weight ",
              shape_str(w.shape()), " is larger than the padded input ", shape_str(x.shape()), " (pad ", pad, ")");
  if (x.is_cuda()) {  // conv + bias + residual + ReLU in one cuDNN call where cuDNN fuses them (conv2d_forward)
    const Shape y_cuda{s.N, s.K, s.OH(), s.OW()};
    Tensor rp;
    if (residual.defined()) {
      check_same_device("conv2d_inference", {&x, &residual});
      check_shape("conv2d_inference", "residual", residual, y_cuda);
      rp = residual.to_plain();
    }
    const Tensor xp = x.to_plain();
    Tensor y = Tensor::empty(y_cuda, Device::CUDA);
    cuda::conv2d_forward(s, xp.data(), w.data(), bias.defined() ? bias.data() : nullptr, y.data(), fuse_relu,
                         rp.defined() ? rp.data() : nullptr);
    return y;
  }
  const cpu::BlockedLayout* x_layout =
      x.layout() == Layout::DnnlBlocked ? static_cast<const cpu::BlockedLayout*>(x.impl()->layout_desc.get())
                                        : nullptr;
  auto layout = cpu::conv2d_forward_blocked_layout(s, bias.defined(), fuse_relu);
  const Shape y_shape{s.N, s.K, s.OH(), s.OW()};
  Tensor r;  // the residual in y's layout (itself when it already is, e.g. the previous block's output)
  if (residual.defined()) {
    check_same_device("conv2d_inference", {&x, &residual});
    check_shape("conv2d_inference", "residual", residual, y_shape);
    r = residual.to_blocked(std::const_pointer_cast<void>(std::static_pointer_cast<const void>(layout)));
  }
  Tensor y = Tensor::empty_blocked(y_shape, layout);
  cpu::conv2d_forward_blocked(s, x_layout, static_cast<const float*>(x.raw_data()), w.data(),
                              bias.defined() ? bias.data() : nullptr, static_cast<float*>(y.raw_data()), fuse_relu,
                              r.defined() ? static_cast<const float*>(r.raw_data()) : nullptr);
  return y;
}

}  // namespace islkd::ops
