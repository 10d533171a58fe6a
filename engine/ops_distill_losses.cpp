// The losses of the feature and decoupled distillation methods (issue 14): the fused DKD loss, attention transfer
// and the mean squared error of FitNet's hint, with their backward on the tape. Boundary checks here, arithmetic in
// kernels/{cpu,cuda} (dkd_loss.*, feature_losses.*).
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

namespace {

// dL/dx = sign * upstream * dx_unit (the unit gradient was formed with the loss, in the same sweep); on the device
// for CUDA (no host sync).
Tensor scaled_grad(const Tensor& x, const Tensor& dx_unit, const Tensor& upstream, float sign) {
  Tensor dx = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda()) {
    cuda::scale_by_device_scalar(dx_unit.data(), upstream.data(), dx.data(), x.numel());
    if (sign != 1.0f) cuda::scale(dx.data(), sign, dx.data(), x.numel());
  } else {
    cpu::scale(dx_unit.data(), sign * upstream.item(), dx.data(), x.numel());
  }
  return dx;
}

void record_scaled(const char* name, const Tensor& x, const Tensor& loss, const Tensor& dx_unit) {
  record(name, {x}, {loss},
         [x, dx_unit](const std::vector<Tensor>& g) { accumulate_grad(x, scaled_grad(x, dx_unit, g[0], 1.0f)); });
}

}  // namespace

DKDLossOutput dkd_loss(const Tensor& student_in, const Tensor& teacher_in, const Tensor& labels,
                       const DKDLossParams& p) {
  const char* op = "dkd_loss";
  ISLKD_CHECK(teacher_in.defined(), op, ": teacher logits are undefined");
  Tensor s = student_in.to_plain(), t = teacher_in.to_plain();
  check_dim(op, "logits", s, 2);
  ISLKD_CHECK(s.dtype() == DType::F32 && t.dtype() == DType::F32, op, ": logits must be float32");
  check_shape(op, "teacher", t, s.shape());
  ISLKD_CHECK(labels.defined() && labels.dtype() == DType::I32, op,
              ": labels must be int32 (Tensor::from_labels)");
  check_shape(op, "labels", labels, {s.size(0)});
  check_same_device(op, {&s, &t, &labels});
  const int64_t M = s.size(0), C = s.size(1);
  ISLKD_CHECK(M > 0 && C > 0, op, ": empty logits of shape ", shape_str(s.shape()));
  ISLKD_CHECK(std::isfinite(p.warmup) && p.warmup >= 0.0f, op, ": warm-up factor must be >= 0, got ", p.warmup);
  const float alpha = p.alpha * p.warmup, beta = p.beta * p.warmup;

  const bool grad = needs_grad({&s});
  DKDLossOutput out;
  out.row_loss = Tensor::empty({M}, s.device());
  out.parts = Tensor::empty({3}, s.device());
  Tensor ds = grad ? Tensor::empty(s.shape(), s.device()) : Tensor();
  if (s.is_cuda()) {
    out.loss = Tensor::empty({1}, s.device());
    cuda::dkd_loss_forward_backward_on_device(M, C, s.data(), t.data(), labels.data_i32(), p.temperature, alpha,
                                              beta, p.ce_weight, out.row_loss.data(), grad ? ds.data() : nullptr,
                                              out.loss.data(), out.parts.data());
  } else {
    const float loss = cpu::dkd_loss_forward_backward(M, C, s.data(), t.data(), labels.data_i32(), p.temperature,
                                                      alpha, beta, p.ce_weight, out.row_loss.data(),
                                                      grad ? ds.data() : nullptr, out.parts.data());
    out.loss = Tensor::full({1}, loss, s.device());
  }
  if (grad) record_scaled(op, s, out.loss, ds);
  return out;
}

