// The ISL curriculum: pacing values, phase boundaries, subset = easiest prefix, equal steps per epoch, the
// shuffling and ordering options, determinism, and exact resume from the serialised state.
#include "engine/distill/curriculum.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "engine/distill/kd.h"
#include "tests/common/test_util.h"

using namespace islkd;
using namespace islkd::distill;

namespace {

CurriculumOptions small_options(int64_t n = 1000) {
  CurriculumOptions o;
  o.num_instances = n;
  o.seed = 42;
  o.warmup_epochs = 1;
  o.phase_epochs = 2;
  o.num_phases = 3;
  o.start_fraction = 0.3;
  return o;
}

std::vector<float> scores_for(int64_t n, uint32_t seed) { return test::random_vector(static_cast<size_t>(n), seed, 0, 5); }

// Indices of the k smallest scores (ties by index), written with std::stable_sort.
std::vector<int64_t> easiest(const std::vector<float>& s, int64_t k) {
  std::vector<int64_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), int64_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return s[size_t(a)] < s[size_t(b)]; });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

// Runs the whole schedule, handing fresh scores at each boundary; returns every epoch's list.
std::vector<std::vector<int64_t>> run(Curriculum& c, int epochs, int first_epoch = 0) {
  std::vector<std::vector<int64_t>> lists;
  for (int e = first_epoch; e < epochs; ++e) {
    if (c.is_phase_boundary(e)) c.begin_phase(e, scores_for(c.options().num_instances, 1000 + e));
    lists.push_back(c.epoch_indices(e));
  }
  return lists;
}

bool is_permutation_of_all(std::vector<int64_t> v, int64_t n) {
  std::sort(v.begin(), v.end());
  for (int64_t i = 0; i < n; ++i)
    if (v[size_t(i)] != i) return false;
  return static_cast<int64_t>(v.size()) == n;
}

}  // namespace

TEST(Curriculum, PacingValuesFollowTheDocumentedFormulas) {
  CurriculumOptions o = small_options();
  o.start_fraction = 0.5;
  o.pacing = Pacing::Linear;
  Curriculum lin(o);
  EXPECT_DOUBLE_EQ(lin.fraction(0), 0.5);
  EXPECT_DOUBLE_EQ(lin.fraction(1), 0.5 + 0.5 / 3);
  EXPECT_DOUBLE_EQ(lin.fraction(2), 0.5 + 1.0 / 3);
  EXPECT_DOUBLE_EQ(lin.fraction(3), 1.0);
  EXPECT_DOUBLE_EQ(lin.fraction(Curriculum::kWarmup), 1.0);
  o.pacing = Pacing::Root;
  Curriculum root(o);
  for (int p = 0; p < 3; ++p) EXPECT_DOUBLE_EQ(root.fraction(p), std::sqrt(0.25 + 0.75 * p / 3.0)) << p;
  EXPECT_GT(root.fraction(1), lin.fraction(1));  // root grows faster early
  o.pacing = Pacing::Step;
  Curriculum step(o);
  for (int p = 0; p < 3; ++p) EXPECT_DOUBLE_EQ(step.fraction(p), 0.5) << p;
  EXPECT_DOUBLE_EQ(step.fraction(3), 1.0);
  o.full_at_last_phase = true;
  o.pacing = Pacing::Linear;
  Curriculum full(o);
  EXPECT_DOUBLE_EQ(full.fraction(0), 0.5);
  EXPECT_DOUBLE_EQ(full.fraction(1), 0.75);
  EXPECT_DOUBLE_EQ(full.fraction(2), 1.0);
  o.pacing = Pacing::Step;
  EXPECT_DOUBLE_EQ(Curriculum(o).fraction(1), 0.5);
  EXPECT_DOUBLE_EQ(Curriculum(o).fraction(2), 1.0);
}

