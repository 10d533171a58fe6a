// The ISL curriculum (instance-level sequence learning): which training instances each epoch visits, in which
// order. It only turns difficulty scores into plain index lists; the app scores, the loader batches.
//
// Our reading of the paper (only its abstract is available), every choice an option below:
//   epochs [0, warmup_epochs)          plain KD: all instances in the caller's plain order (see set_plain_order)
//   then num_phases curriculum phases of phase_epochs each. At the first epoch of a phase (a boundary; with
//   rescore_every_epoch, at every epoch of a phase) the caller scores every un-augmented training instance
//   (measure) and hands the scores to begin_phase(); the curriculum sorts them easy to hard (ops::radix_sort_pairs:
//   lower score = easier, ties keep index order, NaN scores count as hardest) and keeps that order.
//   Phase p trains on the easiest fraction g(p) of the instances (mode Subset), the batches drawn from that subset
//   shuffled or in easy-to-hard sequence; or (mode OrderingOnly) on all instances in easy-to-hard order, unshuffled;
//   or (mode Weighted) on draws from all instances with probability falling with the difficulty rank.
//   after the last phase                all instances in the plain order (training ends as plain KD)
// Equal iterations: every epoch's index list has exactly num_instances entries, so every epoch runs the steps of a
// full-dataset epoch; a subset smaller than the dataset is cycled, reshuffled for each cycle. All shuffles are
// deterministic functions of (seed, epoch, cycle) with our own generator, so the lists are identical across
// platforms, thread counts and resumes.
//
// A fair comparison with KD (issue 13). Outside its phases the curriculum hands out the caller's plain order, which
// train_kd sets to KD's own ShuffledSampler: with the same seed, an ISL run and a KD run see the same batches up to
// the first phase and again after the last, so their difference is what the phases did and not the shuffle's luck.
// Inside a Shuffled subset phase the first pass over the subset is the plain order restricted to the subset (a
// uniformly random order of the subset, like a fresh shuffle); a phase that keeps every instance is therefore
// exactly a KD epoch, and a whole run with start_fraction 1 ends with KD's parameters bit for bit.
//
// The variants and controls of the study (bench/isl_study.py), each an option, with the reason it exists:
//   measure random          (control) a random subset of the same size: separates the order from merely training
//                           on fewer distinct examples. The scores are a seeded random permutation (random_scores).
//   measure teacher-ce, teacher-confidence
//                           difficulty from the teacher alone (its CE on the label, 1 - its probability of the
//                           label): a trained network's view of difficulty, which the curriculum literature finds
//                           better than the student's own (self-paced) view, and usable from step 0 (warm-up 0).
//   measure disagreement    the student's CE against the teacher's predicted class: instances where the student
//                           does not (yet) give the teacher's answer are hard, whatever the label says.
//   direction hard-first    (control) the anti-curriculum: the order reversed, hardest first.
//   stratified              each class keeps its own easiest fraction: the order interleaves the classes so that
//                           every prefix holds each class in proportion (within one instance). The plain easiest
//                           half of Fashion-MNIST keeps 88% of the trousers but 25% of the coats, i.e. it drops
//                           exactly the classes where the errors are.
//   hard_share h            a subset of k instances is the easiest (1-h)k plus hk drawn at random from the harder
//                           rest: keeps some hard instances in view (self-paced learning with diversity). Mode
//                           subset only; the draw is seeded by (seed, boundary epoch) and kept in the order.
//   mode weighted, weight_tau
//                           instead of a hard cut, each epoch draws num_instances instances with replacement,
//                           P(rank r) ∝ exp(-r / (tau_p * N)), tau_p = weight_tau / (1 - x_p) with x_p the pacing's
//                           progress p / num_phases (p / (num_phases - 1) with full_at_last_phase): the preference
//                           for easy instances anneals towards uniform (importance-sampling style, no instance ever
//                           has probability 0).
//   rescore_every_epoch     every epoch of a phase is a boundary: the order follows the student as it learns.
//   lr_restart              the caller restarts the learning-rate schedule, scaled to the segment's length, at every
//                           segment (warm-up, each phase, the final all-data stage; see segment_start): with the KD
//                           schedule scaled to 3 epochs the final all-data epoch otherwise gets 1.5% of the run's
//                           summed rate, i.e. the hard instances never see a high rate after the warm-up.
//   pacing that reaches all data before the first LR drop: train_kd --pace-to-lr-drop lays the phases out with
//                           phase_epochs_before_lr_drop() (the same cause as lr_restart, fixed the other way).
// Every variant keeps checkpoint/resume exact: the order (after the variant's rearrangement) and the epoch it was
// made for are the checkpointed state; everything else is a function of (options, seed, epoch).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/lr_schedule.h"
#include "engine/tensor.h"
#include "kernels/common/loss_params.h"