Tensor at_loss(const Tensor& student_in, const Tensor& teacher_in) {
  const char* op = "at_loss";
  ISLKD_CHECK(student_in.defined() && teacher_in.defined(), op, ": undefined feature map");
  Tensor s = student_in.to_plain(), t = teacher_in.to_plain();
  check_dim(op, "student", s, 4);
  check_dim(op, "teacher", t, 4);
  check_same_device(op, {&s, &t});
  ISLKD_CHECK(s.size(0) == t.size(0) && s.size(2) == t.size(2) && s.size(3) == t.size(3), op,
              ": student ", shape_str(s.shape()), " and teacher ", shape_str(t.shape()),
              " differ in batch or spatial size (pool the larger map first, as AT.py does)");
  const int64_t N = s.size(0), Cs = s.size(1), Ct = t.size(1), HW = s.size(2) * s.size(3);
  ISLKD_CHECK(N > 0 && Cs > 0 && Ct > 0 && HW > 0, op, ": empty feature map ", shape_str(s.shape()));
  const bool grad = needs_grad({&s});
  Tensor ds = grad ? Tensor::empty(s.shape(), s.device()) : Tensor();
  Tensor loss;
  if (s.is_cuda()) {
    loss = Tensor::empty({1}, s.device());
    cuda::at_loss_forward_backward(N, Cs, Ct, HW, s.data(), t.data(), grad ? ds.data() : nullptr, loss.data());
  } else {
    loss = Tensor::full({1}, cpu::at_loss_forward_backward(N, Cs, Ct, HW, s.data(), t.data(),
                                                            grad ? ds.data() : nullptr));
  }
  if (grad) record_scaled(op, s, loss, ds);
  return loss;
}

Tensor mse_loss(const Tensor& a_in, const Tensor& b_in) {
  const char* op = "mse_loss";
  ISLKD_CHECK(a_in.defined() && b_in.defined(), op, ": undefined input");
  Tensor a = a_in.to_plain(), b = b_in.to_plain();
  check_shape(op, "second input", b, a.shape());
  check_same_device(op, {&a, &b});
  const int64_t n = a.numel();
  ISLKD_CHECK(n > 0, op, ": empty inputs of shape ", shape_str(a.shape()));
  const bool ga = needs_grad({&a}), gb = needs_grad({&b});
  Tensor da = ga || gb ? Tensor::empty(a.shape(), a.device()) : Tensor();
  Tensor loss;
  if (a.is_cuda()) {
    loss = Tensor::empty({1}, a.device());
    cuda::mse_loss_forward_backward(n, a.data(), b.data(), da.defined() ? da.data() : nullptr, loss.data());
  } else {
    loss = Tensor::full({1}, cpu::mse_loss_forward_backward(n, a.data(), b.data(), da.defined() ? da.data() : nullptr));
  }
  if (ga || gb) {
    std::vector<Tensor> inputs;
    if (ga) inputs.push_back(a);
    if (gb) inputs.push_back(b);
    // d/db = -d/da: one buffer serves both.
    record(op, inputs, {loss}, [a, b, da, ga, gb](const std::vector<Tensor>& g) {
      if (ga) accumulate_grad(a, scaled_grad(a, da, g[0], 1.0f));
      if (gb) accumulate_grad(b, scaled_grad(b, da, g[0], -1.0f));
    });
  }
  return loss;
}

namespace {

// Shared boundary of the relational losses: flattened per instance, the student's gradient recorded.
template <typename CpuFn, typename CudaFn>
Tensor relational_loss(const char* op, const Tensor& student_in, const Tensor& teacher_in, CpuFn cpu_fn,
                       CudaFn cuda_fn) {
  ISLKD_CHECK(student_in.defined() && teacher_in.defined(), op, ": undefined features");
  Tensor s = student_in.to_plain(), t = teacher_in.to_plain();
  check_same_device(op, {&s, &t});
  ISLKD_CHECK(s.dim() >= 1 && t.dim() >= 1 && s.size(0) == t.size(0), op, ": student ", shape_str(s.shape()),
              " and teacher ", shape_str(t.shape()), " differ in batch size");
  const int64_t N = s.size(0);
  ISLKD_CHECK(N > 0 && s.numel() > 0 && t.numel() > 0, op, ": empty features ", shape_str(s.shape()), " / ",
              shape_str(t.shape()));
  const int64_t Ds = s.numel() / N, Dt = t.numel() / N;
  const bool grad = needs_grad({&s});
  Tensor ds = grad ? Tensor::empty(s.shape(), s.device()) : Tensor();
  Tensor loss;
  if (s.is_cuda()) {
    loss = Tensor::empty({1}, s.device());
    cuda_fn(N, Ds, Dt, s.data(), t.data(), grad ? ds.data() : nullptr, loss.data());
  } else {
    loss = Tensor::full({1}, cpu_fn(N, Ds, Dt, s.data(), t.data(), grad ? ds.data() : nullptr));
  }
  if (grad) record_scaled(op, s, loss, ds);
  return loss;
}

}  // namespace

