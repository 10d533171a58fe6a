// The ISL curriculum: phase arithmetic, pacing, the easy-to-hard order and the per-epoch index lists (see the
// header for the reading of the paper and the options).
#include "engine/distill/curriculum.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <utility>

#include "engine/distill/kd.h"
#include "engine/ops.h"

namespace islkd::distill {

namespace {

// splitmix64: a tiny generator with a fixed, documented output sequence (std:: distributions and std::shuffle
// are implementation-defined, which would break "same seed, same run" across standard libraries).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) without modulo bias (rejects the short top range).
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }
};

// One independent stream per (seed, epoch, cycle).
SplitMix64 stream(uint64_t seed, int epoch, int64_t cycle) {
  SplitMix64 g{seed ^ 0x6A09E667F3BCC909ull};
  g.state = g.next() ^ static_cast<uint64_t>(static_cast<int64_t>(epoch));
  g.state = g.next() ^ static_cast<uint64_t>(cycle);
  g.next();
  return g;
}

template <typename T>
void shuffle(std::vector<T>& v, SplitMix64 g) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(g.below(i))]);
}

}  // namespace

Pacing parse_pacing(const std::string& name) {
  if (name == "linear") return Pacing::Linear;
  if (name == "root") return Pacing::Root;
  if (name == "step") return Pacing::Step;
  ISLKD_FAIL("unknown pacing '", name, "' (expected linear, root or step)");
}
const char* pacing_name(Pacing p) {
  switch (p) {
    case Pacing::Linear: return "linear";
    case Pacing::Root: return "root";
    case Pacing::Step: return "step";
  }
  ISLKD_FAIL("unknown pacing ", static_cast<int>(p));
}
BatchOrder parse_batch_order(const std::string& name) {
  if (name == "shuffled") return BatchOrder::Shuffled;
  if (name == "sequence") return BatchOrder::Sequence;
  ISLKD_FAIL("unknown batch order '", name, "' (expected shuffled or sequence)");
}
const char* batch_order_name(BatchOrder o) { return o == BatchOrder::Shuffled ? "shuffled" : "sequence"; }
CurriculumMode parse_curriculum_mode(const std::string& name) {
  if (name == "subset") return CurriculumMode::Subset;
  if (name == "ordering") return CurriculumMode::OrderingOnly;
  if (name == "weighted") return CurriculumMode::Weighted;
  ISLKD_FAIL("unknown curriculum mode '", name, "' (expected subset, ordering or weighted)");
}
const char* curriculum_mode_name(CurriculumMode m) {
  switch (m) {
    case CurriculumMode::Subset: return "subset";
    case CurriculumMode::OrderingOnly: return "ordering";
    case CurriculumMode::Weighted: return "weighted";
  }
  ISLKD_FAIL("unknown curriculum mode ", static_cast<int>(m));
}
Direction parse_direction(const std::string& name) {
  if (name == "easy-first") return Direction::EasyFirst;
  if (name == "hard-first") return Direction::HardFirst;
  ISLKD_FAIL("unknown curriculum direction '", name, "' (expected easy-first or hard-first)");
}
const char* direction_name(Direction d) { return d == Direction::EasyFirst ? "easy-first" : "hard-first"; }

namespace {
const std::pair<Measure, const char*> kMeasureNames[] = {
    {Measure::Loss, "loss"},           {Measure::CE, "ce"},
    {Measure::KD, "kd"},               {Measure::Confidence, "confidence"},
    {Measure::Random, "random"},       {Measure::TeacherCE, "teacher-ce"},
    {Measure::TeacherConfidence, "teacher-confidence"}, {Measure::Disagreement, "disagreement"}};
}  // namespace

