// The Trainer: owns a run's loop — the step (teacher targets, student forward, objective, backward, SGD update),
// the ISL phase boundaries when there is a curriculum, evaluation, checkpoint/resume (bit-identical on the CPU),
// the progress line and the metrics. The apps (train, train_kd) only turn flags into a TrainerConfig and its parts;
// kd_step_bench times the same TrainStep.
#pragma once
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "engine/distill/curriculum.h"
#include "engine/distill/objective.h"
#include "engine/lr_schedule.h"
#include "engine/module.h"
#include "engine/optim.h"
#include "engine/train/dist.h"
#include "engine/train/grad_buckets.h"
#include "engine/train/run_log.h"
#include "engine/train/teacher_targets.h"

namespace islkd::train {

struct StepOutput {
  Tensor loss, logits;  // the step's mean loss ([1]) and the student's logits
};

// One training step. Split in two named halves so a benchmark can time the teacher apart from the student.
class TrainStep {
 public:
  // `teacher` may be null when the objective needs none; `cached_targets` reads the teacher's cached logits by
  // instance index instead of running it.
  // The objective is bound (Objective::bind) before: its needs() are read once here. Teacher features always come
  // from the live teacher (the cache holds logits only).
  TrainStep(Module& student, distill::Objective& objective, SGD& optimizer, TeacherTargets* teacher,
            bool cached_targets);
  // The teacher's outputs the objective asked for (live under no-grad, or gathered from the cache).
  distill::ObjectiveInputs teacher_targets(const Tensor& images, const std::vector<int64_t>& indices);
  // Student forward, the objective, backward, update.
  StepOutput learn(const Tensor& images, const Tensor& labels, distill::ObjectiveInputs in);
  StepOutput operator()(const Tensor& images, const Tensor& labels, const std::vector<int64_t>& indices,
                        int64_t epoch = 0, int64_t step = 0);
  // Data-parallel: the gradients are all-reduced (mean over the ranks) between the backward and the update, this
  // rank's share scaled by `weight` (GradientBuckets::reduce). Null (the default): one process.
  // With `overlap` (the default), each bucket's all-reduce starts inside the backward once its gradients are final.
  void set_reducer(GradientBuckets* reducer, bool overlap = true) {
    reducer_ = reducer;
    overlap_ = overlap;
  }
  void set_grad_weight(float weight) { grad_weight_ = weight; }
  // --sync-bn: the weight scales the loss before the backward instead of the gradients after it. Synchronised batch
  // norm mixes every rank's loss gradient into each rank's parameter gradients, so only a weighted loss gives the
  // global batch's gradient when the slices are uneven.
  void set_weight_loss(bool on) { weight_loss_ = on; }
  // A rank with no instance in the global batch (a short last batch split over more ranks than it has instances):
  // it contributes zeros to the reduction and applies the same update as the others.
  void learn_nothing();

 private:
  Module& student_;
  distill::Objective& objective_;
  SGD& optimizer_;
  TeacherTargets* teacher_;
  bool cached_targets_;
  distill::ObjectiveNeeds needs_;
  GradientBuckets* reducer_ = nullptr;
  bool overlap_ = true;
  float grad_weight_ = 1.0f;
  bool weight_loss_ = false;
};

// Binds the objective to the run's models (distill::Objective::bind): the student, the teacher's model when there
// is one, one instance's C x H x W, the run's seed, and the training set's labels (when needs().instances; crd).
void bind_objective(distill::Objective& objective, Module& student, TeacherTargets* teacher, const Shape& input,
                    uint64_t seed, const std::vector<int32_t>* train_labels = nullptr);
// The bytes of the teacher features the objective asks for, per batch of `batch` instances (0: none).
int64_t teacher_feature_bytes(const distill::Objective& objective, TeacherTargets& teacher, const Shape& input,
                              int64_t batch);

// The optimizer over the student's parameters and the objective's own ("objective.<name>").
std::vector<std::pair<std::string, Tensor>> trained_parameters(const Module& student, const distill::Objective& o);

// How a run reports: `train_kd` (method-tagged lines, mid-epoch checkpoints, a final per-class line) or `train`
// (its own epoch line and metrics fields). Both formats are what users and scripts read; they are kept as they are.
enum class ReportStyle { TrainKd, Train };

struct TrainerConfig {
  ReportStyle style = ReportStyle::TrainKd;
  std::string format;  // the checkpoint's "format" metadata
  std::string label;   // the run's name on its lines (train_kd: the method, e.g. "isl")
  std::string teacher_text;  // "<model> <path>" of the teacher on the start line (train_kd)
  int64_t epochs = 1;  // the batch size is the loader's (TrainerParts::loader_options)
  Device device = Device::CPU;
  bool cached_targets = false;  // kd without augmentation: the teacher's logits computed once
  std::string out, metrics, resume, trace_batches;
  int64_t log_every = 10, eval_every = 0, interrupt_after_steps = 0;
  // What decides the continuation of a run: recorded in the checkpoint and the metrics, compared on --resume for
  // `resume_keys`.
  nlohmann::json run_config;
  std::vector<std::string> resume_keys;
  nlohmann::json data_description;  // describe_data(train split): the checkpoint's "data" metadata, for `infer`
  KDLossParams score_kd;  // the KD settings of the ISL difficulty measures (kd, loss)
  bool pace_to_lr_drop = false;
  // Data-parallel (docs/distributed.md): the world of ranks (null: one process). The loader's batch size
  // (TrainerParts::loader_options) is then the per-rank batch, and the global batch is world size x that. Rank 0
  // alone evaluates, prints (the app sends the others' stdout to /dev/null) and writes metrics; a rank writes a
  // checkpoint when `out` is not empty (the app gives the others none, or a per-rank file for tests).
  std::shared_ptr<dist::Communicator> comm;
  int64_t bucket_bytes = static_cast<int64_t>(kDefaultBucketMiB * 1048576.0);
  // --resume of a checkpoint written on another number of ranks: allowed when true (--reshard). The global batch is
  // the same (it is a resume key), so the global order, the step count and the position inside the epoch carry
  // over; only the per-rank batch, hence per-rank batch norm's statistics, differ from a continuation on the old
  // world size.
  bool reshard = false;
  GradAllreduce grad_allreduce = GradAllreduce::Auto;  // --grad-allreduce (NCCL for CUDA ranks when it loads)
  // --overlap-allreduce: each gradient bucket's all-reduce starts inside the backward, as soon as its gradients are
  // final (off: all after the backward; the same result, for measuring what the overlap hides).
  bool overlap_allreduce = true;
  // --sync-bn: the student's training-mode batch norm takes its statistics over the global batch (every rank's
  // slice; ops::batch_norm2d's sync), its running statistics then equal on every rank. Off: per-rank statistics, as
  // DDP without SyncBatchNorm. With one process both are the same computation.
  bool sync_batch_norm = false;
};

// What a run trains with, built by the app.
struct TrainerParts {
  std::shared_ptr<Module> student;  // freshly created (its init is the seed's); moved to the device by the Trainer
  std::unique_ptr<distill::Objective> objective;
  std::shared_ptr<TeacherTargets> teacher;  // null when the objective needs none and there is no curriculum
  std::unique_ptr<distill::Curriculum> curriculum;  // null: plain shuffled epochs
  std::function<std::unique_ptr<LRSchedule>(int64_t epochs)> make_schedule;
  SGDConfig sgd;
  std::shared_ptr<const data::Dataset> train, test, validation;  // validation may be null
  int64_t n_train = 0, n_test = 0, num_classes = 0;
  data::TransformConfig train_transform;
  data::LoaderOptions loader_options;
  uint64_t seed = 0;  // the run's: seeds the objective's own parameters (Objective::bind)
};

struct RunResult {
  std::string label;
  double test_accuracy = 0.0;  // the last epoch's (what a run is compared by)
  double test_top5 = 0.0;      // the last epoch's top-5 accuracy
  // The epoch with the highest evaluation accuracy (the validation split's when there is one; the earliest of
  // equals), reported beside the last, never instead of it: picking the best epoch by the test split is selection
  // on the test set.
  int64_t best_epoch = 0;
  double best_accuracy = 0.0;
  double seconds = 0.0;
  bool interrupted = false;
};

class Trainer {
 public:
  Trainer(TrainerConfig config, TrainerParts parts);
  ~Trainer();
  RunResult run(const std::atomic<bool>& interrupted);
  Module& student() { return *student_; }

