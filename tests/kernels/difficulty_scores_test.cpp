// Difficulty scores: each measure against the double-precision reference, `loss` equal to the KD loss's per-row
// loss bit for bit, measures that need no teacher, extreme logits, and the label errors.
#include <cmath>
#include <random>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/kd_reference.h"

using namespace islkd;

namespace {

std::vector<int32_t> random_labels(int64_t rows, int64_t C, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> y(static_cast<size_t>(rows));
  for (auto& v : y) v = static_cast<int32_t>(rng() % static_cast<uint32_t>(C));
  return y;
}

std::vector<float> scores(int64_t rows, int64_t C, const std::vector<float>& s, const std::vector<float>* t,
                          const std::vector<int32_t>& y, DifficultyMeasure m, const KDLossParams& p) {
  Tensor tt = t ? Tensor::from_vector(*t, {rows, C}) : Tensor();
  return ops::difficulty_scores(Tensor::from_vector(s, {rows, C}), tt, Tensor::from_labels(y), m, p).to_vector();
}

}  // namespace

TEST(DifficultyScores, EachMeasureMatchesDoubleReference) {
  const KDLossParams p{4.0f, 0.9f};
  uint32_t seed = 1;
  for (int64_t C : {1, 2, 10, 100, 1000})
    for (int64_t rows : {1, 31, 33}) {
      ++seed;
      std::vector<float> s = test::random_vector(static_cast<size_t>(rows * C), seed, -6, 6);
      std::vector<float> t = test::random_vector(static_cast<size_t>(rows * C), seed + 99, -6, 6);
      std::vector<int32_t> y = random_labels(rows, C, seed);
      test::RefKD ref = test::ref_kd(rows, C, s, t, y, p.temperature, p.alpha);
      std::vector<double> conf;
      for (int64_t i = 0; i < rows; ++i) conf.push_back(1.0 - std::exp(-ref.ce[static_cast<size_t>(i)]));
      std::string what = "C=" + std::to_string(C) + " rows=" + std::to_string(rows);
      EXPECT_TRUE(test::all_close(scores(rows, C, s, &t, y, DifficultyMeasure::CE, p), test::to_float(ref.ce), 1e-6f,
                                  1e-5f))
          << what << " ce";
      EXPECT_TRUE(test::all_close(scores(rows, C, s, &t, y, DifficultyMeasure::KD, p), test::to_float(ref.kd), 1e-6f,
                                  1e-5f))
          << what << " kd";
      EXPECT_TRUE(test::all_close(scores(rows, C, s, &t, y, DifficultyMeasure::Loss, p), test::to_float(ref.loss),
                                  1e-6f, 1e-5f))
          << what << " loss";
      EXPECT_TRUE(test::all_close(scores(rows, C, s, &t, y, DifficultyMeasure::Confidence, p), test::to_float(conf),
                                  1e-6f, 1e-5f))
          << what << " confidence";
    }
}

TEST(DifficultyScores, LossScoreEqualsKDLossRowLossExactly) {
  const int64_t rows = 40, C = 10;
  std::vector<float> s = test::random_vector(rows * C, 3, -5, 5), t = test::random_vector(rows * C, 4, -5, 5);
  std::vector<int32_t> y = random_labels(rows, C, 5);
  for (const KDLossParams& p : {KDLossParams{4.0f, 0.9f}, KDLossParams{2.0f, 0.3f}}) {
    Tensor st = Tensor::from_vector(s, {rows, C}).set_requires_grad(true);
    ops::KDLossOutput out = ops::kd_loss(st, Tensor::from_vector(t, {rows, C}), Tensor::from_labels(y), p);
    EXPECT_EQ(scores(rows, C, s, &t, y, DifficultyMeasure::Loss, p), out.row_loss.to_vector());
  }
}

TEST(DifficultyScores, CeAndConfidenceNeedNoTeacher) {
  std::vector<float> s = {2, 0, -1, 0.5f, 0.5f, 3};
  std::vector<int32_t> y = {0, 2};
  std::vector<float> t(6, 0.0f);
  for (DifficultyMeasure m : {DifficultyMeasure::CE, DifficultyMeasure::Confidence})
    EXPECT_EQ(scores(2, 3, s, nullptr, y, m, KDLossParams{}), scores(2, 3, s, &t, y, m, KDLossParams{}));
  for (DifficultyMeasure m : {DifficultyMeasure::KD, DifficultyMeasure::Loss}) {
    try {
      scores(2, 3, s, nullptr, y, m, KDLossParams{});
      FAIL() << "no error without a teacher";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("teacher"), std::string::npos) << e.what();
    }
  }
}