TEST(Curriculum, SubsetSizeIsCeilOfFractionTimesN) {
  CurriculumOptions o = small_options(60000);
  o.start_fraction = 0.5;
  Curriculum c(o);
  EXPECT_EQ(c.subset_size(0), 30000);
  EXPECT_EQ(c.subset_size(1), 40000);  // (2/3) * 60000 exactly, not 40001
  EXPECT_EQ(c.subset_size(2), 50000);
  o.num_instances = 7;
  o.start_fraction = 0.01;
  EXPECT_EQ(Curriculum(o).subset_size(0), 1);  // never empty
}

// g * N that is an integer on paper but lands just above it in floating point: 0.1 + 0.9 * 0.5 = 0.55 computes to
// 0.55000000000000004 and 0.55 * 100 to 55.000000000000007, whose plain ceil is 56. The 1e-6 slack gives 55; a
// fraction truly above an integer still rounds up (0.1 * 101 = 10.1 -> 11).
TEST(Curriculum, SubsetSizeSlackKeepsAFractionThatRoundsUpInFloatingPointExact) {
  CurriculumOptions o = small_options(100);
  o.start_fraction = 0.1;
  o.num_phases = 2;
  o.pacing = Pacing::Linear;
  Curriculum c(o);
  ASSERT_GT(c.fraction(1) * 100.0, 55.0);  // the case this test is about: the product is above 55 before the slack
  EXPECT_EQ(c.subset_size(0), 10);
  EXPECT_EQ(c.subset_size(1), 55);
  o.num_instances = 101;
  EXPECT_EQ(Curriculum(o).subset_size(0), 11);
}

TEST(Curriculum, BoundariesAtTheRightEpochs) {
  CurriculumOptions o = small_options();
  o.warmup_epochs = 2;
  o.phase_epochs = 3;
  o.num_phases = 2;
  Curriculum c(o);
  const int phases[] = {-1, -1, 0, 0, 0, 1, 1, 1, 2, 2, 2};
  for (int e = 0; e < 11; ++e) {
    EXPECT_EQ(c.phase_of_epoch(e), phases[e]) << "epoch " << e;
    EXPECT_EQ(c.is_phase_boundary(e), e == 2 || e == 5) << "epoch " << e;
  }
  o.warmup_epochs = 0;
  o.phase_epochs = 1;
  Curriculum no_warmup(o);
  EXPECT_TRUE(no_warmup.is_phase_boundary(0));
  EXPECT_TRUE(no_warmup.is_phase_boundary(1));
  EXPECT_FALSE(no_warmup.is_phase_boundary(2));
}

TEST(Curriculum, SubsetIsTheEasiestPrefix) {
  CurriculumOptions o = small_options(1000);
  Curriculum c(o);
  for (int e : {1, 3, 5}) {
    std::vector<float> s = scores_for(1000, 7 + e);
    c.begin_phase(e, s);
    const int p = c.phase_of_epoch(e);
    const int64_t k = c.subset_size(p);
    std::vector<int64_t> want = easiest(s, k);
    EXPECT_EQ(std::vector<int64_t>(c.order().begin(), c.order().begin() + k), want) << "phase " << p;
    for (int epoch : {e, e + 1}) {
      std::vector<int64_t> got = c.epoch_indices(epoch);
      EXPECT_EQ(std::set<int64_t>(got.begin(), got.end()), std::set<int64_t>(want.begin(), want.end()))
          << "epoch " << epoch;
    }
  }
}

TEST(Curriculum, EveryEpochHasTheSameNumberOfSteps) {
  CurriculumOptions o = small_options(1003);  // prime-ish N: subsets do not divide it
  Curriculum c(o);
  std::vector<std::vector<int64_t>> lists = run(c, 10);
  for (size_t e = 0; e < lists.size(); ++e) {
    ASSERT_EQ(lists[e].size(), 1003u) << "epoch " << e;
    // A cycled subset visits every member floor(N/k) or ceil(N/k) times.
    std::map<int64_t, int> count;
    for (int64_t i : lists[e]) ++count[i];
    const int64_t k = static_cast<int64_t>(count.size());
    for (auto& [i, n] : count) {
      EXPECT_GE(n, 1003 / k) << "epoch " << e << " instance " << i;
      EXPECT_LE(n, (1003 + k - 1) / k) << "epoch " << e << " instance " << i;
    }
  }
}

