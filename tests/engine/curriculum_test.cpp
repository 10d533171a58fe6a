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
  o.measure = Measure::Confidence;
  o.seed = 0xFFFFFFFFFFFFull;
  EXPECT_EQ(CurriculumOptions::from_json(o.to_json()).to_json(), o.to_json());
  EXPECT_EQ(kd_params_to_json(kd_params_from_json({{"temperature", 2.0}})), kd_params_to_json({2.0f, 0.9f}));
  // Logged as the decimals a user typed, not as the float widened to double (0.8999999761581421).
  EXPECT_EQ(kd_params_to_json({4.0f, 0.9f}).dump(), R"({"alpha":0.9,"temperature":4.0})");
  EXPECT_EQ(kd_params_to_json({3.3f, 0.1f}).dump(), R"({"alpha":0.1,"temperature":3.3})");
}

// ---- issue 13: the fair comparison with KD, the controls and the variants ----

namespace {

// A stand-in for KD's ShuffledSampler: any (epoch)-determined permutation the curriculum cannot guess.
std::vector<int64_t> fake_plain(int64_t n, int epoch) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  std::mt19937 g(static_cast<uint32_t>(1234 + epoch));
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[std::uniform_int_distribution<size_t>(0, i - 1)(g)]);
  return v;
}

std::vector<int32_t> labels_for(int64_t n, const std::vector<int>& class_sizes) {
  std::vector<int32_t> y;
  for (size_t c = 0; c < class_sizes.size(); ++c) y.insert(y.end(), size_t(class_sizes[c]), int32_t(c));
  EXPECT_EQ(static_cast<int64_t>(y.size()), n);
  std::mt19937 g(5);
  std::shuffle(y.begin(), y.end(), g);
  return y;
}

}  // namespace

TEST(Curriculum, OutsideItsPhasesItHandsOutThePlainOrder) {
  Curriculum c(small_options(300));
  c.set_plain_order([](int e) { return fake_plain(300, e); });
  std::vector<std::vector<int64_t>> lists = run(c, 9);
  for (int e : {0, 7, 8}) EXPECT_EQ(lists[size_t(e)], fake_plain(300, e)) << "epoch " << e;
  EXPECT_THROW(
      {
        Curriculum bad(small_options(300));
        bad.set_plain_order([](int e) { return fake_plain(299, e); });
        bad.epoch_indices(0);
      },
      Error);
}

TEST(Curriculum, PhaseOnAllDataShuffledIsExactlyThePlainEpoch) {
  CurriculumOptions o = small_options(300);
  o.start_fraction = 1.0;
  Curriculum c(o);
  c.set_plain_order([](int e) { return fake_plain(300, e); });
  std::vector<std::vector<int64_t>> lists = run(c, 9);
  for (int e = 0; e < 9; ++e) EXPECT_EQ(lists[size_t(e)], fake_plain(300, e)) << "epoch " << e;
}

TEST(Curriculum, FirstPassOverAShuffledSubsetIsThePlainOrderRestrictedToIt) {
  Curriculum c(small_options(300));  // phase 0: 30%
  c.set_plain_order([](int e) { return fake_plain(300, e); });
  c.begin_phase(1, scores_for(300, 9));
  const int64_t k = c.subset_size(0);
  std::set<int64_t> subset(c.order().begin(), c.order().begin() + k);
  std::vector<int64_t> want;
  for (int64_t i : fake_plain(300, 1))
    if (subset.count(i)) want.push_back(i);
  std::vector<int64_t> got = c.epoch_indices(1);
  EXPECT_EQ(std::vector<int64_t>(got.begin(), got.begin() + k), want);
}

