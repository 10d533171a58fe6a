// Fused KD loss on CUDA (kernels/cuda/kd_loss.cu) under the emulator against the CPU kernel: the mean total, mean
// KD and CE parts, per-row losses and dL/dstudent at awkward sizes, on both paths (rows staged in shared memory
// for C <= 4096, two sweeps over global memory above), for logits of large magnitude; the deterministic mean;
// an out-of-range label throws naming the row.
#include <cmath>
#include <random>
#include <string>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

namespace {

void check(int64_t rows, int64_t cols, float scale, const KDLossParams& p, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << rows << " x " << cols << " logits in +-" << scale << " T=" << p.temperature
                                    << " alpha=" << p.alpha);
  const size_t n = static_cast<size_t>(rows * cols);
  const auto s = test::random_vector(n, seed, -scale, scale), t = test::random_vector(n, seed + 1, -scale, scale);
  const auto labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), seed + 2);
  std::vector<float> loss(static_cast<size_t>(rows)), grad(n);
  float kd = 0, ce = 0;
  const float total = cpu::kd_loss_forward_backward(rows, cols, s.data(), t.data(), labels.data(), p, loss.data(),
                                                    grad.data(), &kd, &ce);
  DeviceVec<float> ds(s), dt(t), dloss(loss.size()), dgrad(n);
  DeviceVec<int32_t> dlab(labels);
  float gkd = 0, gce = 0;
  const float gtotal = cuda::kd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), p, dloss.get(),
                                                      dgrad.get(), &gkd, &gce);
  // Float accumulation against the CPU's double: relative 1e-4, absolute 1e-4 * the logit scale for the KL's
  // cancellation between log-partitions.
  const float atol = 1e-4f * std::max(1.0f, scale);
  EXPECT_NEAR(gtotal, total, atol + 1e-4f * std::fabs(total));
  EXPECT_NEAR(gkd, kd, atol + 1e-4f * std::fabs(kd));
  EXPECT_NEAR(gce, ce, atol + 1e-4f * std::fabs(ce));
  EXPECT_TRUE(all_close(dloss.host(), loss, atol, 1e-4f));
  EXPECT_TRUE(all_close(dgrad.host(), grad, 1e-6f, 1e-3f));
}

KDLossParams kd_params(float T, float alpha) {
  KDLossParams p;
  p.temperature = T;
  p.alpha = alpha;
  return p;
}

}  // namespace

TEST(KdLossCuda, MatchesCpuAtAwkwardSizes) {
  const int64_t sizes[][2] = {{1, 1}, {1, 31}, {31, 33}, {33, 10}, {3, 1000}, {2, 4096}, {1000, 3}};
  uint32_t seed = 81;
  for (const auto& sz : sizes) check(sz[0], sz[1], 5.0f, kd_params(4.0f, 0.9f), seed += 3);
}

TEST(KdLossCuda, RowsAboveSharedMemoryLimitMatchCpu) {
  check(3, 4097, 5.0f, kd_params(4.0f, 0.9f), 7);
  check(2, 6000, 8.0f, kd_params(2.0f, 0.5f), 8);
}

TEST(KdLossCuda, LargeLogitsStayFiniteAndMatchCpu) {
  check(5, 100, 1e4f, kd_params(4.0f, 0.9f), 9);
  check(4, 5000, 1e3f, kd_params(1.0f, 0.3f), 10);
}

TEST(KdLossCuda, MatchesCpuAtRandomShapesAndSettings) {
  std::mt19937 rng(123);
  for (int i = 0; i < 5; ++i) {
    const int64_t rows = 1 + rng() % 40, cols = 1 + rng() % 700;
    const float T = 0.5f + static_cast<float>(rng() % 80) / 10.0f, alpha = static_cast<float>(rng() % 11) / 10.0f;
    check(rows, cols, 6.0f, kd_params(T, alpha), 400 + i);
  }
}

TEST(KdLossCuda, MeanIsIdenticalAcrossRuns) {
  const int64_t rows = 100, cols = 17;
  DeviceVec<float> ds(test::random_vector(static_cast<size_t>(rows * cols), 1, -3, 3));
  DeviceVec<float> dt(test::random_vector(static_cast<size_t>(rows * cols), 2, -3, 3));
  DeviceVec<int32_t> dlab(test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), 3));
  const KDLossParams p = kd_params(4.0f, 0.9f);
  const float first = cuda::kd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), p, nullptr, nullptr,
                                                     nullptr, nullptr);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(cuda::kd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), p, nullptr, nullptr, nullptr,
                                             nullptr),
              first);
}