TEST(Curriculum, SubsetCyclesAreReshuffledPermutationsOfTheSubset) {
  CurriculumOptions o = small_options(100);
  o.start_fraction = 0.3;
  Curriculum c(o);
  c.begin_phase(1, scores_for(100, 3));
  std::vector<int64_t> idx = c.epoch_indices(1);
  const int64_t k = c.subset_size(0);
  ASSERT_EQ(k, 30);
  std::vector<int64_t> c0(idx.begin(), idx.begin() + k), c1(idx.begin() + k, idx.begin() + 2 * k);
  EXPECT_EQ(std::set<int64_t>(c0.begin(), c0.end()), std::set<int64_t>(c1.begin(), c1.end()));
  EXPECT_EQ(std::set<int64_t>(c0.begin(), c0.end()).size(), size_t(k));
  EXPECT_NE(c0, c1) << "the second cycle repeats the first one's order";
  EXPECT_NE(c.epoch_indices(1), c.epoch_indices(2)) << "two epochs of a phase share their order";
}

TEST(Curriculum, SequenceOrderFeedsTheSubsetEasyToHard) {
  CurriculumOptions o = small_options(100);
  o.batch_order = BatchOrder::Sequence;
  Curriculum c(o);
  std::vector<float> s = scores_for(100, 5);
  c.begin_phase(1, s);
  std::vector<int64_t> want = easiest(s, 30), got = c.epoch_indices(1);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i % 30]) << i;
}

TEST(Curriculum, OrderingOnlyModeFeedsAllInstancesEasyToHard) {
  CurriculumOptions o = small_options(500);
  o.mode = CurriculumMode::OrderingOnly;
  Curriculum c(o);
  std::vector<float> s = scores_for(500, 6);
  c.begin_phase(1, s);
  EXPECT_EQ(c.epoch_indices(1), easiest(s, 500));
  EXPECT_EQ(c.epoch_indices(2), easiest(s, 500));
}

TEST(Curriculum, WarmupAndFinalEpochsShuffleAllInstances) {
  Curriculum c(small_options(500));
  std::vector<std::vector<int64_t>> lists = run(c, 9);
  for (int e : {0, 7, 8}) {
    EXPECT_TRUE(is_permutation_of_all(lists[size_t(e)], 500)) << "epoch " << e;
    std::vector<int64_t> identity(500);
    std::iota(identity.begin(), identity.end(), int64_t{0});
    EXPECT_NE(lists[size_t(e)], identity) << "epoch " << e << " is not shuffled";
  }
  EXPECT_NE(lists[7], lists[8]);
}

TEST(Curriculum, TiesKeepIndexOrderAndNaNScoresAreHardest) {
  CurriculumOptions o = small_options(6);
  o.mode = CurriculumMode::OrderingOnly;
  Curriculum c(o);
  c.begin_phase(1, std::vector<float>{1.0f, NAN, 0.5f, 1.0f, -0.0f, 0.0f});
  EXPECT_EQ(c.epoch_indices(1), (std::vector<int64_t>{4, 5, 2, 0, 3, 1}));
}

TEST(Curriculum, IsDeterministic) {
  Curriculum a(small_options()), b(small_options());
  EXPECT_EQ(run(a, 9), run(b, 9));
  CurriculumOptions other = small_options();
  other.seed = 43;
  Curriculum d(other);
  std::vector<std::vector<int64_t>> la = run(a, 9), ld = run(d, 9);
  for (size_t e = 0; e < la.size(); ++e) EXPECT_NE(la[e], ld[e]) << "seed does not change epoch " << e;
}