namespace islkd::distill {

// How the trained fraction grows over the curriculum phases, with x = p / num_phases (p = 0, 1, ...):
//   linear  g = s + (1 - s) * x
//   root    g = sqrt(s^2 + (1 - s^2) * x)      (the square-root competence of Platanios et al., 2019)
//   step    g = s during every phase, 1 after the last (a single step from the easy subset to all data)
// With full_at_last_phase, x = p / (num_phases - 1) instead, so the last phase itself trains on everything.
enum class Pacing { Linear, Root, Step };
enum class BatchOrder { Shuffled, Sequence };  // within a phase's subset
enum class CurriculumMode { Subset, OrderingOnly, Weighted };
enum class Direction { EasyFirst, HardFirst };
// What the caller scores instances with. The first four are ops::difficulty_scores of the student snapshot
// (student_measure()); the others are described in the header comment above.
enum class Measure { Loss, CE, KD, Confidence, Random, TeacherCE, TeacherConfidence, Disagreement };

Pacing parse_pacing(const std::string& name);  // "linear" | "root" | "step"
const char* pacing_name(Pacing p);
BatchOrder parse_batch_order(const std::string& name);  // "shuffled" | "sequence"
const char* batch_order_name(BatchOrder o);
CurriculumMode parse_curriculum_mode(const std::string& name);  // "subset" | "ordering" | "weighted"
const char* curriculum_mode_name(CurriculumMode m);
Direction parse_direction(const std::string& name);  // "easy-first" | "hard-first"
const char* direction_name(Direction d);
// "loss" | "ce" | "kd" | "confidence" | "random" | "teacher-ce" | "teacher-confidence" | "disagreement"
Measure parse_measure(const std::string& name);
const char* measure_name(Measure m);
bool is_student_measure(Measure m);        // loss, ce, kd, confidence: ops::difficulty_scores of the student
bool needs_student(Measure m);             // the student measures and disagreement
DifficultyMeasure student_measure(Measure m);  // the op's measure of a student measure (Error otherwise)

// Difficulty from the teacher's logits alone (rows x classes, row-major) and the labels: teacher-ce is the
// teacher's cross-entropy on the label, teacher-confidence 1 - its probability of the label (ops::difficulty_scores
// with the teacher as the snapshot).
std::vector<float> teacher_difficulty(const std::vector<float>& teacher_logits, const std::vector<int32_t>& labels,
                                      int64_t num_classes, Measure m);
// The teacher's predicted class of every row (first maximum), the labels of the disagreement measure.
std::vector<int32_t> teacher_predictions(const std::vector<float>& teacher_logits, int64_t num_classes);

struct CurriculumOptions {
  int64_t num_instances = 0;  // training-set size (required)
  uint64_t seed = 0;
  CurriculumMode mode = CurriculumMode::Subset;
  // Defaults sized for a 5-epoch run: 1 warm-up epoch, 3 one-epoch phases, 1 epoch on all data, the student's KD
  // loss as difficulty (the paper's reading). train_kd's own defaults are the ISL study's choice instead
  // (bench/isl_study/report.md): measure teacher-ce, no warm-up, 1 phase paced to end before the first LR drop.
  int warmup_epochs = 1;
  int phase_epochs = 1;
  int num_phases = 3;
  Pacing pacing = Pacing::Linear;
  double start_fraction = 0.5;  // g(0), in (0, 1]
  bool full_at_last_phase = false;
  BatchOrder batch_order = BatchOrder::Shuffled;
  // What the caller scores instances with (kept here so a run's log and checkpoint record it; default: the
  // instance's own KD objective).
  Measure measure = Measure::Loss;
  Direction direction = Direction::EasyFirst;
  bool stratified = false;       // needs set_labels() before begin_phase
  double hard_share = 0.0;       // in [0, 1)
  double weight_tau = 0.25;      // mode weighted: tau_0 as a fraction of the instances, > 0
  bool rescore_every_epoch = false;
  bool lr_restart = false;       // recorded here; applied by the caller through segment_start()

