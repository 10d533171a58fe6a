// The ISL curriculum (instance-level sequence learning): which training instances each epoch visits, in which
// order. It only turns difficulty scores into plain index lists; the app scores, the loader batches.
//
// Our reading of the paper (only its abstract is available), every choice an option below:
//   epochs [0, warmup_epochs)          plain KD: all instances, uniformly shuffled
//   then num_phases curriculum phases of phase_epochs each. At the first epoch of a phase (a boundary) the caller
//   freezes the current student as a snapshot, scores every un-augmented training instance with it and the
//   teacher, and hands the scores to begin_phase(); the curriculum sorts them easy to hard (ops::radix_sort_pairs:
//   lower score = easier, ties keep index order, NaN scores count as hardest) and keeps that order for the phase.
//   Phase p trains on the easiest fraction g(p) of the instances (mode Subset), the batches drawn from that subset
//   shuffled or in easy-to-hard sequence; or (mode OrderingOnly) on all instances in easy-to-hard order, unshuffled.
//   after the last phase                all instances, uniformly shuffled (training ends as plain KD)
// Equal iterations: every epoch's index list has exactly num_instances entries, so every epoch runs the steps of a
// full-dataset epoch; a subset smaller than the dataset is cycled, reshuffled for each cycle. All shuffles are
// deterministic functions of (seed, epoch, cycle) with our own generator, so the lists are identical across
// platforms, thread counts and resumes.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/common/shapes.h"

namespace islkd::distill {

// How the trained fraction grows over the curriculum phases, with x = p / num_phases (p = 0, 1, ...):
//   linear  g = s + (1 - s) * x
//   root    g = sqrt(s^2 + (1 - s^2) * x)      (the square-root competence of Platanios et al., 2019)
//   step    g = s during every phase, 1 after the last (a single step from the easy subset to all data)
// With full_at_last_phase, x = p / (num_phases - 1) instead, so the last phase itself trains on everything.
enum class Pacing { Linear, Root, Step };
enum class BatchOrder { Shuffled, Sequence };  // within a phase's subset
enum class CurriculumMode { Subset, OrderingOnly };

Pacing parse_pacing(const std::string& name);  // "linear" | "root" | "step"
const char* pacing_name(Pacing p);
BatchOrder parse_batch_order(const std::string& name);  // "shuffled" | "sequence"
const char* batch_order_name(BatchOrder o);
CurriculumMode parse_curriculum_mode(const std::string& name);  // "subset" | "ordering"
const char* curriculum_mode_name(CurriculumMode m);

struct CurriculumOptions {
  int64_t num_instances = 0;  // training-set size (required)
  uint64_t seed = 0;
  CurriculumMode mode = CurriculumMode::Subset;
  // Defaults sized for a 5-epoch run: 1 warm-up epoch, 3 one-epoch phases, 1 epoch on all data (train_kd's own
  // defaults fit its 3-epoch main job: 1 phase).
  int warmup_epochs = 1;
  int phase_epochs = 1;
  int num_phases = 3;
  Pacing pacing = Pacing::Linear;
  double start_fraction = 0.5;  // g(0), in (0, 1]
  bool full_at_last_phase = false;
  BatchOrder batch_order = BatchOrder::Shuffled;
  // What the caller scores instances with (kept here so a run's log and checkpoint record it; default: the
  // instance's own KD objective).
  DifficultyMeasure measure = DifficultyMeasure::Loss;

  void validate() const;  // islkd::Error naming the bad option
  nlohmann::json to_json() const;
  // Missing keys keep their defaults; unknown keys are an error (a typo must not silently change a run).
  static CurriculumOptions from_json(const nlohmann::json& j);
};

class Curriculum {
 public:
  static constexpr int kWarmup = -1;  // phase_of_epoch() of warm-up epochs

  explicit Curriculum(const CurriculumOptions& options);
  const CurriculumOptions& options() const { return opt_; }

  // kWarmup, a curriculum phase 0..num_phases-1, or num_phases (after the curriculum).
  int phase_of_epoch(int epoch) const;
  // True when `epoch` starts a curriculum phase: score, then begin_phase(epoch, scores), then epoch_indices(epoch).
  bool is_phase_boundary(int epoch) const;
  // g(phase): the fraction of instances (easiest first) the phase trains on; 1 outside the curriculum phases.
  double fraction(int phase) const;
  int64_t subset_size(int phase) const;  // ceil(g * N), at least 1

  // Sorts the scores (one per instance, CPU or CUDA) easy to hard and keeps the order for the phase starting at
  // `epoch`, which must be a phase boundary.
  void begin_phase(int epoch, const Tensor& scores);
  void begin_phase(int epoch, const std::vector<float>& scores);

  // The instance indices of `epoch` in training order, always num_instances long. A curriculum epoch needs the
  // order of its phase (begin_phase at its boundary, or a restored state); otherwise an islkd::Error.
  std::vector<int64_t> epoch_indices(int epoch) const;

  int current_phase() const { return phase_; }  // phase whose order is held; kWarmup when none yet
  const std::vector<uint32_t>& order() const { return order_; }  // easy-to-hard instance indices (or empty)
  double last_sort_seconds() const { return last_sort_seconds_; }  // wall time of the last begin_phase sort

  // Checkpoint state: options, held phase and its fraction as JSON, plus the order as a uint32 vector.
  // from_state(state_json(), order()) reproduces every later epoch_indices() exactly.
  nlohmann::json state_json() const;
  static Curriculum from_state(const nlohmann::json& state, const std::vector<uint32_t>& order);

 private:
  CurriculumOptions opt_;
  int phase_ = kWarmup;
  std::vector<uint32_t> order_;
  double last_sort_seconds_ = 0.0;
};

}  // namespace islkd::distill
