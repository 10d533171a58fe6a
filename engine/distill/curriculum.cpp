// The ISL curriculum: phase arithmetic, pacing, the easy-to-hard order and the per-epoch index lists (see the
// header for the reading of the paper and the options).
#include "engine/distill/curriculum.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

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
  ISLKD_FAIL("unknown curriculum mode '", name, "' (expected subset or ordering)");
}
const char* curriculum_mode_name(CurriculumMode m) { return m == CurriculumMode::Subset ? "subset" : "ordering"; }

void CurriculumOptions::validate() const {
  ISLKD_CHECK(num_instances > 0, "curriculum: num_instances must be > 0, got ", num_instances);
  ISLKD_CHECK(num_instances <= static_cast<int64_t>(UINT32_MAX),
              "curriculum: at most 2^32-1 instances (uint32 indices), got ", num_instances);
  ISLKD_CHECK(warmup_epochs >= 0, "curriculum: warmup_epochs must be >= 0, got ", warmup_epochs);
  ISLKD_CHECK(phase_epochs >= 1, "curriculum: phase_epochs must be >= 1, got ", phase_epochs);
  ISLKD_CHECK(num_phases >= 0, "curriculum: num_phases must be >= 0, got ", num_phases);
  ISLKD_CHECK(std::isfinite(start_fraction) && start_fraction > 0.0 && start_fraction <= 1.0,
              "curriculum: start_fraction must be in (0, 1], got ", start_fraction);
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
          {"measure", difficulty_measure_name(measure)}};
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
      else if (k == "measure") o.measure = parse_difficulty_measure(v.get<std::string>());
      else ISLKD_FAIL("curriculum options: unknown key '", k, "'");
    }
  } catch (const nlohmann::json::exception& e) {
    ISLKD_FAIL("curriculum options ", j.dump(), ": ", e.what());
  }
  o.validate();
  return o;
}

Curriculum::Curriculum(const CurriculumOptions& options) : opt_(options) { opt_.validate(); }

int Curriculum::phase_of_epoch(int epoch) const {
  ISLKD_CHECK(epoch >= 0, "curriculum: negative epoch ", epoch);
  if (epoch < opt_.warmup_epochs) return kWarmup;
  return std::min((epoch - opt_.warmup_epochs) / opt_.phase_epochs, opt_.num_phases);
}

bool Curriculum::is_phase_boundary(int epoch) const {
  const int p = phase_of_epoch(epoch);
  return p >= 0 && p < opt_.num_phases && (epoch - opt_.warmup_epochs) % opt_.phase_epochs == 0;
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

int64_t Curriculum::subset_size(int phase) const {
  const double n = static_cast<double>(opt_.num_instances);
  // The small slack keeps g*N that is an integer up to rounding (e.g. (2/3)*60000) from rounding up by one.
  const auto k = static_cast<int64_t>(std::ceil(fraction(phase) * n - 1e-6));
  return std::clamp<int64_t>(k, 1, opt_.num_instances);
}

void Curriculum::begin_phase(int epoch, const Tensor& scores) {
  ISLKD_CHECK(is_phase_boundary(epoch), "curriculum: epoch ", epoch, " does not start a phase (warm-up ",
              opt_.warmup_epochs, " epochs, then ", opt_.num_phases, " phases of ", opt_.phase_epochs, " epochs)");
  ISLKD_CHECK(scores.defined() && scores.dim() == 1 && scores.numel() == opt_.num_instances,
              "curriculum: expected one score per instance (", opt_.num_instances, "), got shape ",
              scores.defined() ? shape_str(scores.shape()) : std::string("undefined"));
  std::vector<uint32_t> idx(static_cast<size_t>(opt_.num_instances));
  std::iota(idx.begin(), idx.end(), 0u);
  auto t0 = std::chrono::steady_clock::now();
  auto sorted = ops::radix_sort_pairs(scores, idx);
  last_sort_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  order_ = std::move(sorted.second);
  phase_ = phase_of_epoch(epoch);
}

void Curriculum::begin_phase(int epoch, const std::vector<float>& scores) {
  begin_phase(epoch, Tensor::from_vector(scores, {static_cast<int64_t>(scores.size())}));
}

std::vector<int64_t> Curriculum::epoch_indices(int epoch) const {
  const int p = phase_of_epoch(epoch);
  const int64_t n = opt_.num_instances;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  if (p < 0 || p >= opt_.num_phases) {
    out.resize(static_cast<size_t>(n));
    std::iota(out.begin(), out.end(), int64_t{0});
    shuffle(out, stream(opt_.seed, epoch, 0));
    return out;
  }
  ISLKD_CHECK(phase_ == p && static_cast<int64_t>(order_.size()) == n, "curriculum: epoch ", epoch,
              " belongs to phase ", p, " but the held order is of ",
              phase_ == kWarmup ? std::string("no phase") : "phase " + std::to_string(phase_),
              "; score the instances and call begin_phase at the phase's first epoch (",
              opt_.warmup_epochs + p * opt_.phase_epochs, ")");
  if (opt_.mode == CurriculumMode::OrderingOnly) {
    out.assign(order_.begin(), order_.end());
    return out;
  }
  const int64_t k = subset_size(p);
  std::vector<int64_t> subset(order_.begin(), order_.begin() + k);
  for (int64_t cycle = 0; static_cast<int64_t>(out.size()) < n; ++cycle) {
    std::vector<int64_t> pass = subset;
    if (opt_.batch_order == BatchOrder::Shuffled) shuffle(pass, stream(opt_.seed, epoch, cycle + 1));
    const size_t take = static_cast<size_t>(std::min<int64_t>(k, n - static_cast<int64_t>(out.size())));
    out.insert(out.end(), pass.begin(), pass.begin() + static_cast<std::ptrdiff_t>(take));
  }
  return out;
}

nlohmann::json Curriculum::state_json() const {
  return {{"version", 1},
          {"options", opt_.to_json()},
          {"phase", phase_},
          {"fraction", fraction(phase_)},
          {"order_size", order_.size()},
          {"last_sort_seconds", last_sort_seconds_}};
}

Curriculum Curriculum::from_state(const nlohmann::json& state, const std::vector<uint32_t>& order) {
  ISLKD_CHECK(state.is_object() && state.contains("options") && state.contains("phase"),
              "curriculum state: expected an object with 'options' and 'phase', got ", state.dump());
  try {
    ISLKD_CHECK(state.value("version", 0) == 1, "curriculum state: unsupported version ", state.value("version", 0));
    Curriculum c(CurriculumOptions::from_json(state["options"]));
    const int phase = state["phase"].get<int>();
    const int64_t n = c.opt_.num_instances;
    ISLKD_CHECK(phase >= kWarmup && phase < c.opt_.num_phases, "curriculum state: phase ", phase,
                " outside [-1, ", c.opt_.num_phases, ")");
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
    }
    if (state.contains("fraction")) {  // recorded for readers; must be what the options give (else: tampered)
      const double f = state["fraction"].get<double>(), want = c.fraction(phase);
      ISLKD_CHECK(std::fabs(f - want) <= 1e-9, "curriculum state: fraction ", f, " of phase ", phase,
                  " disagrees with the options, which give ", want);
    }
    c.phase_ = phase;
    c.order_ = order;
    c.last_sort_seconds_ = state.value("last_sort_seconds", 0.0);
    return c;
  } catch (const nlohmann::json::exception& e) {
    ISLKD_FAIL("curriculum state ", state.dump(), ": ", e.what());
  }
}

}  // namespace islkd::distill
