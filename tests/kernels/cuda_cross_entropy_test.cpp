// CUDA cross-entropy (kernels/cuda/cross_entropy.cu) under the emulator against the CPU kernel: the mean, the
// per-row losses and dlogits at awkward sizes; the deterministic mean; an out-of-range label throws naming the row.
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
void check(int64_t rows, int64_t cols, float lo, float hi, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << rows << " x " << cols);
  const auto x = test::random_vector(static_cast<size_t>(rows * cols), seed, lo, hi);
  const auto labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), seed + 1);
  std::vector<float> loss(static_cast<size_t>(rows)), dl(x.size());
  const float mean = cpu::cross_entropy_forward_backward(rows, cols, x.data(), labels.data(), loss.data(), dl.data());
  DeviceVec<float> dx(x), dloss(loss.size()), ddl(x.size());
  DeviceVec<int32_t> dlab(labels);
  const float got = cuda::cross_entropy_forward_backward(rows, cols, dx.get(), dlab.get(), dloss.get(), ddl.get());
  EXPECT_NEAR(got, mean, 1e-5f + 1e-5f * std::fabs(mean));
  EXPECT_TRUE(all_close(dloss.host(), loss, 1e-5f, 1e-5f));
  EXPECT_TRUE(all_close(ddl.host(), dl, 1e-7f, 1e-4f));
  // Without the optional outputs the mean is the same.
  EXPECT_EQ(cuda::cross_entropy_forward_backward(rows, cols, dx.get(), dlab.get(), nullptr, nullptr), got);
}
}  // namespace

TEST(CrossEntropyCuda, MatchesCpuAtAwkwardSizes) {
  const int64_t sizes[][2] = {{1, 1}, {1, 31}, {31, 33}, {33, 10}, {3, 1000}, {1000, 7}};
  uint32_t seed = 41;
  for (const auto& s : sizes) check(s[0], s[1], -4.0f, 4.0f, seed += 2);
}

TEST(CrossEntropyCuda, LargeLogitsMatchCpu) { check(9, 100, -3e3f, 3e3f, 5); }

TEST(CrossEntropyCuda, MeanIsIdenticalAcrossRuns) {
  const int64_t rows = 300, cols = 13;
  const auto x = test::random_vector(static_cast<size_t>(rows * cols), 8, -3.0f, 3.0f);
  DeviceVec<float> dx(x);
  DeviceVec<int32_t> dlab(test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), 9));
  const float first = cuda::cross_entropy_forward_backward(rows, cols, dx.get(), dlab.get(), nullptr, nullptr);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(cuda::cross_entropy_forward_backward(rows, cols, dx.get(), dlab.get(), nullptr, nullptr), first);
}

TEST(CrossEntropyCuda, LabelOutOfRangeThrowsNamingRow) {
  const int64_t rows = 40, cols = 5;
  DeviceVec<float> dx(test::random_vector(static_cast<size_t>(rows * cols), 1));
  auto labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), 2);
  labels[17] = 5;
  labels[30] = -1;
  DeviceVec<int32_t> dlab(labels);
  DeviceVec<float> dl(static_cast<size_t>(rows * cols));
  try {
    cuda::cross_entropy_forward_backward(rows, cols, dx.get(), dlab.get(), nullptr, dl.get());
    FAIL() << "expected islkd::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 5 of row 17"), std::string::npos) << e.what();
  }
}