Measure parse_measure(const std::string& name) {
  for (const auto& [m, n] : kMeasureNames)
    if (name == n) return m;
  ISLKD_FAIL("unknown difficulty measure '", name,
             "' (expected loss, ce, kd, confidence, random, teacher-ce, teacher-confidence or disagreement)");
}
const char* measure_name(Measure m) {
  for (const auto& [mm, n] : kMeasureNames)
    if (mm == m) return n;
  ISLKD_FAIL("unknown difficulty measure ", static_cast<int>(m));
}
bool is_student_measure(Measure m) {
  return m == Measure::Loss || m == Measure::CE || m == Measure::KD || m == Measure::Confidence;
}
bool needs_student(Measure m) { return is_student_measure(m) || m == Measure::Disagreement; }
DifficultyMeasure student_measure(Measure m) {
  switch (m) {
    case Measure::Loss: return DifficultyMeasure::Loss;
    case Measure::CE: return DifficultyMeasure::CE;
    case Measure::KD: return DifficultyMeasure::KD;
    case Measure::Confidence: return DifficultyMeasure::Confidence;
    default: break;
  }
  ISLKD_FAIL("difficulty measure '", measure_name(m), "' is not one of the student's (loss, ce, kd, confidence)");
}

std::vector<float> teacher_difficulty(const std::vector<float>& teacher_logits, const std::vector<int32_t>& labels,
                                      int64_t num_classes, Measure m) {
  ISLKD_CHECK(m == Measure::TeacherCE || m == Measure::TeacherConfidence, "teacher_difficulty: measure '",
              measure_name(m), "' is not teacher-ce or teacher-confidence");
  const int64_t rows = static_cast<int64_t>(labels.size());
  ISLKD_CHECK(num_classes > 0 && static_cast<int64_t>(teacher_logits.size()) == rows * num_classes,
              "teacher_difficulty: ", teacher_logits.size(), " logits for ", rows, " labels x ", num_classes,
              " classes");
  Tensor t = Tensor::from_vector(teacher_logits, {rows, num_classes});
  Tensor y = Tensor::from_labels(labels);
  return ops::difficulty_scores(t, Tensor(), y,
                                m == Measure::TeacherCE ? DifficultyMeasure::CE : DifficultyMeasure::Confidence,
                                KDLossParams{})
      .to_vector();
}

std::vector<int32_t> teacher_predictions(const std::vector<float>& teacher_logits, int64_t num_classes) {
  ISLKD_CHECK(num_classes > 0 && teacher_logits.size() % static_cast<size_t>(num_classes) == 0,
              "teacher_predictions: ", teacher_logits.size(), " logits are not rows of ", num_classes);
  const size_t rows = teacher_logits.size() / static_cast<size_t>(num_classes);
  std::vector<int32_t> pred(rows);
  for (size_t r = 0; r < rows; ++r) {
    const float* row = teacher_logits.data() + r * static_cast<size_t>(num_classes);
    int64_t best = 0;
    for (int64_t c = 1; c < num_classes; ++c)
      if (row[c] > row[best]) best = c;
    pred[r] = static_cast<int32_t>(best);
  }
  return pred;
}

void CurriculumOptions::validate() const {
  ISLKD_CHECK(num_instances > 0, "curriculum: num_instances must be > 0, got ", num_instances);
  ISLKD_CHECK(num_instances <= static_cast<int64_t>(UINT32_MAX),
              "curriculum: at most 2^32-1 instances (uint32 indices), got ", num_instances);
  ISLKD_CHECK(warmup_epochs >= 0, "curriculum: warmup_epochs must be >= 0, got ", warmup_epochs);
  ISLKD_CHECK(phase_epochs >= 1, "curriculum: phase_epochs must be >= 1, got ", phase_epochs);
  ISLKD_CHECK(num_phases >= 0, "curriculum: num_phases must be >= 0, got ", num_phases);
  ISLKD_CHECK(std::isfinite(start_fraction) && start_fraction > 0.0 && start_fraction <= 1.0,
              "curriculum: start_fraction must be in (0, 1], got ", start_fraction);
  ISLKD_CHECK(std::isfinite(hard_share) && hard_share >= 0.0 && hard_share < 1.0,
              "curriculum: hard_share must be in [0, 1), got ", hard_share);
  ISLKD_CHECK(std::isfinite(weight_tau) && weight_tau > 0.0, "curriculum: weight_tau must be > 0, got ", weight_tau);
  ISLKD_CHECK(measure != Measure::Random || num_instances <= (int64_t{1} << 24),
              "curriculum: measure random handles at most 2^24 instances (exact float ranks), got ", num_instances);
}

