// Fused DKD loss on CUDA (kernels/cuda/dkd_loss.cu) under the emulator against the CPU kernel: the mean total, the
// TCKD / NCKD / CE parts, per-row losses and dL/dstudent at awkward sizes, on both paths (rows staged in shared
// memory for C <= 4096, re-read from global memory above), for large logits; the op on device tensors (no host
// wait) and its backward; the deterministic mean; a bad label throws (host entry) or gives NaN (device entry).
#include <cmath>
#include <random>
#include <string>

#include "engine/ops.h"
#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

namespace {

void check(int64_t rows, int64_t cols, float range, const ops::DKDLossParams& p, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << rows << " x " << cols << " logits in +-" << range << " T=" << p.temperature);
  const size_t n = static_cast<size_t>(rows * cols);
  const auto s = test::random_vector(n, seed, -range, range), t = test::random_vector(n, seed + 1, -range, range);
  const auto labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), seed + 2);
  std::vector<float> loss(static_cast<size_t>(rows)), grad(n), parts(3);
  const float total = cpu::dkd_loss_forward_backward(rows, cols, s.data(), t.data(), labels.data(), p.temperature,
                                                     p.alpha, p.beta, p.ce_weight, loss.data(), grad.data(),
                                                     parts.data());
  DeviceVec<float> ds(s), dt(t), dloss(loss.size()), dgrad(n);
  DeviceVec<int32_t> dlab(labels);
  std::vector<float> gparts(3);
  const float gtotal = cuda::dkd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), p.temperature,
                                                       p.alpha, p.beta, p.ce_weight, dloss.get(), dgrad.get(),
                                                       gparts.data());
  // Float statistics against the CPU's double: relative 1e-4, absolute 1e-4 * the logit scale for the
  // log-partition differences.
  const float atol = 1e-4f * std::max(1.0f, range);
  EXPECT_NEAR(gtotal, total, atol + 1e-4f * std::fabs(total));
  EXPECT_TRUE(all_close(gparts, parts, atol, 1e-4f));
  EXPECT_TRUE(all_close(dloss.host(), loss, atol, 1e-4f));
  EXPECT_TRUE(all_close(dgrad.host(), grad, 1e-6f, 1e-3f));
}

}  // namespace

TEST(DkdLossCuda, MatchesCpuAtAwkwardSizes) {
  const int64_t sizes[][2] = {{1, 1}, {1, 2}, {1, 31}, {31, 33}, {33, 10}, {3, 1000}, {2, 4096}, {1000, 3}};
  uint32_t seed = 11;
  for (const auto& sz : sizes) check(sz[0], sz[1], 5.0f, ops::DKDLossParams{}, seed += 3);
}

TEST(DkdLossCuda, RowsAboveSharedMemoryLimitMatchCpu) {
  check(3, 4097, 5.0f, ops::DKDLossParams{}, 7);
  check(2, 6000, 8.0f, ops::DKDLossParams{2.0f, 0.5f, 2.0f, 0.3f, 1.0f}, 8);
}

TEST(DkdLossCuda, LargeLogitsMatchCpu) {
  check(5, 100, 1e3f, ops::DKDLossParams{}, 9);
  check(4, 33, 1e4f, ops::DKDLossParams{1.0f, 1.0f, 8.0f, 1.0f, 1.0f}, 10);
}

TEST(DkdLossCuda, MatchesCpuAtRandomShapesAndSettings) {
  std::mt19937 rng(321);
  for (int i = 0; i < 5; ++i) {
    const int64_t rows = 1 + rng() % 40, cols = 1 + rng() % 700;
    ops::DKDLossParams p;
    p.temperature = 0.5f + static_cast<float>(rng() % 80) / 10.0f;
    p.alpha = static_cast<float>(rng() % 11) / 10.0f;
    p.beta = static_cast<float>(rng() % 90) / 10.0f;
    p.ce_weight = static_cast<float>(rng() % 11) / 10.0f;
    check(rows, cols, 6.0f, p, 500 + i);
  }
}

TEST(DkdLossCuda, OpOnDeviceTensorsMatchesCpuOp) {
  const int64_t rows = 33, C = 31;
  const auto s = test::random_vector(rows * C, 1, -4, 4), t = test::random_vector(rows * C, 2, -4, 4);
  const auto y = test::random_labels(rows, C, 3);
  ops::DKDLossParams p;
  p.warmup = 0.35f;
  std::vector<float> loss[2], parts[2], grad[2];
  int i = 0;
  for (Device dev : {Device::CPU, Device::CUDA}) {
    Tensor st = Tensor::from_vector(s, {rows, C}, dev).set_requires_grad(true);
    ops::DKDLossOutput o = ops::dkd_loss(st, Tensor::from_vector(t, {rows, C}, dev), Tensor::from_labels(y, dev), p);
    EXPECT_EQ(o.loss.device(), dev);
    ops::scale(o.loss, 2.0f).backward();
    loss[i] = o.loss.to_vector();
    parts[i] = o.parts.to_vector();
    grad[i++] = st.grad().to_vector();
  }
  EXPECT_TRUE(all_close(loss[1], loss[0], 1e-5f, 1e-4f));
  EXPECT_TRUE(all_close(parts[1], parts[0], 1e-5f, 1e-4f));
  EXPECT_TRUE(all_close(grad[1], grad[0], 1e-7f, 1e-3f));
}

TEST(DkdLossCuda, MeanIsIdenticalAcrossRuns) {
  const int64_t rows = 100, cols = 17;
  DeviceVec<float> ds(test::random_vector(rows * cols, 1, -3, 3)), dt(test::random_vector(rows * cols, 2, -3, 3));
  DeviceVec<int32_t> dlab(test::random_labels(rows, cols, 3));
  const float first = cuda::dkd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), 4, 1, 8, 1,
                                                      nullptr, nullptr, nullptr);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(cuda::dkd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), 4, 1, 8, 1, nullptr,
                                              nullptr, nullptr),
              first);
}

TEST(DkdLossCuda, LabelOutOfRangeThrowsOnTheHostAndIsNaNOnTheDevice) {
  const int64_t rows = 9, cols = 4;
  DeviceVec<float> ds(test::random_vector(rows * cols, 1)), dt(test::random_vector(rows * cols, 2));
  auto labels = test::random_labels(rows, cols, 3);
  labels[6] = 4;
  DeviceVec<int32_t> dlab(labels);
  DeviceVec<float> grad(rows * cols), loss(1), parts(3);
  try {
    cuda::dkd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), 4, 1, 8, 1, nullptr, grad.get(),
                                    nullptr);
    FAIL() << "expected islkd::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 4 of row 6"), std::string::npos) << e.what();
  }
  cuda::dkd_loss_forward_backward_on_device(rows, cols, ds.get(), dt.get(), dlab.get(), 4, 1, 8, 1, nullptr,
                                            grad.get(), loss.get(), parts.get());
  EXPECT_TRUE(std::isnan(loss.host()[0]));
  for (float v : parts.host()) EXPECT_TRUE(std::isnan(v));
}
