// The distillation ops: fused KD loss (with its backward on the tape), per-instance difficulty scores, and the
// radix sort of scores that orders the ISL curriculum. Boundary checks here, arithmetic in kernels/{cpu,cuda}.
#include <cstring>
#include <limits>

#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

namespace {
// Logits M x C (float32, plain) and labels M (int32) on one device; the teacher optional when allowed.
void check_logits_and_labels(const char* op, const Tensor& s, const char* t_name, const Tensor& t,
                             const Tensor& labels) {
  check_dim(op, "logits", s, 2);
  ISLKD_CHECK(s.dtype() == DType::F32, op, ": logits must be float32");
  ISLKD_CHECK(labels.defined(), op, ": labels are undefined");
  ISLKD_CHECK(labels.dtype() == DType::I32, op, ": labels must be int32 (Tensor::from_labels), got float32 of shape ",
              shape_str(labels.shape()));
  check_shape(op, "labels", labels, {s.size(0)});
  if (t.defined()) {
    ISLKD_CHECK(t.dtype() == DType::F32, op, ": ", t_name, " logits must be float32");
    check_shape(op, t_name, t, s.shape());
  }
  check_same_device(op, {&s, &t, &labels});
}
}  // namespace

KDLossOutput kd_loss(const Tensor& student_in, const Tensor& teacher_in, const Tensor& labels,
                     const KDLossParams& p) {
  Tensor s = student_in.to_plain();
  ISLKD_CHECK(teacher_in.defined(), "kd_loss: teacher logits are undefined");
  Tensor t = teacher_in.to_plain();
  check_logits_and_labels("kd_loss", s, "teacher", t, labels);
  const int64_t M = s.size(0), C = s.size(1);
  ISLKD_CHECK(M > 0 && C > 0, "kd_loss: empty logits of shape ", shape_str(s.shape()));

  const bool grad = needs_grad({&s});
  KDLossOutput out;
  out.row_loss = Tensor::empty({M}, s.device());
  Tensor ds = grad ? Tensor::empty(s.shape(), s.device()) : Tensor();
  if (s.is_cuda()) {  // the loss stays on the device: no host sync (labels are checked where the loss is read)
    out.loss = Tensor::empty({1}, s.device());
    out.parts = Tensor::empty({2}, s.device());
    cuda::kd_loss_forward_backward_on_device(M, C, s.data(), t.data(), labels.data_i32(), p, out.row_loss.data(),
                                             grad ? ds.data() : nullptr, out.loss.data(), out.parts.data());
    out.mean_kd = out.mean_ce = std::numeric_limits<float>::quiet_NaN();
  } else {
    const float loss = cpu::kd_loss_forward_backward(M, C, s.data(), t.data(), labels.data_i32(), p,
                                                     out.row_loss.data(), grad ? ds.data() : nullptr, &out.mean_kd,
                                                     &out.mean_ce);
    out.loss = Tensor::full({1}, loss, s.device());
  }
  if (grad) {
    // dL/ds was formed in the forward pass (it is the same sweep); backward only scales it by the upstream grad.
    record("kd_loss", {s}, {out.loss}, [s, ds](const std::vector<Tensor>& g) {
      Tensor dx = Tensor::empty(s.shape(), s.device());
      if (s.is_cuda())  // the upstream gradient stays on the device: no host sync in backward
        cuda::scale_by_device_scalar(ds.data(), g[0].data(), dx.data(), s.numel());
      else
        cpu::scale(ds.data(), g[0].item(), dx.data(), s.numel());
      accumulate_grad(s, dx);
    });
  }
  return out;
}

Tensor difficulty_scores(const Tensor& snapshot_in, const Tensor& teacher_in, const Tensor& labels,
                         DifficultyMeasure m, const KDLossParams& p) {
  Tensor s = snapshot_in.to_plain();
  Tensor t = teacher_in.defined() ? teacher_in.to_plain() : Tensor();
  const bool needs_teacher = m == DifficultyMeasure::KD || m == DifficultyMeasure::Loss;
  ISLKD_CHECK(!needs_teacher || t.defined(),
              "difficulty_scores: the kd and loss measures need the teacher's logits (got an undefined tensor)");
  check_logits_and_labels("difficulty_scores", s, "teacher", t, labels);
  const int64_t M = s.size(0), C = s.size(1);
  Tensor scores = Tensor::empty({M}, s.device());
  const float* tp = t.defined() ? t.data() : nullptr;
  if (s.is_cuda())
    cuda::difficulty_scores(M, C, s.data(), tp, labels.data_i32(), m, p, scores.data());
  else
    cpu::difficulty_scores(M, C, s.data(), tp, labels.data_i32(), m, p, scores.data());
  return scores;
}

std::pair<Tensor, std::vector<uint32_t>> radix_sort_pairs(const Tensor& keys_in, const std::vector<uint32_t>& values) {
  Tensor k = keys_in.to_plain();
  check_dim("radix_sort_pairs", "keys", k, 1);
  ISLKD_CHECK(k.dtype() == DType::F32, "radix_sort_pairs: keys must be float32");
  const int64_t n = k.numel();
  ISLKD_CHECK(static_cast<int64_t>(values.size()) == n, "radix_sort_pairs: ", values.size(), " values for ", n,
              " keys (shape ", shape_str(k.shape()), ")");
  Tensor keys_out = Tensor::empty({n}, k.device());
  std::vector<uint32_t> values_out(static_cast<size_t>(n));
  if (k.is_cuda()) {
    // Values travel through int32 device tensors (same 4 bytes); the caller wants them on the host.
    Tensor vin = Tensor::empty({n}, k.device(), DType::I32), vout = Tensor::empty({n}, k.device(), DType::I32);
    cuda::memcpy_h2d(vin.raw_data(), values.data(), values.size() * sizeof(uint32_t));
    cuda::radix_sort_pairs(n, k.data(), static_cast<const uint32_t*>(vin.raw_data()), keys_out.data(),
                           static_cast<uint32_t*>(vout.raw_data()));
    cuda::memcpy_d2h(values_out.data(), vout.raw_data(), values_out.size() * sizeof(uint32_t));
  } else {
    cpu::radix_sort_pairs(n, k.data(), values.data(), keys_out.data(), values_out.data());
  }
  return {keys_out, std::move(values_out)};
}

}  // namespace islkd::ops