TEST(DifficultyScores, ConfidenceKeepsSmallDifferencesNearCertainty) {
  // Margins of 20 and 25: 1 - p is ~2e-9 and ~1.4e-11, both below float epsilon next to 1, yet ordered.
  std::vector<float> s = {20, 0, 25, 0, 5, 0};
  std::vector<int32_t> y = {0, 0, 0};
  std::vector<float> c = scores(3, 2, s, nullptr, y, DifficultyMeasure::Confidence, KDLossParams{});
  EXPECT_TRUE(test::all_close(c, {static_cast<float>(-std::expm1(-std::log1p(std::exp(-20.0)))),
                                  static_cast<float>(-std::expm1(-std::log1p(std::exp(-25.0)))),
                                  static_cast<float>(-std::expm1(-std::log1p(std::exp(-5.0))))},
                              0.0f, 1e-5f));
  EXPECT_GT(c[0], c[1]);
  EXPECT_GT(c[1], 0.0f);
}

TEST(DifficultyScores, EasierInstancesScoreLower) {
  // Row 0: snapshot and teacher confidently right; row 1: both unsure; row 2: snapshot confidently wrong.
  std::vector<float> s = {8, 0, 0, 1, 1, 0.5f, 0, 8, 0};
  std::vector<float> t = {8, 0, 0, 1, 1, 0.5f, 8, 0, 0};
  std::vector<int32_t> y = {0, 0, 0};
  for (DifficultyMeasure m :
       {DifficultyMeasure::CE, DifficultyMeasure::Loss, DifficultyMeasure::Confidence, DifficultyMeasure::KD}) {
    std::vector<float> v = scores(3, 3, s, &t, y, m, KDLossParams{});
    EXPECT_LT(v[0], v[2]) << "measure " << static_cast<int>(m);
    if (m != DifficultyMeasure::KD) {
      EXPECT_LT(v[1], v[2]) << "measure " << static_cast<int>(m);
    }
  }
}

TEST(DifficultyScores, HugeLogitsStayFiniteAndMatch) {
  std::vector<float> s = {1e4f, -1e4f, 0, -1e4f, 1e4f, 3, 5e3f, 5e3f, -5e3f};
  std::vector<float> t = {-1e4f, 1e4f, 0, -1e4f, 1e4f, 1, 5e3f, -5e3f, 5e3f};
  std::vector<int32_t> y = {0, 2, 1};
  const KDLossParams p{4.0f, 0.9f};
  test::RefKD ref = test::ref_kd(3, 3, s, t, y, p.temperature, p.alpha);
  std::vector<float> kd = scores(3, 3, s, &t, y, DifficultyMeasure::KD, p);
  std::vector<float> ce = scores(3, 3, s, &t, y, DifficultyMeasure::CE, p);
  for (float v : kd) EXPECT_TRUE(std::isfinite(v));
  for (float v : ce) EXPECT_TRUE(std::isfinite(v));
  EXPECT_TRUE(test::all_close(kd, test::to_float(ref.kd), 1e-4f, 1e-6f));
  EXPECT_TRUE(test::all_close(ce, test::to_float(ref.ce), 1e-4f, 1e-6f));
}

TEST(DifficultyScores, LabelOutOfRangeNamesRowAndLabel) {
  try {
    ops::difficulty_scores(Tensor::zeros({3, 4}), Tensor(), Tensor::from_labels({0, 7, 1}), DifficultyMeasure::CE,
                           KDLossParams{});
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("difficulty_scores"), std::string::npos) << m;
    EXPECT_NE(m.find("row 1"), std::string::npos) << m;
    EXPECT_NE(m.find("label 7"), std::string::npos) << m;
  }
}

TEST(DifficultyScores, ResultDoesNotDependOnThreadCount) {
  const int64_t rows = 3000, C = 10;
  std::vector<float> s = test::random_vector(rows * C, 8, -4, 4), t = test::random_vector(rows * C, 9, -4, 4);
  std::vector<int32_t> y = random_labels(rows, C, 10);
  const int saved = cpu::num_threads();
  cpu::set_num_threads(1);
  std::vector<float> one = scores(rows, C, s, &t, y, DifficultyMeasure::Loss, KDLossParams{});
  cpu::set_num_threads(2);
  std::vector<float> two = scores(rows, C, s, &t, y, DifficultyMeasure::Loss, KDLossParams{});
  cpu::set_num_threads(saved);
  EXPECT_EQ(one, two);
}
