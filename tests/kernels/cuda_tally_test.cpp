// The device-side training tally (kernels/cuda/tally.cu) under the emulator against the host's count: argmax with
// the first maximum winning (ties, NaN rows), loss times rows, accumulation over several batches, awkward sizes.
#include <cmath>
#include <limits>

#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::DeviceVec;

namespace {

std::vector<double> read(const DeviceVec<double>& acc) { return acc.host(); }

// The host's count (engine/train/run_log.h count_correct): argmax with `>` from column 0, so the first maximum wins and
// a NaN row picks column 0.
int64_t count_correct(const std::vector<float>& v, int64_t rows, int64_t cols, const std::vector<int32_t>& labels) {
  int64_t correct = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v.data() + r * cols;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c)
      if (row[c] > row[best]) best = c;
    correct += best == labels[static_cast<size_t>(r)];
  }
  return correct;
}

}  // namespace

TEST(CudaTally, MatchesHostCountAtAwkwardSizesAndAccumulates) {
  DeviceVec<double> acc(std::vector<double>(3, 0.0));
  double loss_sum = 0.0, correct = 0.0, seen = 0.0;
  uint32_t seed = 40;
  const int64_t shapes[][2] = {{1, 1}, {1, 10}, {31, 3}, {33, 100}, {257, 10}, {1000, 7}};
  for (const auto& sh : shapes) {
    const int64_t rows = sh[0], cols = sh[1];
    std::vector<float> logits = test::random_vector(static_cast<size_t>(rows * cols), seed++);
    if (rows > 2 && cols > 2) {  // a tie (the first maximum wins) and a row of NaN (argmax 0, as on the host)
      logits[static_cast<size_t>(cols)] = logits[static_cast<size_t>(cols + 1)] = 5.0f;
      for (int64_t c = 0; c < cols; ++c) logits[static_cast<size_t>(2 * cols + c)] = std::nanf("");
    }
    const std::vector<int32_t> labels = test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(cols),
                                                            seed++);
    const float loss = 0.25f * static_cast<float>(seed);
    DeviceVec<float> dl(logits), dloss(std::vector<float>{loss});
    DeviceVec<int32_t> dlab(labels);
    cuda::tally_add(rows, cols, dl.get(), dlab.get(), dloss.get(), acc.get());
    loss_sum += static_cast<double>(loss) * static_cast<double>(rows);
    correct += static_cast<double>(count_correct(logits, rows, cols, labels));
    seen += static_cast<double>(rows);
    const std::vector<double> got = read(acc);
    EXPECT_EQ(got[0], loss_sum) << rows << " x " << cols;
    EXPECT_EQ(got[1], correct) << rows << " x " << cols;
    EXPECT_EQ(got[2], seen) << rows << " x " << cols;
  }
}

TEST(CudaTally, ZeroRowsAddNothing) {
  DeviceVec<double> acc(std::vector<double>{1.0, 2.0, 3.0});
  DeviceVec<float> dl(1), dloss(std::vector<float>{9.0f});
  DeviceVec<int32_t> dlab(1);
  cuda::tally_add(0, 4, dl.get(), dlab.get(), dloss.get(), acc.get());
  EXPECT_EQ(read(acc), (std::vector<double>{1.0, 2.0, 3.0}));
}