  void validate() const;  // islkd::Error naming the bad option
  nlohmann::json to_json() const;
  // Missing keys keep their defaults; unknown keys are an error (a typo must not silently change a run).
  static CurriculumOptions from_json(const nlohmann::json& j);
};

class Curriculum {
 public:
  static constexpr int kWarmup = -1;  // phase_of_epoch() of warm-up epochs
  using PlainOrder = std::function<std::vector<int64_t>(int epoch)>;

  explicit Curriculum(const CurriculumOptions& options);
  const CurriculumOptions& options() const { return opt_; }

  // The order of the epochs outside the phases (a permutation of all instances for each epoch). train_kd passes
  // KD's ShuffledSampler; unset, the curriculum's own (seed, epoch) shuffle. Not part of the checkpointed state:
  // set it again after from_state.
  void set_plain_order(PlainOrder plain);
  // The training labels (one per instance), needed by the stratified option. Not checkpointed (the stratified
  // order is).
  void set_labels(std::vector<int32_t> labels);

  // kWarmup, a curriculum phase 0..num_phases-1, or num_phases (after the curriculum).
  int phase_of_epoch(int epoch) const;
  // True when `epoch` needs fresh scores: score, then begin_phase(epoch, scores), then epoch_indices(epoch).
  bool is_phase_boundary(int epoch) const;
  // g(phase): the fraction of instances (easiest first) the phase trains on; 1 outside the curriculum phases.
  double fraction(int phase) const;
  int64_t subset_size(int phase) const;  // ceil(g * N), at least 1 (mode weighted: N)
  // Mode weighted: the temperature tau_p of phase p (as a fraction of N; infinite = uniform).
  double weight_tau(int phase) const;
  // The first epoch of the learning-rate segment holding `epoch` (segments: the warm-up, each phase, the epochs
  // after the curriculum), and its end (exclusive; `epochs` for the last segment). For lr_restart.
  int segment_start(int epoch) const;
  int segment_end(int epoch, int epochs) const;

  // Seeded scores for measure random: a random permutation of 0..N-1 (as floats, exact for N <= 2^24), so the
  // sorted order is a uniformly random order, different for each boundary epoch.
  std::vector<float> random_scores(int epoch) const;

  // Sorts the scores (one per instance, CPU or CUDA) easy to hard, applies direction, stratified and hard_share,
  // and keeps the order for the phase (the epoch, with rescore_every_epoch) starting at `epoch`, which must be a
  // boundary.
  void begin_phase(int epoch, const Tensor& scores);
  void begin_phase(int epoch, const std::vector<float>& scores);

  // The instance indices of `epoch` in training order, always num_instances long. A curriculum epoch needs the
  // order of its phase (begin_phase at its boundary, or a restored state); otherwise an islkd::Error.
  std::vector<int64_t> epoch_indices(int epoch) const;

  int current_phase() const { return phase_; }  // phase whose order is held; kWarmup when none yet
  int order_epoch() const { return order_epoch_; }  // the boundary epoch the held order was made at (-1: none)
  const std::vector<uint32_t>& order() const { return order_; }  // easy-to-hard instance indices (or empty)
  double last_sort_seconds() const { return last_sort_seconds_; }  // wall time of the last begin_phase sort

  // Checkpoint state: options, held phase, its epoch and its fraction as JSON, plus the order as a uint32 vector.
  // from_state(state_json(), order()) reproduces every later epoch_indices() exactly (after set_plain_order and
  // set_labels as before).
  nlohmann::json state_json() const;
  static Curriculum from_state(const nlohmann::json& state, const std::vector<uint32_t>& order);

 private:
  std::vector<int64_t> plain_epoch(int epoch) const;
  CurriculumOptions opt_;
  PlainOrder plain_;
  std::vector<int32_t> labels_;
  int phase_ = kWarmup;
  int order_epoch_ = -1;
  std::vector<uint32_t> order_;
  double last_sort_seconds_ = 0.0;
};

// Interleaves an easy-to-hard order class by class so that every prefix of length k holds each class c in
// proportion to its size (k * n_c / N, within one instance), each class's instances keeping their relative order:
// at each position, the class furthest behind its share goes next.
std::vector<uint32_t> stratify_order(const std::vector<uint32_t>& order, const std::vector<int32_t>& labels);

// The last whole epoch boundary at or before the first drop of the schedule's rate below half its peak over
// `epochs` (read at every step): the curriculum must end there to reach all data while the rate is still high.
int epochs_before_lr_drop(const LRSchedule& schedule, int64_t epochs, int64_t steps_per_epoch);

}  // namespace islkd::distill