TEST(Curriculum, ResumeFromSerialisedStateGivesIdenticalIndexLists) {
  for (CurriculumMode mode : {CurriculumMode::Subset, CurriculumMode::OrderingOnly}) {
    CurriculumOptions o = small_options(777);
    o.mode = mode;
    o.pacing = Pacing::Root;
    Curriculum full(o);
    const std::vector<std::vector<int64_t>> want = run(full, 10);
    for (int stop = 0; stop < 10; ++stop) {
      // Train epochs [0, stop), checkpoint (through text, as a file would), resume at epoch `stop`.
      Curriculum first(o);
      run(first, stop);
      nlohmann::json state = nlohmann::json::parse(first.state_json().dump());
      Curriculum resumed = Curriculum::from_state(state, first.order());
      EXPECT_EQ(resumed.current_phase(), first.current_phase());
      std::vector<std::vector<int64_t>> rest = run(resumed, 10, stop);
      for (int e = stop; e < 10; ++e)
        ASSERT_EQ(rest[size_t(e - stop)], want[size_t(e)]) << "mode " << curriculum_mode_name(mode) << " resumed at "
                                                           << stop << ", epoch " << e;
    }
  }
}

TEST(Curriculum, StateRecordsPhaseFractionAndOptions) {
  Curriculum c(small_options());
  run(c, 4);
  nlohmann::json s = c.state_json();
  EXPECT_EQ(s["phase"], 1);
  EXPECT_DOUBLE_EQ(s["fraction"].get<double>(), c.fraction(1));
  EXPECT_EQ(s["options"]["pacing"], "linear");
  EXPECT_EQ(s["options"]["measure"], "loss");
  EXPECT_EQ(s["order_size"], 1000);
}

TEST(Curriculum, EpochWithoutItsPhaseOrderIsAnError) {
  Curriculum c(small_options());
  try {
    c.epoch_indices(1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("begin_phase"), std::string::npos) << e.what();
  }
  c.begin_phase(1, scores_for(1000, 1));
  EXPECT_NO_THROW(c.epoch_indices(2));
  EXPECT_THROW(c.epoch_indices(3), Error);  // phase 1 needs its own scores
  EXPECT_THROW(c.begin_phase(2, scores_for(1000, 1)), Error);  // not a boundary
  EXPECT_THROW(c.begin_phase(3, scores_for(999, 1)), Error);   // wrong count
}

TEST(Curriculum, BadStateOrOptionsAreErrors) {
  Curriculum c(small_options(10));
  c.begin_phase(1, scores_for(10, 1));
  std::vector<uint32_t> dup = c.order();
  dup[3] = dup[4];
  EXPECT_THROW(Curriculum::from_state(c.state_json(), dup), Error);
  EXPECT_THROW(Curriculum::from_state(c.state_json(), std::vector<uint32_t>(9)), Error);
  nlohmann::json opts = small_options().to_json();
  opts["pacng"] = "root";
  EXPECT_THROW(CurriculumOptions::from_json(opts), Error);
  opts = small_options().to_json();
  opts["start_fraction"] = 0.0;
  EXPECT_THROW(CurriculumOptions::from_json(opts), Error);
  opts["start_fraction"] = "half";
  EXPECT_THROW(CurriculumOptions::from_json(opts), Error);
  EXPECT_THROW(parse_pacing("cubic"), Error);
  EXPECT_THROW(parse_difficulty_measure("margin"), Error);
}

TEST(Curriculum, OptionsRoundTripThroughJson) {
  CurriculumOptions o = small_options(12345);
  o.mode = CurriculumMode::OrderingOnly;
  o.pacing = Pacing::Step;
  o.batch_order = BatchOrder::Sequence;
  o.full_at_last_phase = true;
  o.measure = DifficultyMeasure::Confidence;
  o.seed = 0xFFFFFFFFFFFFull;
  EXPECT_EQ(CurriculumOptions::from_json(o.to_json()).to_json(), o.to_json());
  EXPECT_EQ(kd_params_to_json(kd_params_from_json({{"temperature", 2.0}})), kd_params_to_json({2.0f, 0.9f}));
  // Logged as the decimals a user typed, not as the float widened to double (0.8999999761581421).
  EXPECT_EQ(kd_params_to_json({4.0f, 0.9f}).dump(), R"({"alpha":0.9,"temperature":4.0})");
  EXPECT_EQ(kd_params_to_json({3.3f, 0.1f}).dump(), R"({"alpha":0.1,"temperature":3.3})");
}