nlohmann::json CurriculumOptions::to_json() const {
  return {{"num_instances", num_instances},
          {"seed", seed},
          {"mode", curriculum_mode_name(mode)},
          {"warmup_epochs", warmup_epochs},
          {"phase_epochs", phase_epochs},
          {"num_phases", num_phases},
          {"pacing", pacing_name(pacing)},
          {"start_fraction", start_fraction},
          {"full_at_last_phase", full_at_last_phase},
          {"batch_order", batch_order_name(batch_order)},
          {"measure", measure_name(measure)},
          {"direction", direction_name(direction)},
          {"stratified", stratified},
          {"hard_share", hard_share},
          {"weight_tau", weight_tau},
          {"rescore_every_epoch", rescore_every_epoch},
          {"lr_restart", lr_restart}};
}

CurriculumOptions CurriculumOptions::from_json(const nlohmann::json& j) {
  ISLKD_CHECK(j.is_object(), "curriculum options must be a JSON object, got ", j.dump());
  CurriculumOptions o;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const nlohmann::json& v = it.value();
      if (k == "num_instances") o.num_instances = v.get<int64_t>();
      else if (k == "seed") o.seed = v.get<uint64_t>();
      else if (k == "mode") o.mode = parse_curriculum_mode(v.get<std::string>());
      else if (k == "warmup_epochs") o.warmup_epochs = v.get<int>();
      else if (k == "phase_epochs") o.phase_epochs = v.get<int>();
      else if (k == "num_phases") o.num_phases = v.get<int>();
      else if (k == "pacing") o.pacing = parse_pacing(v.get<std::string>());
      else if (k == "start_fraction") o.start_fraction = v.get<double>();
      else if (k == "full_at_last_phase") o.full_at_last_phase = v.get<bool>();
      else if (k == "batch_order") o.batch_order = parse_batch_order(v.get<std::string>());
      else if (k == "measure") o.measure = parse_measure(v.get<std::string>());
      else if (k == "direction") o.direction = parse_direction(v.get<std::string>());
      else if (k == "stratified") o.stratified = v.get<bool>();
      else if (k == "hard_share") o.hard_share = v.get<double>();
      else if (k == "weight_tau") o.weight_tau = v.get<double>();
      else if (k == "rescore_every_epoch") o.rescore_every_epoch = v.get<bool>();
      else if (k == "lr_restart") o.lr_restart = v.get<bool>();
      else ISLKD_FAIL("curriculum options: unknown key '", k, "'");
    }
  } catch (const nlohmann::json::exception& e) {
    ISLKD_FAIL("curriculum options ", j.dump(), ": ", e.what());
  }
  o.validate();
  return o;
}

Curriculum::Curriculum(const CurriculumOptions& options) : opt_(options) { opt_.validate(); }

void Curriculum::set_plain_order(PlainOrder plain) { plain_ = std::move(plain); }

void Curriculum::set_labels(std::vector<int32_t> labels) {
  ISLKD_CHECK(static_cast<int64_t>(labels.size()) == opt_.num_instances, "curriculum: ", labels.size(),
              " labels for ", opt_.num_instances, " instances");
  labels_ = std::move(labels);
}

std::vector<int64_t> Curriculum::plain_epoch(int epoch) const {
  const int64_t n = opt_.num_instances;
  if (plain_) {
    std::vector<int64_t> v = plain_(epoch);
    ISLKD_CHECK(static_cast<int64_t>(v.size()) == n, "curriculum: the plain order of epoch ", epoch, " has ",
                v.size(), " indices, expected ", n);
    return v;
  }
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  shuffle(v, stream(opt_.seed, epoch, 0));
  return v;
}

