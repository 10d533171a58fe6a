// Difficulty scores on CUDA (kernels/cuda/difficulty_scores.cu) under the emulator against the CPU kernel, for
// all four measures at awkward sizes (ce and confidence without a teacher), and the label check.
#include <cmath>
#include <string>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

namespace {

const DifficultyMeasure kMeasures[] = {DifficultyMeasure::CE, DifficultyMeasure::KD, DifficultyMeasure::Loss,
                                       DifficultyMeasure::Confidence};

void check(int64_t rows, int64_t cols, float scale, uint32_t seed) {
  const size_t n = static_cast<size_t>(rows * cols);
  const auto s = test::random_vector(n, seed, -scale, scale), t = test::random_vector(n, seed + 1, -scale, scale);
  const auto labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols), seed + 2);
  KDLossParams p;
  p.temperature = 3.0f;
  p.alpha = 0.7f;
  DeviceVec<float> ds(s), dt(t), dscores(static_cast<size_t>(rows));
  DeviceVec<int32_t> dlab(labels);
  for (DifficultyMeasure m : kMeasures) {
    SCOPED_TRACE(::testing::Message() << rows << " x " << cols << " measure " << static_cast<int>(m));
    const bool teacher = m == DifficultyMeasure::KD || m == DifficultyMeasure::Loss;
    std::vector<float> ref(static_cast<size_t>(rows));
    cpu::difficulty_scores(rows, cols, s.data(), teacher ? t.data() : nullptr, labels.data(), m, p, ref.data());
    cuda::difficulty_scores(rows, cols, ds.get(), teacher ? dt.get() : nullptr, dlab.get(), m, p, dscores.get());
    EXPECT_TRUE(all_close(dscores.host(), ref, 1e-5f * std::max(1.0f, scale), 1e-4f));
  }
}

}  // namespace

TEST(DifficultyScoresCuda, AllMeasuresMatchCpuAtAwkwardSizes) {
  const int64_t sizes[][2] = {{1, 1}, {1, 31}, {31, 33}, {33, 10}, {3, 1000}, {2, 5000}, {100, 3}};
  uint32_t seed = 91;
  for (const auto& sz : sizes) check(sz[0], sz[1], 5.0f, seed += 3);
}

TEST(DifficultyScoresCuda, LargeLogitsMatchCpu) { check(7, 120, 2e3f, 5); }

TEST(DifficultyScoresCuda, LabelOutOfRangeThrowsNamingRow) {
  const int64_t rows = 5, cols = 3;
  DeviceVec<float> ds(test::random_vector(static_cast<size_t>(rows * cols), 1));
  DeviceVec<int32_t> dlab(std::vector<int32_t>{0, 1, 2, -3, 1});
  DeviceVec<float> out(static_cast<size_t>(rows));
  try {
    cuda::difficulty_scores(rows, cols, ds.get(), nullptr, dlab.get(), DifficultyMeasure::CE, KDLossParams{},
                            out.get());
    FAIL() << "expected islkd::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label -3 of row 3"), std::string::npos) << e.what();
  }
}