TEST(Curriculum, RandomMeasureIsASeededRandomSubsetOfTheSameSize) {
  CurriculumOptions o = small_options(1000);
  o.measure = Measure::Random;
  Curriculum c(o), same(o);
  std::vector<float> s = c.random_scores(1);
  std::vector<float> sorted = s;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) ASSERT_EQ(sorted[i], float(i));  // a permutation of the ranks
  EXPECT_EQ(s, same.random_scores(1));
  EXPECT_NE(s, c.random_scores(3));
  o.seed = 7;
  EXPECT_NE(s, Curriculum(o).random_scores(1));
  // Each instance lands in the 30% subset about 30% of the time over many boundaries (binomial, 200 draws).
  std::vector<int> in_subset(1000, 0);
  for (int e = 0; e < 200; ++e) {
    CurriculumOptions oe = small_options(1000);
    oe.seed = uint64_t(e);
    Curriculum ce(oe);
    ce.begin_phase(1, ce.random_scores(1));
    for (int64_t r = 0; r < ce.subset_size(0); ++r) ++in_subset[ce.order()[size_t(r)]];
  }
  const double sd = std::sqrt(200 * 0.3 * 0.7);
  int outside = 0;
  for (int n : in_subset) outside += std::abs(n - 60) > 4 * sd;
  EXPECT_EQ(outside, 0);
}

TEST(Curriculum, HardFirstReversesTheCurriculumsOrder) {
  CurriculumOptions o = small_options(500);
  Curriculum easy(o);
  o.direction = Direction::HardFirst;
  Curriculum hard(o);
  std::vector<float> s = scores_for(500, 11);
  easy.begin_phase(1, s);
  hard.begin_phase(1, s);
  std::vector<uint32_t> reversed(easy.order().rbegin(), easy.order().rend());
  EXPECT_EQ(hard.order(), reversed);
  // The subset is the hardest 30%.
  std::vector<int64_t> idx = hard.epoch_indices(1);
  std::set<int64_t> want(reversed.begin(), reversed.begin() + hard.subset_size(0));
  EXPECT_EQ(std::set<int64_t>(idx.begin(), idx.end()), want);
}

TEST(Curriculum, StratifiedSubsetsKeepEveryClassShareWithinOneInstance) {
  const int64_t n = 1000;
  const std::vector<int> sizes = {400, 250, 150, 100, 60, 40};  // unbalanced on purpose
  std::vector<int32_t> y = labels_for(n, sizes);
  // Scores that make some classes much easier than others (the imbalance the option removes).
  std::vector<float> s = scores_for(n, 13);
  for (int64_t i = 0; i < n; ++i) s[size_t(i)] += 2.0f * float(y[size_t(i)] % 3);
  CurriculumOptions o = small_options(n);
  o.stratified = true;
  Curriculum c(o);
  EXPECT_THROW(c.begin_phase(1, s), Error);  // no labels yet
  c.set_labels(y);
  c.begin_phase(1, s);
  std::vector<int> count(sizes.size(), 0);
  for (int64_t k = 1; k <= n; ++k) {  // every prefix, so every pacing's subset
    ++count[size_t(y[c.order()[size_t(k - 1)]])];
    for (size_t cl = 0; cl < sizes.size(); ++cl)
      ASSERT_LE(std::abs(double(count[cl]) - double(k) * sizes[cl] / double(n)), 1.0) << "prefix " << k << " class " << cl;
  }
  // Within a class, the easiest come first.
  const int64_t k = c.subset_size(0);
  for (size_t cl = 0; cl < sizes.size(); ++cl) {
    std::vector<float> in, out;
    for (int64_t r = 0; r < n; ++r) {
      const uint32_t i = c.order()[size_t(r)];
      if (y[i] == int32_t(cl)) (r < k ? in : out).push_back(s[i]);
    }
    EXPECT_LE(*std::max_element(in.begin(), in.end()), *std::min_element(out.begin(), out.end())) << "class " << cl;
  }
}