TEST(KdLossCuda, LabelOutOfRangeThrowsNamingRow) {
  const int64_t rows = 9, cols = 4;
  DeviceVec<float> ds(test::random_vector(static_cast<size_t>(rows * cols), 1));
  DeviceVec<float> dt(test::random_vector(static_cast<size_t>(rows * cols), 2));
  auto labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), 3);
  labels[6] = 4;
  DeviceVec<int32_t> dlab(labels);
  DeviceVec<float> grad(static_cast<size_t>(rows * cols));
  try {
    cuda::kd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), kd_params(4, 0.9f), nullptr, grad.get(),
                                   nullptr, nullptr);
    FAIL() << "expected islkd::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 4 of row 6"), std::string::npos) << e.what();
  }
}

TEST(KdLossCuda, ZeroRowsGiveZeroMeans) {
  float kd = 1, ce = 1;
  EXPECT_EQ(cuda::kd_loss_forward_backward(0, 10, nullptr, nullptr, nullptr, kd_params(4, 0.9f), nullptr, nullptr, &kd,
                                           &ce),
            0.0f);
  EXPECT_EQ(kd, 0.0f);
  EXPECT_EQ(ce, 0.0f);
}

// The host-wait-free entry point (what ops::kd_loss uses on CUDA): the same bits as the synchronous one for the
// loss, its parts, per-row losses and the gradient, at awkward sizes; a label out of range gives NaN, no throw; and
// no host sync is made.
TEST(KdLossCuda, OnDeviceVariantMatchesTheSynchronousOneWithoutAHostSync) {
  const int64_t sizes[][2] = {{1, 1}, {31, 33}, {33, 10}, {3, 1000}, {2, 5000}, {1000, 3}};
  uint32_t seed = 700;
  for (const auto& sz : sizes) {
    const int64_t rows = sz[0], cols = sz[1];
    SCOPED_TRACE(::testing::Message() << rows << " x " << cols);
    const size_t n = static_cast<size_t>(rows * cols);
    const auto s = test::random_vector(n, seed++, -5.0f, 5.0f), t = test::random_vector(n, seed++, -5.0f, 5.0f);
    const auto labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), seed++);
    const KDLossParams p = kd_params(4.0f, 0.9f);
    DeviceVec<float> ds(s), dt(t), l1(static_cast<size_t>(rows)), g1(n), l2(static_cast<size_t>(rows)), g2(n);
    DeviceVec<float> loss(1), parts(2);
    DeviceVec<int32_t> dlab(labels);
    float kd = 0, ce = 0;
    const float total =
        cuda::kd_loss_forward_backward(rows, cols, ds.get(), dt.get(), dlab.get(), p, l1.get(), g1.get(), &kd, &ce);
    const cuda::Counters c0 = cuda::counters();
    cuda::kd_loss_forward_backward_on_device(rows, cols, ds.get(), dt.get(), dlab.get(), p, l2.get(), g2.get(),
                                             loss.get(), parts.get());
    EXPECT_EQ(cuda::counters_delta(c0, cuda::counters()).host_syncs, 0u);
    EXPECT_TRUE(all_close(loss.host(), {total}, 0.0f, 0.0f));
    EXPECT_TRUE(all_close(parts.host(), {kd, ce}, 0.0f, 0.0f));
    EXPECT_TRUE(all_close(l2.host(), l1.host(), 0.0f, 0.0f));
    EXPECT_TRUE(all_close(g2.host(), g1.host(), 0.0f, 0.0f));
  }
  // A label out of range: NaN loss and parts (the synchronous entry point throws instead).
  DeviceVec<float> ds(test::random_vector(12, 1)), dt(test::random_vector(12, 2)), rl(3), loss(1), parts(2);
  DeviceVec<int32_t> dlab(std::vector<int32_t>{0, 4, 1});
  cuda::kd_loss_forward_backward_on_device(3, 4, ds.get(), dt.get(), dlab.get(), kd_params(4.0f, 0.5f), rl.get(),
                                           nullptr, loss.get(), parts.get());
  EXPECT_TRUE(std::isnan(loss.host()[0]));
  EXPECT_TRUE(std::isnan(parts.host()[0]) && std::isnan(parts.host()[1]));
}