int Curriculum::phase_of_epoch(int epoch) const {
  ISLKD_CHECK(epoch >= 0, "curriculum: negative epoch ", epoch);
  if (epoch < opt_.warmup_epochs) return kWarmup;
  return std::min((epoch - opt_.warmup_epochs) / opt_.phase_epochs, opt_.num_phases);
}

bool Curriculum::is_phase_boundary(int epoch) const {
  const int p = phase_of_epoch(epoch);
  return p >= 0 && p < opt_.num_phases &&
         (opt_.rescore_every_epoch || (epoch - opt_.warmup_epochs) % opt_.phase_epochs == 0);
}

int Curriculum::segment_start(int epoch) const {
  const int p = phase_of_epoch(epoch);
  if (p == kWarmup) return 0;
  return opt_.warmup_epochs + p * opt_.phase_epochs;
}

int Curriculum::segment_end(int epoch, int epochs) const {
  const int p = phase_of_epoch(epoch);
  if (p == kWarmup) return std::min(opt_.warmup_epochs, epochs);
  if (p >= opt_.num_phases) return epochs;
  return std::min(opt_.warmup_epochs + (p + 1) * opt_.phase_epochs, epochs);
}

double Curriculum::fraction(int phase) const {
  if (phase < 0 || phase >= opt_.num_phases) return 1.0;
  const double s = opt_.start_fraction;
  const double x = opt_.full_at_last_phase ? (opt_.num_phases > 1 ? double(phase) / (opt_.num_phases - 1) : 1.0)
                                           : double(phase) / opt_.num_phases;
  switch (opt_.pacing) {
    case Pacing::Linear: return s + (1.0 - s) * x;
    case Pacing::Root: return std::sqrt(s * s + (1.0 - s * s) * x);
    case Pacing::Step: return x >= 1.0 ? 1.0 : s;
  }
  return 1.0;
}

double Curriculum::weight_tau(int phase) const {
  if (phase < 0 || phase >= opt_.num_phases) return INFINITY;
  const double x = opt_.full_at_last_phase ? (opt_.num_phases > 1 ? double(phase) / (opt_.num_phases - 1) : 1.0)
                                           : double(phase) / opt_.num_phases;
  return x >= 1.0 ? INFINITY : opt_.weight_tau / (1.0 - x);
}

int64_t Curriculum::subset_size(int phase) const {
  if (opt_.mode == CurriculumMode::Weighted) return opt_.num_instances;
  const double n = static_cast<double>(opt_.num_instances);
  // The small slack keeps g*N that is an integer up to rounding (e.g. (2/3)*60000) from rounding up by one.
  const auto k = static_cast<int64_t>(std::ceil(fraction(phase) * n - 1e-6));
  return std::clamp<int64_t>(k, 1, opt_.num_instances);
}

std::vector<float> Curriculum::random_scores(int epoch) const {
  std::vector<uint32_t> perm(static_cast<size_t>(opt_.num_instances));
  std::iota(perm.begin(), perm.end(), 0u);
  shuffle(perm, stream(opt_.seed ^ 0x52414E444F4Dull /* "RANDOM" */, epoch, 0));
  std::vector<float> scores(perm.size());
  for (size_t r = 0; r < perm.size(); ++r) scores[perm[r]] = static_cast<float>(r);
  return scores;
}