TEST(Curriculum, HardShareAddsRandomHarderInstancesToTheEasiest) {
  CurriculumOptions o = small_options(1000);
  o.start_fraction = 0.4;
  o.hard_share = 0.25;
  Curriculum c(o);
  std::vector<float> s = scores_for(1000, 17);
  c.begin_phase(1, s);
  const int64_t k = c.subset_size(0);
  ASSERT_EQ(k, 400);
  const std::vector<int64_t> sorted = easiest(s, 1000);
  std::vector<int64_t> subset(c.order().begin(), c.order().begin() + k);
  EXPECT_EQ(std::vector<int64_t>(subset.begin(), subset.begin() + 300), std::vector<int64_t>(sorted.begin(), sorted.begin() + 300));
  std::set<int64_t> easy400(sorted.begin(), sorted.begin() + 400), picks(subset.begin() + 300, subset.end());
  EXPECT_EQ(picks.size(), 100u);
  int from_easy = 0;
  for (int64_t i : picks) from_easy += easy400.count(i);
  EXPECT_LT(from_easy, 40) << "the picks are drawn from all 700 harder instances, about 100/7 from ranks 300-399";
  std::set<int64_t> got = {};
  for (int64_t i : c.epoch_indices(1)) got.insert(i);
  EXPECT_EQ(got, std::set<int64_t>(subset.begin(), subset.end()));
  o.seed = 43;
  Curriculum d(o);
  d.begin_phase(1, s);
  EXPECT_NE(std::vector<uint32_t>(d.order().begin() + 300, d.order().begin() + 400),
            std::vector<uint32_t>(c.order().begin() + 300, c.order().begin() + 400));
}

TEST(Curriculum, WeightedDrawFrequenciesFollowExpMinusRankOverTau) {
  const int64_t n = 100;
  CurriculumOptions o = small_options(n);
  o.mode = CurriculumMode::Weighted;
  o.weight_tau = 0.2;
  o.num_phases = 2;
  o.phase_epochs = 1000;  // 1000 epochs x 100 draws = 10^5 draws in phase 0
  Curriculum c(o);
  EXPECT_DOUBLE_EQ(c.weight_tau(0), 0.2);
  EXPECT_DOUBLE_EQ(c.weight_tau(1), 0.4);  // annealed: tau / (1 - 1/2)
  EXPECT_TRUE(std::isinf(c.weight_tau(2)));
  std::vector<float> s = scores_for(n, 19);
  c.begin_phase(1, s);
  std::vector<int64_t> rank_of(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) rank_of[c.order()[size_t(r)]] = r;
  std::vector<double> count(static_cast<size_t>(n), 0.0);
  for (int e = 1; e <= 1000; ++e)
    for (int64_t i : c.epoch_indices(e)) ++count[size_t(rank_of[size_t(i)])];
  double z = 0.0;
  for (int64_t r = 0; r < n; ++r) z += std::exp(-double(r) / (0.2 * n));
  int bins_checked = 0;
  for (int64_t b = 0; b < 10; ++b) {  // bins of 10 ranks: the probability, the count, sigma of the binomial
    double p = 0.0, got = 0.0;
    for (int64_t r = 10 * b; r < 10 * b + 10; ++r) {
      p += std::exp(-double(r) / (0.2 * n)) / z;
      got += count[size_t(r)];
    }
    const double want = 1e5 * p, sigma = std::sqrt(1e5 * p * (1 - p));
    EXPECT_LE(std::abs(got - want), 3 * sigma) << "ranks " << 10 * b << "-" << 10 * b + 9;
    ++bins_checked;
  }
  EXPECT_EQ(bins_checked, 10);
  EXPECT_GT(count[0], 10 * count[size_t(n - 1)]);  // exp(5) ~ 148 times as likely
  EXPECT_EQ(c.epoch_indices(1).size(), size_t(n));
}