Tensor sp_loss(const Tensor& student, const Tensor& teacher) {
  return relational_loss("sp_loss", student, teacher, cpu::sp_loss_forward_backward, cuda::sp_loss_forward_backward);
}

Tensor pkt_loss(const Tensor& student, const Tensor& teacher) {
  return relational_loss("pkt_loss", student, teacher, cpu::pkt_loss_forward_backward,
                         cuda::pkt_loss_forward_backward);
}

Tensor rkd_loss(const Tensor& student, const Tensor& teacher, float w_d, float w_a) {
  return relational_loss(
      "rkd_loss", student, teacher,
      [w_d, w_a](int64_t N, int64_t Ds, int64_t Dt, const float* s, const float* t, float* ds) {
        return cpu::rkd_loss_forward_backward(N, Ds, Dt, s, t, w_d, w_a, ds);
      },
      [w_d, w_a](int64_t N, int64_t Ds, int64_t Dt, const float* s, const float* t, float* ds, float* loss) {
        cuda::rkd_loss_forward_backward(N, Ds, Dt, s, t, w_d, w_a, ds, loss);
      });
}

Tensor vid_loss(const Tensor& pred_in, const Tensor& target_in, const Tensor& log_scale, float eps) {
  const char* op = "vid_loss";
  ISLKD_CHECK(pred_in.defined() && target_in.defined() && log_scale.defined(), op, ": undefined input");
  Tensor p = pred_in.to_plain(), t = target_in.to_plain();
  check_dim(op, "prediction", p, 4);
  check_shape(op, "target", t, p.shape());
  check_shape(op, "log_scale", log_scale, {p.size(1)});
  check_same_device(op, {&p, &t, &log_scale});
  const int64_t N = p.size(0), C = p.size(1), HW = p.size(2) * p.size(3);
  ISLKD_CHECK(N > 0 && C > 0 && HW > 0, op, ": empty features ", shape_str(p.shape()));
  const bool gp = needs_grad({&p}), gs = needs_grad({&log_scale});
  Tensor dp = gp ? Tensor::empty(p.shape(), p.device()) : Tensor();
  Tensor ds = gs ? Tensor::empty(log_scale.shape(), p.device()) : Tensor();
  Tensor loss;
  if (p.is_cuda()) {
    loss = Tensor::empty({1}, p.device());
    cuda::vid_loss_forward_backward(N, C, HW, p.data(), t.data(), log_scale.data(), eps, gp ? dp.data() : nullptr,
                                    gs ? ds.data() : nullptr, loss.data());
  } else {
    loss = Tensor::full({1}, cpu::vid_loss_forward_backward(N, C, HW, p.data(), t.data(), log_scale.data(), eps,
                                                            gp ? dp.data() : nullptr, gs ? ds.data() : nullptr));
  }
  if (gp || gs) {
    std::vector<Tensor> inputs;
    if (gp) inputs.push_back(p);
    if (gs) inputs.push_back(log_scale);
    record(op, inputs, {loss}, [p, log_scale, dp, ds, gp, gs](const std::vector<Tensor>& g) {
      if (gp) accumulate_grad(p, scaled_grad(p, dp, g[0], 1.0f));
      if (gs) accumulate_grad(log_scale, scaled_grad(log_scale, ds, g[0], 1.0f));
    });
  }
  return loss;
}