std::vector<uint32_t> stratify_order(const std::vector<uint32_t>& order, const std::vector<int32_t>& labels) {
  const size_t n = order.size();
  ISLKD_CHECK(labels.size() == n, "stratify_order: ", labels.size(), " labels for ", n, " instances");
  int32_t classes = 0;
  for (int32_t y : labels) {
    ISLKD_CHECK(y >= 0, "stratify_order: negative label ", y);
    classes = std::max(classes, y + 1);
  }
  std::vector<std::vector<uint32_t>> per_class(static_cast<size_t>(classes));
  for (uint32_t i : order) {
    ISLKD_CHECK(i < n, "stratify_order: index ", i, " outside [0, ", n, ")");
    per_class[static_cast<size_t>(labels[i])].push_back(i);
  }
  // Position k (1-based) goes to the class with the largest deficit k*n_c/N - taken_c, in integers:
  // k*n_c - taken_c*N; ties to the lower class. O(N * classes).
  std::vector<size_t> taken(static_cast<size_t>(classes), 0);
  std::vector<uint32_t> out;
  out.reserve(n);
  for (size_t k = 1; k <= n; ++k) {
    int64_t best = -1;
    long double best_deficit = 0;
    for (size_t c = 0; c < per_class.size(); ++c) {
      if (taken[c] == per_class[c].size()) continue;
      const long double deficit = static_cast<long double>(k) * static_cast<long double>(per_class[c].size()) -
                                  static_cast<long double>(taken[c]) * static_cast<long double>(n);
      if (best < 0 || deficit > best_deficit) {
        best = static_cast<int64_t>(c);
        best_deficit = deficit;
      }
    }
    out.push_back(per_class[static_cast<size_t>(best)][taken[static_cast<size_t>(best)]++]);
  }
  return out;
}

int epochs_before_lr_drop(const LRSchedule& schedule, int64_t epochs, int64_t steps_per_epoch) {
  ISLKD_CHECK(epochs > 0 && steps_per_epoch > 0, "epochs_before_lr_drop: epochs and steps per epoch must be > 0");
  double peak = 0.0;
  for (int64_t e = 0; e < epochs; ++e)
    for (int64_t s = 0; s < steps_per_epoch; ++s) peak = std::max(peak, schedule.lr_at_step(e, s, steps_per_epoch));
  bool past_peak = false;
  for (int64_t e = 0; e < epochs; ++e)
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const double lr = schedule.lr_at_step(e, s, steps_per_epoch);
      past_peak = past_peak || lr >= peak;
      if (past_peak && lr < 0.5 * peak) return static_cast<int>(e);
    }
  return static_cast<int>(epochs);
}

void Curriculum::begin_phase(int epoch, const Tensor& scores) {
  ISLKD_CHECK(is_phase_boundary(epoch), "curriculum: epoch ", epoch, " does not start a phase (warm-up ",
              opt_.warmup_epochs, " epochs, then ", opt_.num_phases, " phases of ", opt_.phase_epochs, " epochs)");
  ISLKD_CHECK(scores.defined() && scores.dim() == 1 && scores.numel() == opt_.num_instances,
              "curriculum: expected one score per instance (", opt_.num_instances, "), got shape ",
              scores.defined() ? shape_str(scores.shape()) : std::string("undefined"));
  ISLKD_CHECK(!opt_.stratified || static_cast<int64_t>(labels_.size()) == opt_.num_instances,
              "curriculum: the stratified option needs the training labels (set_labels) before begin_phase");
  std::vector<uint32_t> idx(static_cast<size_t>(opt_.num_instances));
  std::iota(idx.begin(), idx.end(), 0u);
  auto t0 = std::chrono::steady_clock::now();
  auto sorted = ops::radix_sort_pairs(scores, idx);
  last_sort_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<uint32_t> order = std::move(sorted.second);
  if (opt_.direction == Direction::HardFirst) std::reverse(order.begin(), order.end());
  if (opt_.stratified) order = stratify_order(order, labels_);
  const int p = phase_of_epoch(epoch);
  if (opt_.hard_share > 0.0 && opt_.mode == CurriculumMode::Subset) {
    // The subset: the easiest k - h*k, then h*k drawn uniformly from the rest (kept in difficulty order), then the
    // remaining instances, so the subset stays a prefix of the held order.
    const int64_t n = opt_.num_instances, k = subset_size(p);
    const int64_t hard = std::min<int64_t>(static_cast<int64_t>(std::llround(opt_.hard_share * double(k))), n - k);
    const int64_t easy = k - hard;
    std::vector<int64_t> rest_pos(static_cast<size_t>(n - easy));
    std::iota(rest_pos.begin(), rest_pos.end(), easy);
    SplitMix64 g = stream(opt_.seed ^ 0x48415244ull /* "HARD" */, epoch, 0);
    for (int64_t i = 0; i < hard; ++i)  // partial Fisher-Yates: the first `hard` positions are the draw
      std::swap(rest_pos[size_t(i)], rest_pos[size_t(i) + size_t(g.below(uint64_t(n - easy - i)))]);
    std::vector<bool> picked(static_cast<size_t>(n), false);
    for (int64_t i = 0; i < hard; ++i) picked[size_t(rest_pos[size_t(i)])] = true;
    std::vector<uint32_t> mixed(order.begin(), order.begin() + easy);
    for (int64_t pos = easy; pos < n; ++pos)
      if (picked[size_t(pos)]) mixed.push_back(order[size_t(pos)]);
    for (int64_t pos = easy; pos < n; ++pos)
      if (!picked[size_t(pos)]) mixed.push_back(order[size_t(pos)]);
    order = std::move(mixed);
  }
  order_ = std::move(order);
  phase_ = p;
  order_epoch_ = epoch;
}