TEST(Curriculum, TeacherCeOrderIsTheArgsortOfTheTeachersCrossEntropy) {
  const int64_t n = 500, classes = 7;
  std::vector<float> logits = test::random_vector(size_t(n * classes), 23, -4, 4);
  std::vector<int32_t> y(static_cast<size_t>(n));
  std::mt19937 g(29);
  for (auto& v : y) v = int32_t(g() % classes);
  std::vector<double> ce(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double m = -1e30, sum = 0.0;
    for (int64_t c = 0; c < classes; ++c) m = std::max(m, double(logits[size_t(i * classes + c)]));
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(double(logits[size_t(i * classes + c)]) - m);
    ce[size_t(i)] = m + std::log(sum) - double(logits[size_t(i * classes + y[size_t(i)])]);
  }
  std::vector<int64_t> want(static_cast<size_t>(n));
  std::iota(want.begin(), want.end(), int64_t{0});
  std::stable_sort(want.begin(), want.end(), [&](int64_t a, int64_t b) { return ce[size_t(a)] < ce[size_t(b)]; });
  CurriculumOptions o = small_options(n);
  o.measure = Measure::TeacherCE;
  o.warmup_epochs = 0;  // usable from step 0: nothing of the student is needed
  o.mode = CurriculumMode::OrderingOnly;
  Curriculum c(o);
  ASSERT_TRUE(c.is_phase_boundary(0));
  std::vector<float> sc = teacher_difficulty(logits, y, classes, Measure::TeacherCE);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(sc[size_t(i)], ce[size_t(i)], 1e-5 * (1 + ce[size_t(i)])) << i;
  c.begin_phase(0, sc);
  EXPECT_EQ(c.epoch_indices(0), want);
  // teacher-confidence: 1 - p_teacher(label), the same order as the CE (a monotone function of it).
  std::vector<float> conf = teacher_difficulty(logits, y, classes, Measure::TeacherConfidence);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(conf[size_t(i)], 1.0 - std::exp(-ce[size_t(i)]), 1e-5) << i;
  std::vector<int32_t> pred = teacher_predictions(logits, classes);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(logits[size_t(i * classes + pred[size_t(i)])],
              *std::max_element(logits.begin() + i * classes, logits.begin() + (i + 1) * classes));
  EXPECT_THROW(teacher_difficulty(logits, y, classes, Measure::Loss), Error);
  EXPECT_FALSE(needs_student(Measure::TeacherCE));
  EXPECT_TRUE(needs_student(Measure::Disagreement));
}

TEST(Curriculum, RescoreEveryEpochMakesEveryPhaseEpochABoundary) {
  CurriculumOptions o = small_options(200);  // warm-up 1, 3 phases of 2 epochs
  o.rescore_every_epoch = true;
  Curriculum c(o);
  for (int e = 0; e < 9; ++e) EXPECT_EQ(c.is_phase_boundary(e), e >= 1 && e <= 6) << e;
  c.begin_phase(1, scores_for(200, 1));
  EXPECT_NO_THROW(c.epoch_indices(1));
  EXPECT_THROW(c.epoch_indices(2), Error);  // epoch 2 needs its own scores
  c.begin_phase(2, scores_for(200, 2));
  EXPECT_EQ(c.order_epoch(), 2);
  EXPECT_EQ(std::vector<int64_t>(c.order().begin(), c.order().begin() + 60), easiest(scores_for(200, 2), 60));
}

TEST(Curriculum, LrSegmentsAndTheFirstLrDrop) {
  CurriculumOptions o = small_options(100);  // warm-up 1, 3 phases of 2: segments [0,1) [1,3) [3,5) [5,7) [7,..)
  Curriculum c(o);
  const int starts[] = {0, 1, 1, 3, 3, 5, 5, 7, 7, 7};
  const int ends[] = {1, 3, 3, 5, 5, 7, 7, 10, 10, 10};
  for (int e = 0; e < 10; ++e) {
    EXPECT_EQ(c.segment_start(e), starts[e]) << e;
    EXPECT_EQ(c.segment_end(e, 10), ends[e]) << e;
  }
  // The KD schedule scaled to 3 epochs drops at 150/240 * 3 = 1.875: one whole epoch before it.
  MultiStepLR kd3(0.05, {1.875, 2.25, 2.625}, 0.1);
  EXPECT_EQ(epochs_before_lr_drop(kd3, 3, 469), 1);
  MultiStepLR kd6(0.05, {3.75, 4.5, 5.25}, 0.1);
  EXPECT_EQ(epochs_before_lr_drop(kd6, 6, 469), 3);
  ConstantLR flat(0.1);
  EXPECT_EQ(epochs_before_lr_drop(flat, 4, 10), 4);
}