namespace {

void check_indices(const char* op, const char* what, const Tensor& t, const Tensor& ref) {
  ISLKD_CHECK(t.defined() && t.dtype() == DType::I32, op, ": ", what, " must be int32");
  ISLKD_CHECK(t.device() == ref.device(), op, ": ", what, " is on ", t.is_cuda() ? "cuda" : "cpu",
              ", the memory on ", ref.is_cuda() ? "cuda" : "cpu");
}

}  // namespace

Tensor crd_contrast_loss(const Tensor& embed_in, const Tensor& memory, const Tensor& idx, float temperature,
                         const Tensor& z) {
  const char* op = "crd_contrast_loss";
  ISLKD_CHECK(embed_in.defined() && memory.defined() && z.defined(), op, ": undefined input");
  Tensor u = embed_in.to_plain();
  check_dim(op, "embedding", u, 2);
  check_dim(op, "memory", memory, 2);
  check_shape(op, "z", z, {1});
  check_same_device(op, {&u, &memory, &z});
  check_indices(op, "idx", idx, memory);
  const int64_t B = u.size(0), D = u.size(1), N = memory.size(0);
  ISLKD_CHECK(memory.size(1) == D, op, ": embedding ", shape_str(u.shape()), " and memory ",
              shape_str(memory.shape()), " differ in width");
  ISLKD_CHECK(idx.dim() == 2 && idx.size(0) == B && idx.size(1) >= 2, op, ": idx ", shape_str(idx.shape()),
              " is not B x (K+1) with B ", B, " and K >= 1");
  ISLKD_CHECK(B > 0 && D > 0 && N > 0, op, ": empty embedding ", shape_str(u.shape()), " or memory ",
              shape_str(memory.shape()));
  ISLKD_CHECK(std::isfinite(temperature) && temperature > 0.0f, op, ": temperature must be > 0, got ", temperature);
  const int64_t K1 = idx.size(1);
  const bool grad = needs_grad({&u});
  Tensor du = grad ? Tensor::empty(u.shape(), u.device()) : Tensor();
  Tensor loss;
  if (u.is_cuda()) {
    loss = Tensor::empty({1}, u.device());
    cuda::crd_contrast_forward_backward(B, K1, D, N, u.data(), memory.data(), idx.data_i32(), temperature, z.data(),
                                        grad ? du.data() : nullptr, loss.data());
  } else {
    loss = Tensor::full({1}, cpu::crd_contrast_forward_backward(B, K1, D, N, u.data(), memory.data(), idx.data_i32(),
                                                                temperature, z.data(), grad ? du.data() : nullptr));
  }
  if (grad) record_scaled(op, u, loss, du);
  return loss;
}

// y_b = -1 skips row b: the crd objective keeps only the last row of an instance a curriculum repeats within a batch
// (as a sequential index_copy_ would), so no two rows write one bank row.
void crd_memory_update(const Tensor& memory, const Tensor& embed_in, const Tensor& y, float momentum) {
  const char* op = "crd_memory_update";
  ISLKD_CHECK(memory.defined() && embed_in.defined(), op, ": undefined input");
  Tensor u = embed_in.detach().to_plain();
  check_dim(op, "memory", memory, 2);
  check_dim(op, "embedding", u, 2);
  check_same_device(op, {&u, &memory});
  check_indices(op, "y", y, memory);
  const int64_t B = u.size(0), D = u.size(1), N = memory.size(0);
  ISLKD_CHECK(memory.size(1) == D, op, ": embedding ", shape_str(u.shape()), " and memory ",
              shape_str(memory.shape()), " differ in width");
  check_shape(op, "y", y, {B});
  ISLKD_CHECK(B > 0 && D > 0 && N > 0, op, ": empty embedding ", shape_str(u.shape()));
  ISLKD_CHECK(std::isfinite(momentum) && momentum >= 0.0f && momentum <= 1.0f, op,
              ": momentum must be in [0, 1], got ", momentum);
  if (u.is_cuda())
    cuda::crd_memory_update(B, D, N, memory.data(), u.data(), y.data_i32(), momentum);
  else
    cpu::crd_memory_update(B, D, N, memory.data(), u.data(), y.data_i32(), momentum);
}

}  // namespace islkd::ops
