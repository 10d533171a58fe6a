// The study conditions of issue 13: the validation hold-out (disjoint, fixed across run seeds, clean labels) and
// symmetric label noise (the asked rate, never the same class, uniform over the others, seeded).
#include "data/study_split.h"

#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "tests/common/test_util.h"

using namespace islkd;
using namespace islkd::data;

namespace {

// n 1x2x2 images whose pixels encode the instance index; labels i % classes.
std::shared_ptr<const Dataset> indexed_dataset(int64_t n, int classes) {
  std::vector<uint8_t> px(static_cast<size_t>(n * 4));
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int b = 0; b < 4; ++b) px[size_t(i * 4 + b)] = uint8_t((i >> (8 * b)) & 0xFF);
    y[size_t(i)] = int32_t(i % classes);
  }
  InMemoryDataset::Info info;
  for (int c = 0; c < classes; ++c) info.class_names.push_back("c" + std::to_string(c));
  info.norm = standard_normalization("mnist");
  info.source = "fixture";
  return std::make_shared<InMemoryDataset>(std::move(px), std::move(y), 1, 2, 2, info);
}

int64_t index_in_pixels(const Dataset& d, int64_t i) {
  uint8_t px[4];
  d.read(i, px);
  return int64_t(px[0]) | int64_t(px[1]) << 8 | int64_t(px[2]) << 16 | int64_t(px[3]) << 24;
}

}  // namespace

TEST(StudySplit, ValidationIsHeldOutDisjointAndTheSameForEveryRun) {
  auto base = indexed_dataset(1000, 10);
  HeldOut h = hold_out_validation(base, 900, 100);  // the first 900 only (a --limit)
  ASSERT_EQ(h.validation->size(), 100);
  ASSERT_EQ(h.train->size(), 800);
  std::set<int64_t> seen;
  for (const auto* d : {h.train.get(), h.validation.get()})
    for (int64_t i = 0; i < d->size(); ++i) {
      const int64_t src = index_in_pixels(*d, i);
      EXPECT_LT(src, 900);
      EXPECT_TRUE(seen.insert(src).second) << "instance " << src << " in both splits";
      EXPECT_EQ(d->label(i), int32_t(src % 10)) << "labels stay clean";
    }
  EXPECT_EQ(seen.size(), 900u);
  // Not simply the first or last 100, and the same split on every call (runs of different seeds compare on it).
  std::vector<int64_t> v;
  for (int64_t i = 0; i < 100; ++i) v.push_back(index_in_pixels(*h.validation, i));
  EXPECT_GT(v.back() - v.front(), 500);
  HeldOut again = hold_out_validation(base, 900, 100);
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(index_in_pixels(*again.validation, i), v[size_t(i)]);
  HeldOut other = hold_out_validation(base, 900, 100, 1);
  int same = 0;
  for (int64_t i = 0; i < 100; ++i) same += index_in_pixels(*other.validation, i) == v[size_t(i)];
  EXPECT_LT(same, 50) << "the split seed changes the split";
  EXPECT_THROW(hold_out_validation(base, 900, 900), Error);
  EXPECT_THROW(hold_out_validation(base, 900, 0), Error);
}

TEST(StudySplit, SymmetricLabelNoiseFlipsTheAskedShareUniformlyToOtherClasses) {
  const int classes = 10;
  const int64_t n = 40000;
  std::vector<int32_t> clean(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) clean[size_t(i)] = int32_t(i % classes);
  const double p = 0.4;
  std::vector<int32_t> noisy = symmetric_label_noise(clean, classes, p, 3);
  int64_t flipped = 0;
  std::map<int, int64_t> offset_count;  // (new - old) mod classes over the flipped ones: uniform over 1..9
  for (int64_t i = 0; i < n; ++i)
    if (noisy[size_t(i)] != clean[size_t(i)]) {
      ++flipped;
      ASSERT_GE(noisy[size_t(i)], 0);
      ASSERT_LT(noisy[size_t(i)], classes);
      ++offset_count[(noisy[size_t(i)] - clean[size_t(i)] + classes) % classes];
    }
  const double sd = std::sqrt(n * p * (1 - p));
  EXPECT_LE(std::abs(double(flipped) - n * p), 4 * sd) << flipped;
  EXPECT_EQ(offset_count.count(0), 0u);
  ASSERT_EQ(offset_count.size(), size_t(classes - 1));
  for (auto& [off, k] : offset_count) {
    const double q = 1.0 / (classes - 1), want = double(flipped) * q, s = std::sqrt(double(flipped) * q * (1 - q));
    EXPECT_LE(std::abs(double(k) - want), 4 * s) << "offset " << off;
  }
  EXPECT_EQ(symmetric_label_noise(clean, classes, p, 3), noisy);
  EXPECT_NE(symmetric_label_noise(clean, classes, p, 4), noisy);
  EXPECT_EQ(symmetric_label_noise(clean, classes, 0.0, 3), clean);
  EXPECT_THROW(symmetric_label_noise(clean, classes, 1.5, 3), Error);
}

TEST(StudySplit, NoisyViewKeepsThePixelsAndChangesOnlyLabels) {
  auto base = indexed_dataset(500, 5);
  auto v = with_label_noise(base, 400, 0.5, 9);
  ASSERT_EQ(v->size(), 400);
  int changed = 0;
  for (int64_t i = 0; i < 400; ++i) {
    EXPECT_EQ(index_in_pixels(*v, i), i);
    changed += v->label(i) != base->label(i);
  }
  EXPECT_GT(changed, 150);
  EXPECT_LT(changed, 250);
  EXPECT_EQ(v->num_classes(), 5);
}