void Curriculum::begin_phase(int epoch, const std::vector<float>& scores) {
  begin_phase(epoch, Tensor::from_vector(scores, {static_cast<int64_t>(scores.size())}));
}

std::vector<int64_t> Curriculum::epoch_indices(int epoch) const {
  const int p = phase_of_epoch(epoch);
  const int64_t n = opt_.num_instances;
  if (p < 0 || p >= opt_.num_phases) return plain_epoch(epoch);
  const int boundary = opt_.rescore_every_epoch ? epoch : opt_.warmup_epochs + p * opt_.phase_epochs;
  ISLKD_CHECK(phase_ == p && order_epoch_ == boundary && static_cast<int64_t>(order_.size()) == n, "curriculum: epoch ",
              epoch, " belongs to phase ", p, " but the held order is of ",
              phase_ == kWarmup ? std::string("no phase") : "phase " + std::to_string(phase_) + " (epoch " +
                                                                std::to_string(order_epoch_) + ")",
              "; score the instances and call begin_phase at epoch ", boundary);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  if (opt_.mode == CurriculumMode::OrderingOnly) {
    out.assign(order_.begin(), order_.end());
    return out;
  }
  if (opt_.mode == CurriculumMode::Weighted) {
    // n draws with replacement, P(rank r) ∝ exp(-r / (tau_p * n)), by inverting the cumulative weights.
    const double tau = weight_tau(p) * static_cast<double>(n);
    std::vector<double> cdf(static_cast<size_t>(n));
    double total = 0.0;
    for (int64_t r = 0; r < n; ++r) cdf[size_t(r)] = total += std::exp(-static_cast<double>(r) / tau);
    SplitMix64 g = stream(opt_.seed ^ 0x574549474854ull /* "WEIGHT" */, epoch, 0);
    for (int64_t i = 0; i < n; ++i) {
      const double u = static_cast<double>(g.next() >> 11) * 0x1.0p-53 * total;
      auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
      const size_t r = std::min(static_cast<size_t>(it - cdf.begin()), static_cast<size_t>(n - 1));
      out.push_back(order_[r]);
    }
    return out;
  }
  const int64_t k = subset_size(p);
  std::vector<int64_t> subset(order_.begin(), order_.begin() + k);
  for (int64_t cycle = 0; static_cast<int64_t>(out.size()) < n; ++cycle) {
    std::vector<int64_t> pass;
    if (opt_.batch_order == BatchOrder::Shuffled && cycle == 0) {
      // The plain order restricted to the subset: a whole-data phase is exactly the plain (KD) epoch.
      std::vector<bool> member(static_cast<size_t>(n), false);
      for (int64_t i : subset) member[size_t(i)] = true;
      pass.reserve(static_cast<size_t>(k));
      for (int64_t i : plain_epoch(epoch))
        if (member[size_t(i)]) pass.push_back(i);
    } else {
      pass = subset;
      if (opt_.batch_order == BatchOrder::Shuffled) shuffle(pass, stream(opt_.seed, epoch, cycle + 1));
    }
    const size_t take = static_cast<size_t>(std::min<int64_t>(k, n - static_cast<int64_t>(out.size())));
    out.insert(out.end(), pass.begin(), pass.begin() + static_cast<std::ptrdiff_t>(take));
  }
  return out;
}

