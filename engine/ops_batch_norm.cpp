// ops::batch_norm2d: training mode (batch statistics, running statistics updated in place, no gradient for
// them) and eval mode (running statistics; differentiable too, as a per-channel affine map).
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

Tensor batch_norm2d(const Tensor& x_in, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, bool training, float momentum, float eps, bool fuse_relu,
                    const std::shared_ptr<BatchNormSync>& sync) {
  // nChw<B>c input (CPU training with blocked activations, or a frozen model's blocked inference): normalised in
  // place of layout, output and gradients nChw<B>c too, with a requested ReLU in the same pass. Eval mode with
  // autograd converts to plain. Elsewhere a requested ReLU is a separate op.
  const int64_t block = channel_block_of(x_in);
  const bool blk = block > 0 && (training || !needs_grad({&x_in, &gamma, &beta}));
  if (fuse_relu && !blk)
    return relu(batch_norm2d(x_in, gamma, beta, running_mean, running_var, training, momentum, eps, false, sync));
  Tensor x = blk ? x_in : x_in.to_plain();
  check_dim("batch_norm2d", "input", x, 4);
  check_same_device("batch_norm2d", {&x, &gamma, &beta, &running_mean, &running_var});
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  check_shape("batch_norm2d", "weight (gamma)", gamma, {C});
  check_shape("batch_norm2d", "bias (beta)", beta, {C});
  ISLKD_CHECK(training || (running_mean.defined() && running_var.defined()),
              "batch_norm2d: eval mode needs running_mean and running_var");
  if (running_mean.defined()) check_shape("batch_norm2d", "running_mean", running_mean, {C});
  if (running_var.defined()) check_shape("batch_norm2d", "running_var", running_var, {C});
  ISLKD_CHECK(x.dtype() == DType::F32, "batch_norm2d: input must be float32");
  ISLKD_CHECK(eps > 0.0f, "batch_norm2d: eps must be > 0, got ", eps);
  const bool cuda = x.is_cuda();
  const Device dev = x.device();
  Tensor y = blk ? empty_like_blocked(x) : Tensor::empty(x.shape(), dev);
  const auto* xp = static_cast<const float*>(x.raw_data());
  auto* yp = static_cast<float*>(y.raw_data());

  if (training) {
    ISLKD_CHECK(N * HW > 1, "batch_norm2d: training needs more than one value per channel, got input ",
                shape_str(x.shape()));
    Tensor save_mean = Tensor::empty({C}, dev), save_invstd = Tensor::empty({C}, dev);
    // Without running statistics (track_running_stats=False) the update goes to a scratch buffer.
    Tensor rm = running_mean.defined() ? running_mean : Tensor::zeros({C}, dev);
    Tensor rv = running_var.defined() ? running_var : Tensor::full({C}, 1.0f, dev);
    const int64_t B = blk ? block : 1;
    if (cuda)
      cuda::batch_norm_forward_train(N, C, HW, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), momentum,
                                     eps, y.data(), save_mean.data(), save_invstd.data(), sync.get());
    else
      cpu::batch_norm_forward_train_blocked(N, C, HW, B, xp, gamma.data(), beta.data(), rm.data(), rv.data(),
                                            momentum, eps, yp, save_mean.data(), save_invstd.data(), fuse_relu,
                                            sync.get());
    if (needs_grad({&x, &gamma, &beta})) {
      const Tensor relu_y = fuse_relu ? y.detach() : Tensor();  // the mask of the fused ReLU
      record(fuse_relu ? "batch_norm2d_relu" : "batch_norm2d", {x, gamma, beta}, {y},
             [x, gamma, beta, save_mean, save_invstd, N, C, HW, B, cuda, relu_y, sync](const std::vector<Tensor>& g) {
               const Tensor dy = g[0].to_layout_of(x);
               Tensor dx = B > 1 ? empty_like_blocked(x) : Tensor::empty(x.shape(), x.device());
               Tensor dgamma = Tensor::empty({C}, x.device()), dbeta = Tensor::empty({C}, x.device());
               if (cuda)
                 cuda::batch_norm_backward(N, C, HW, x.data(), dy.data(), gamma.data(), save_mean.data(),
                                           save_invstd.data(), dx.data(), dgamma.data(), dbeta.data(), sync.get());
               else
                 cpu::batch_norm_backward_blocked(
                     N, C, HW, B, static_cast<const float*>(x.raw_data()), static_cast<const float*>(dy.raw_data()),
                     gamma.data(), save_mean.data(), save_invstd.data(), static_cast<float*>(dx.raw_data()),
                     dgamma.data(), dbeta.data(),
                     relu_y.defined() ? static_cast<const float*>(relu_y.raw_data()) : nullptr, sync.get());
               if (x.requires_grad()) accumulate_grad(x, dx);
               if (gamma.requires_grad()) accumulate_grad(gamma, dgamma);
               if (beta.requires_grad()) accumulate_grad(beta, dbeta);
             });
    }
    return y;
  }

  if (cuda)
    cuda::batch_norm_forward_eval(N, C, HW, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                  running_var.data(), eps, y.data());
  else
    cpu::batch_norm_forward_eval_blocked(N, C, HW, blk ? block : 1, xp, gamma.data(), beta.data(), running_mean.data(),
                                         running_var.data(), eps, yp, fuse_relu);
  if (needs_grad({&x, &gamma, &beta})) {
    // Eval mode is y = (x - rm) * gamma * istd + beta with istd = 1/sqrt(rv + eps), constant statistics:
    // dx = dy * gamma * istd is the eval forward applied to dy with zero mean and beta; dgamma and dbeta are the
    // training backward's reductions with (rm, istd) in place of the batch statistics.
    std::vector<float> rv_host = running_var.to_vector(), istd(static_cast<size_t>(C));
    for (size_t c = 0; c < istd.size(); ++c) istd[c] = static_cast<float>(1.0 / std::sqrt(double(rv_host[c]) + eps));
    Tensor invstd = Tensor::from_vector(istd, {C}, dev);
    Tensor rm = running_mean.clone(), rv = running_var.clone();  // the module may update them later
    record("batch_norm2d_eval", {x, gamma, beta}, {y},
           [x, gamma, beta, rm, rv, invstd, N, C, HW, eps, cuda](const std::vector<Tensor>& g) {
             const Tensor dy = g[0].to_plain();
             const Device d = x.device();
             Tensor zeros = Tensor::zeros({C}, d);
             Tensor dx = Tensor::empty(x.shape(), d), scratch = Tensor::empty(x.shape(), d);
             Tensor dgamma = Tensor::empty({C}, d), dbeta = Tensor::empty({C}, d);
             if (cuda) {
               cuda::batch_norm_forward_eval(N, C, HW, dy.data(), gamma.data(), zeros.data(), zeros.data(), rv.data(),
                                             eps, dx.data());
               cuda::batch_norm_backward(N, C, HW, x.data(), dy.data(), gamma.data(), rm.data(), invstd.data(),
                                         scratch.data(), dgamma.data(), dbeta.data());
             } else {
               cpu::batch_norm_forward_eval(N, C, HW, dy.data(), gamma.data(), zeros.data(), zeros.data(), rv.data(),
                                            eps, dx.data());
               cpu::batch_norm_backward(N, C, HW, x.data(), dy.data(), gamma.data(), rm.data(), invstd.data(),
                                        scratch.data(), dgamma.data(), dbeta.data());
             }
             if (x.requires_grad()) accumulate_grad(x, dx);
             if (gamma.requires_grad()) accumulate_grad(gamma, dgamma);
             if (beta.requires_grad()) accumulate_grad(beta, dbeta);
           });
  }
  return y;
}

}  // namespace islkd::ops