// Every variant resumes exactly: the order it made (after its rearrangement) and its epoch are the state.
TEST(Curriculum, EveryVariantResumesFromItsSerialisedStateExactly) {
  const int64_t n = 300;
  const std::vector<int32_t> y = labels_for(n, {100, 80, 70, 50});
  std::vector<CurriculumOptions> variants;
  auto add = [&](auto set) {
    CurriculumOptions o = small_options(n);
    set(o);
    variants.push_back(o);
  };
  add([](CurriculumOptions& o) { o.measure = Measure::Random; });
  add([](CurriculumOptions& o) { o.direction = Direction::HardFirst; });
  add([](CurriculumOptions& o) { o.stratified = true; });
  add([](CurriculumOptions& o) { o.hard_share = 0.3; });
  add([](CurriculumOptions& o) { o.mode = CurriculumMode::Weighted; });
  add([](CurriculumOptions& o) { o.rescore_every_epoch = true; o.stratified = true; o.hard_share = 0.2; });
  add([](CurriculumOptions& o) { o.measure = Measure::TeacherCE; o.warmup_epochs = 0; o.lr_restart = true; });
  auto prepare = [&](Curriculum& c) {
    c.set_plain_order([n](int e) { return fake_plain(n, e); });
    c.set_labels(y);
  };
  for (const CurriculumOptions& o : variants) {
    Curriculum full(o);
    prepare(full);
    const std::vector<std::vector<int64_t>> want = run(full, 9);
    for (int stop = 0; stop < 9; ++stop) {
      Curriculum first(o);
      prepare(first);
      run(first, stop);
      Curriculum resumed = Curriculum::from_state(nlohmann::json::parse(first.state_json().dump()), first.order());
      prepare(resumed);
      std::vector<std::vector<int64_t>> rest = run(resumed, 9, stop);
      for (int e = stop; e < 9; ++e)
        ASSERT_EQ(rest[size_t(e - stop)], want[size_t(e)]) << o.to_json().dump() << " resumed at " << stop << ", epoch " << e;
    }
    EXPECT_EQ(CurriculumOptions::from_json(o.to_json()).to_json(), o.to_json());
  }
}

TEST(Curriculum, VersionOneStateStillLoads) {
  Curriculum c(small_options(50));
  c.begin_phase(3, scores_for(50, 3));
  nlohmann::json v1 = c.state_json();
  v1["version"] = 1;
  v1.erase("order_epoch");
  Curriculum r = Curriculum::from_state(v1, c.order());
  EXPECT_EQ(r.order_epoch(), 3);
  EXPECT_EQ(r.epoch_indices(4), c.epoch_indices(4));
}

TEST(Curriculum, BadVariantOptionsAreErrors) {
  nlohmann::json opts = small_options().to_json();
  opts["hard_share"] = 1.0;
  EXPECT_THROW(CurriculumOptions::from_json(opts), Error);
  opts = small_options().to_json();
  opts["weight_tau"] = 0.0;
  EXPECT_THROW(CurriculumOptions::from_json(opts), Error);
  EXPECT_THROW(parse_direction("sideways"), Error);
  EXPECT_THROW(parse_measure("margin"), Error);
  EXPECT_EQ(parse_measure("teacher-ce"), Measure::TeacherCE);
  EXPECT_EQ(parse_curriculum_mode("weighted"), CurriculumMode::Weighted);
}