nlohmann::json Curriculum::state_json() const {
  return {{"version", 2},
          {"options", opt_.to_json()},
          {"phase", phase_},
          {"order_epoch", order_epoch_},
          {"fraction", fraction(phase_)},
          {"order_size", order_.size()},
          {"last_sort_seconds", last_sort_seconds_}};
}

Curriculum Curriculum::from_state(const nlohmann::json& state, const std::vector<uint32_t>& order) {
  ISLKD_CHECK(state.is_object() && state.contains("options") && state.contains("phase"),
              "curriculum state: expected an object with 'options' and 'phase', got ", state.dump());
  try {
    const int version = state.value("version", 0);
    ISLKD_CHECK(version == 1 || version == 2, "curriculum state: unsupported version ", version);
    Curriculum c(CurriculumOptions::from_json(state["options"]));
    const int phase = state["phase"].get<int>();
    const int64_t n = c.opt_.num_instances;
    ISLKD_CHECK(phase >= kWarmup && phase < c.opt_.num_phases, "curriculum state: phase ", phase,
                " outside [-1, ", c.opt_.num_phases, ")");
    int order_epoch = -1;
    if (phase == kWarmup) {
      ISLKD_CHECK(order.empty(), "curriculum state: no phase held but an order of ", order.size(), " indices given");
    } else {
      ISLKD_CHECK(static_cast<int64_t>(order.size()) == n, "curriculum state: order has ", order.size(),
                  " indices, expected ", n);
      std::vector<bool> seen(static_cast<size_t>(n), false);
      for (size_t i = 0; i < order.size(); ++i) {
        ISLKD_CHECK(order[i] < n && !seen[order[i]], "curriculum state: order is not a permutation of 0..", n - 1,
                    " (entry ", i, " = ", order[i], ")");
        seen[order[i]] = true;
      }
      // Version 1 had no rescoring: the order was made at the phase's first epoch.
      order_epoch = version >= 2 ? state.at("order_epoch").get<int>() : c.opt_.warmup_epochs + phase * c.opt_.phase_epochs;
      ISLKD_CHECK(c.phase_of_epoch(std::max(order_epoch, 0)) == phase && c.is_phase_boundary(order_epoch),
                  "curriculum state: order_epoch ", order_epoch, " is not a boundary of phase ", phase);
    }
    if (state.contains("fraction")) {  // recorded for readers; must be what the options give (else: tampered)
      const double f = state["fraction"].get<double>(), want = c.fraction(phase);
      ISLKD_CHECK(std::fabs(f - want) <= 1e-9, "curriculum state: fraction ", f, " of phase ", phase,
                  " disagrees with the options, which give ", want);
    }
    c.phase_ = phase;
    c.order_epoch_ = order_epoch;
    c.order_ = order;
    c.last_sort_seconds_ = state.value("last_sort_seconds", 0.0);
    return c;
  } catch (const nlohmann::json::exception& e) {
    ISLKD_FAIL("curriculum state ", state.dump(), ": ", e.what());
  }
}

}  // namespace islkd::distill