 private:
  void load_state();
  void open_loaders();
  void print_start() const;
  void curriculum_boundary(int64_t epoch);
  bool train_epoch(int64_t epoch, const std::atomic<bool>& interrupted);
  void end_epoch(int64_t epoch, const EpochTally& tally, double epoch_train_seconds, int64_t steps_done);
  void finish();
  void save_state(int64_t epochs_done, int64_t epoch_step, const EpochTally& t, double test_acc);
  EpochTally reduced_tally(const EpochTally& t) const;  // summed over the ranks
  void broadcast_buffers();  // batch-norm running statistics: rank 0's to every rank
  bool distributed() const { return comm_->size() > 1; }
  std::shared_ptr<dist::Nccl> gradient_nccl();  // NCCL for the gradient buckets, or null for MPI
  void check_sync_batch_norm_slices(int64_t epoch_size, const char* what) const;
  double lr_at(int64_t epoch, int64_t step);
  std::string text_prefix() const;

  TrainerConfig cfg_;
  TrainerParts p_;
  std::shared_ptr<Module> student_;
  std::unique_ptr<LRSchedule> schedule_;
  std::shared_ptr<distill::Curriculum> curriculum_;
  std::map<int, std::unique_ptr<LRSchedule>> segment_schedules_;
  std::unique_ptr<SGD> optimizer_;
  std::unique_ptr<TrainStep> step_;
  std::unique_ptr<data::Loader> train_loader_, test_loader_, val_loader_;
  data::Loader* eval_loader_ = nullptr;
  std::string eval_name_ = "test";
  std::unique_ptr<std::ofstream> trace_;
  std::unique_ptr<MetricsLog> metrics_;
  ProgressLine progress_;
  Stopwatch run_clock_;
  int64_t steps_per_epoch_ = 0;
  // resume state
  int64_t start_epoch_ = 0, global_step_ = 0, skip_steps_ = 0;
  EpochTally part_;
  std::map<std::string, Tensor> resumed_opt_state_;
  int64_t resumed_opt_steps_ = 0;
  bool interrupt_requested_ = false;  // --interrupt-after-steps (tests)
  // timing for the progress line and ETA
  double train_seconds_ = 0.0, eval_seconds_last_ = 0.0;
  int64_t steps_timed_ = 0;
  nlohmann::json isl_log_;
  RunResult result_;
  double last_eval_accuracy_ = 0.0;
  int64_t best_epoch_ = 0;  // 0: no epoch evaluated yet; restored on --resume (checkpoint metadata "best")
  double best_accuracy_ = 0.0;
  int64_t teacher_feature_bytes_ = 0;  // per batch, when the objective distills the teacher's features
  // data-parallel
  std::shared_ptr<dist::Communicator> comm_;
  std::unique_ptr<GradientBuckets> reducer_;
  std::shared_ptr<data::ShardedSampler> sharded_;
  int64_t global_batch_ = 0;
  double comm_seconds_epoch_start_ = 0.0;
};

}  // namespace islkd::train
