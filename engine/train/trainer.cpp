// The training loop of train and train_kd, as named steps: load_state, curriculum_boundary, train_epoch (TrainStep
// per batch), end_epoch (evaluate, save_state, report), finish.
#include "engine/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/checkpoint.h"
#include "engine/distill/kd.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "engine/train/curriculum_sampler.h"
#include "engine/train/dist_shards.h"
#include "engine/train/instance_scores.h"
#include "kernels/common/checked.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::train {

namespace {
constexpr const char* kObjectivePrefix = "objective.";

std::unique_ptr<data::Loader> sequential_loader_ptr(const std::shared_ptr<const data::Dataset>& ds, int64_t n,
                                                    const data::LoaderOptions& options) {
  return std::make_unique<data::Loader>(
      ds, data::Transform(data::eval_transform(*ds), ds->channels(), ds->height(), ds->width()),
      std::make_shared<data::SequentialSampler>(n), options);
}
}  // namespace

namespace {
// --sync-bn's view of the world of ranks: the batch-norm kernels' all-gather of a few doubles per layer.
class RankBatchNormSync : public BatchNormSync {
 public:
  explicit RankBatchNormSync(std::shared_ptr<dist::Communicator> comm) : comm_(std::move(comm)) {}
  int replicas() const override { return comm_->size(); }
  void allgather(const double* mine, int64_t n, double* all) override {
    comm_->allgather(mine, n * static_cast<int64_t>(sizeof(double)), all);
  }

 private:
  std::shared_ptr<dist::Communicator> comm_;
};
}  // namespace

// ---- the step ----

TrainStep::TrainStep(Module& student, distill::Objective& objective, SGD& optimizer, TeacherTargets* teacher,
                     bool cached_targets)
    : student_(student),
      objective_(objective),
      optimizer_(optimizer),
      teacher_(teacher),
      cached_targets_(cached_targets),
      needs_(objective.needs()) {
  ISLKD_CHECK(teacher_ || !needs_.needs_teacher(), "objective ", objective_.name(), " needs a teacher");
  ISLKD_CHECK(!needs_.features || (!needs_.student_features.empty() && !needs_.teacher_features.empty()),
              "objective ", objective_.name(), " was not bound to the models (Objective::bind)");
}

distill::ObjectiveInputs TrainStep::teacher_targets(const Tensor& images, const std::vector<int64_t>& indices) {
  distill::ObjectiveInputs in;
  if (!needs_.teacher_features.empty()) {
    // The live teacher, once, for the features and (when asked for) the logits.
    FeaturesOutput f = teacher_->live_features(images, needs_.teacher_features);
    if (needs_.teacher_logits) in.teacher_logits = cached_targets_ ? teacher_->gather(indices) : f.logits;
    in.teacher_features = std::move(f.features);
    return in;
  }
  if (needs_.teacher_logits) in.teacher_logits = cached_targets_ ? teacher_->gather(indices) : teacher_->live(images);
  return in;
}

StepOutput TrainStep::learn(const Tensor& images, const Tensor& labels, distill::ObjectiveInputs in) {
  optimizer_.zero_grad();
  StepOutput out;
  if (needs_.student_features.empty()) {
    out.logits = student_(images);
  } else {
    // The student's features in the same forward pass as its logits.
    FeaturesOutput f = student_.forward_features(images, FeatureRequest{needs_.student_features, false});
    out.logits = f.logits;
    in.student_features = std::move(f.features);
  }
  in.student_logits = out.logits;
  in.labels = labels;
  out.loss = objective_.loss(in);
  // Data-parallel: each gradient bucket's all-reduce starts inside the backward, once its gradients are final.
  const bool scaled_loss = weight_loss_ && grad_weight_ != 1.0f;
  const Tensor root = scaled_loss ? ops::scale(out.loss, grad_weight_) : out.loss;
  if (reducer_ && overlap_) {
    reducer_->begin(scaled_loss ? 1.0f : grad_weight_);
    root.backward([this](const Tensor& leaf) { reducer_->ready(leaf); });
    reducer_->finish();
  } else {
    root.backward();
    if (reducer_) reducer_->reduce(scaled_loss ? 1.0f : grad_weight_);
  }
  optimizer_.step();
  return out;
}

void TrainStep::learn_nothing() {
  ISLKD_CHECK(reducer_, "TrainStep::learn_nothing: only a data-parallel rank takes a step without instances");
  optimizer_.zero_grad();
  reducer_->reduce(0.0f);
  optimizer_.step();
}

StepOutput TrainStep::operator()(const Tensor& images, const Tensor& labels, const std::vector<int64_t>& indices,
                                 int64_t epoch, int64_t step) {
  distill::ObjectiveInputs in = teacher_targets(images, indices);
  in.epoch = epoch, in.step = step;
  if (needs_.instances) in.indices = indices;
  return learn(images, labels, std::move(in));
}

void bind_objective(distill::Objective& objective, Module& student, TeacherTargets* teacher, const Shape& input,
                    uint64_t seed, const std::vector<int32_t>* train_labels) {
  distill::ObjectiveContext ctx;
  ctx.train_labels = train_labels;
  ctx.student = &student;
  ctx.teacher = teacher ? &teacher->model() : nullptr;
  ctx.input = input;
  ctx.seed = seed;
  objective.bind(ctx);
}

int64_t teacher_feature_bytes(const distill::Objective& objective, TeacherTargets& teacher, const Shape& input,
                              int64_t batch) {
  const distill::ObjectiveNeeds needs = objective.needs();
  if (needs.teacher_features.empty()) return 0;
  Module& t = teacher.model();
  const auto params = t.named_parameters();
  const Device d = params.empty() ? Device::CPU : params.front().second.device();
  Shape one = {1};
  one.insert(one.end(), input.begin(), input.end());
  FeaturesOutput f = teacher.live_features(Tensor::zeros(one, d), needs.teacher_features);
  int64_t bytes = 0;
  for (const auto& [name, x] : f.features) bytes += x.numel() * static_cast<int64_t>(sizeof(float));
  return bytes * batch;
}

std::vector<std::pair<std::string, Tensor>> trained_parameters(const Module& student, const distill::Objective& o) {
  std::vector<std::pair<std::string, Tensor>> all = student.named_parameters();
  for (auto& [name, t] : o.parameters()) all.emplace_back(kObjectivePrefix + name, t);
  return all;
}

// ---- the run ----

Trainer::Trainer(TrainerConfig config, TrainerParts parts) : cfg_(std::move(config)), p_(std::move(parts)) {
  student_ = p_.student;
  comm_ = cfg_.comm ? cfg_.comm : dist::single_process();
  schedule_ = p_.make_schedule(cfg_.epochs);
  curriculum_ = std::shared_ptr<distill::Curriculum>(std::move(p_.curriculum));
  global_batch_ = p_.loader_options.batch_size * comm_->size();
  steps_per_epoch_ = data::global_batches(p_.n_train, p_.loader_options.batch_size, comm_->size());
  result_.label = cfg_.label;
  const Shape input = {p_.train->channels(), p_.train->height(), p_.train->width()};
  {
    // An objective with per-instance state (crd) sees the training labels at bind; the others do not pay for them.
    const std::vector<int32_t> labels =
        p_.objective->needs().instances ? train_labels(*p_.train, p_.n_train) : std::vector<int32_t>();
    bind_objective(*p_.objective, *student_, p_.teacher.get(), input, p_.seed, labels.empty() ? nullptr : &labels);
  }
  if (p_.objective->needs().needs_teacher_features()) {
    cfg_.cached_targets = false;  // the cache holds logits only: the teacher runs live at every step
    teacher_feature_bytes_ = teacher_feature_bytes(*p_.objective, *p_.teacher, input, p_.loader_options.batch_size);
  }
  load_state();
  student_->to(cfg_.device);
  p_.objective->to(cfg_.device);
  if (cfg_.sync_batch_norm) {
    nn::set_batch_norm_sync(*student_, std::make_shared<RankBatchNormSync>(comm_));
    check_sync_batch_norm_slices(p_.n_train, "the training split");
  }
  optimizer_ = std::make_unique<SGD>(trained_parameters(*student_, *p_.objective), p_.sgd);
  if (!cfg_.resume.empty()) optimizer_->load_state(resumed_opt_state_, resumed_opt_steps_);
  step_ = std::make_unique<TrainStep>(*student_, *p_.objective, *optimizer_, p_.teacher.get(), cfg_.cached_targets);
  if (distributed() && p_.teacher) p_.teacher->shard_over(comm_);
  // crd's memory banks are updated from each rank's own batch: across ranks they would need an all-gather of every
  // step's rows, which is not written yet. Refused rather than training on banks that silently diverge.
  ISLKD_CHECK(!distributed() || p_.objective->buffers().empty(), "objective '", p_.objective->name(),
              "' keeps per-instance state (memory banks) that data-parallel training does not synchronise yet; "
              "run it in one process");
  if (distributed() || cfg_.grad_allreduce == GradAllreduce::Nccl) {
    reducer_ = std::make_unique<GradientBuckets>(trained_parameters(*student_, *p_.objective), cfg_.bucket_bytes,
                                                 *comm_, gradient_nccl());
    step_->set_reducer(reducer_.get(), cfg_.overlap_allreduce);
    step_->set_weight_loss(cfg_.sync_batch_norm);
  }
}

// --sync-bn: every rank runs every batch-norm layer of every step (the statistics are collective), so a global batch
// with fewer instances than ranks (some rank's slice empty: learn_nothing, no forward) cannot be synchronised. Refused
// on every rank alike, before the epoch, naming the sizes.
void Trainer::check_sync_batch_norm_slices(int64_t epoch_size, const char* what) const {
  if (!cfg_.sync_batch_norm || !distributed()) return;
  const int64_t last = epoch_size % global_batch_;
  ISLKD_CHECK(last == 0 || last >= comm_->size(), "--sync-bn: ", what, "'s ", epoch_size,
              " instances end in a global batch of ", last, " (", epoch_size, " mod ", global_batch_,
              "), fewer than the ", comm_->size(),
              " ranks: a rank would have no instance for the synchronised batch norm; change --batch-size, --limit "
              "or the world size, or run without --sync-bn");
}

Trainer::~Trainer() = default;

// NCCL when asked for (--grad-allreduce nccl: an error when it cannot be had) or, by default, for CUDA ranks of a
// world of more than one when every rank loads libnccl; otherwise MPI through host memory, after one warning line
// when NCCL was the default's choice. Whether NCCL loaded is agreed over MPI before the (collective) communicator
// is made, so a rank without the library sends every rank to MPI instead of leaving the others waiting in NCCL.
std::shared_ptr<dist::Nccl> Trainer::gradient_nccl() {
  const bool forced = cfg_.grad_allreduce == GradAllreduce::Nccl;
  if (cfg_.grad_allreduce == GradAllreduce::Mpi) return nullptr;
  if (cfg_.device != Device::CUDA) {
    ISLKD_CHECK(!forced, "--grad-allreduce nccl needs --device cuda (CPU gradients go over MPI)");
    return nullptr;
  }
  std::string why;
  bool ok = false;
  if (cuda::is_emulated() && !dist::nccl_library_named())
    // The emulated device's buffers are host memory: only the shim (kernels/emu/shim) can read them.
    why = "the emulated CUDA device needs the NCCL shim: set ISLKD_LIBNCCL to libislkd_nccl_shim.so (built in "
          "kernels/emu/shim/)";
  else
    ok = dist::Nccl::load(&why);
  if (forced) {
    ISLKD_CHECK(ok, "--grad-allreduce nccl: ", why);
    return dist::Nccl::create(*comm_);
  }
  double failed = ok ? 0.0 : 1.0;
  comm_->allreduce_sum(&failed, 1);
  if (failed > 0.0) {
    if (comm_->is_root())
      std::fprintf(stderr, "%s: warning: GPU gradients go through host memory over MPI, not NCCL (%s)\n",
                   text_prefix().c_str(), ok ? "another rank cannot load NCCL" : why.c_str());
    return nullptr;
  }
  return dist::Nccl::create(*comm_);
}

std::string Trainer::text_prefix() const {
  return cfg_.style == ReportStyle::Train ? "train" : "train_kd[" + cfg_.label + "]";
}

// --resume: the student's tensors, the optimizer's and objective's state, the counts and the curriculum, each
// checked against this run before anything trains.
void Trainer::load_state() {
  if (cfg_.resume.empty()) return;
  const std::string& path = cfg_.resume;
  const bool kd_style = cfg_.style == ReportStyle::TrainKd;
  const char* app = kd_style ? "train_kd" : "train";
  checkpoint::Contents c = checkpoint::load(path, *student_);
  ISLKD_CHECK(meta_get(c.metadata, "format", path, app) == cfg_.format, path, ": checkpoint format '",
              c.metadata.at("format"), "', expected ", cfg_.format);
  nlohmann::json saved = nlohmann::json::parse(meta_get(c.metadata, "config", path, app), nullptr, false);
  ISLKD_CHECK(!saved.is_discarded(), path, ": metadata 'config' is not JSON");
  {
    // The shards, the per-rank batches and the order of the reductions follow the world size: a checkpoint continues
    // on as many ranks as wrote it (no "world_size" in the config: one process).
    const int64_t saved_world = saved.value("world_size", int64_t(1));
    ISLKD_CHECK(saved_world == comm_->size() || cfg_.reshard, "--resume ", path, " was written by a run on ",
                saved_world, saved_world == 1 ? " process" : " ranks", ", this run has ", comm_->size(),
                "; continue it with the same world size (mpirun -np ", saved_world,
                "), or add --reshard to continue on this one (the same global batch; per-rank batch norm then "
                "normalises other slices, so the run is no longer bit-identical to either)");
    if (saved_world != comm_->size() && comm_->is_root())
      std::printf("%s: re-sharding %s from %lld to %d rank(s): the global batch, order and position carry over\n",
                  text_prefix().c_str(), path.c_str(), static_cast<long long>(saved_world), comm_->size());
    // The world size and per-rank batch are this run's; every other resume key is still compared below.
    saved.erase("world_size");
    saved.erase("per_rank_batch");
  }
  for (const std::string& key : cfg_.resume_keys) {
    if (key == "objective" && !saved.contains(key)) continue;  // written before objectives had names: "method" says
    nlohmann::json want = cfg_.run_config.value(key, nlohmann::json()), got = saved.value(key, nlohmann::json());
    ISLKD_CHECK(want == got, "--resume ", path, ": it was trained with ", key, " = ", got.dump(), ", this run has ",
                want.dump());
  }
  if (auto it = c.metadata.find("best"); it != c.metadata.end()) {  // absent in checkpoints before issue 17
    nlohmann::json best = nlohmann::json::parse(it->second, nullptr, false);
    ISLKD_CHECK(best.is_object() && best.value("epoch", nlohmann::json()).is_number_integer() &&
                    best.value("accuracy", nlohmann::json()).is_number(),
                path, ": metadata 'best' is not {\"epoch\": integer, \"accuracy\": number}");
    best_epoch_ = best["epoch"].get<int64_t>();
    best_accuracy_ = best["accuracy"].get<double>();
  }
  start_epoch_ = parse_count(meta_get(c.metadata, "epoch", path, app), path + (kd_style ? ": 'epoch'" : ": metadata 'epoch'"));
  global_step_ = parse_count(meta_get(c.metadata, "step", path, app), path + (kd_style ? ": 'step'" : ": metadata 'step'"));
  const int64_t opt_steps = parse_count(meta_get(c.metadata, "optimizer.steps", path, app),
                                        path + (kd_style ? ": steps" : ": 'optimizer.steps'"));
  const int64_t per_epoch = steps_per_epoch_;
  if (kd_style) {
    skip_steps_ = parse_count(meta_get(c.metadata, "epoch_step", path, app), path + ": epoch_step");
    // the counts must agree with each other (same data and batch size: checked against the config above)
    ISLKD_CHECK(skip_steps_ <= per_epoch && global_step_ == start_epoch_ * per_epoch + skip_steps_ &&
                    opt_steps == global_step_,
                path, ": inconsistent counts (epoch ", start_epoch_, ", epoch_step ", skip_steps_, ", step ",
                global_step_, ", optimizer.steps ", opt_steps, " with ", per_epoch,
                " steps per epoch): a tampered or corrupt checkpoint");
    nlohmann::json pj = nlohmann::json::parse(meta_get(c.metadata, "epoch_partial", path, app), nullptr, false);
    ISLKD_CHECK(pj.is_object(), path, ": metadata 'epoch_partial' is not a JSON object");
    part_.loss_sum = pj.value("loss_sum", 0.0);
    part_.correct = pj.value("correct", int64_t(0));
    part_.seen = pj.value("seen", int64_t(0));
    ISLKD_CHECK(std::isfinite(part_.loss_sum) && part_.seen >= 0 && part_.correct >= 0 && part_.correct <= part_.seen,
                path, ": metadata 'epoch_partial' ", pj.dump(), " is not a possible tally");
    if (!comm_->is_root()) part_ = EpochTally{};  // the saved tally is all ranks' sum: rank 0 carries it on
  } else {
    ISLKD_CHECK(global_step_ == start_epoch_ * per_epoch && opt_steps == global_step_, path,
                ": inconsistent counts (epoch ", start_epoch_, ", step ", global_step_, ", optimizer.steps ", opt_steps,
                " with ", per_epoch, " steps per epoch): a tampered or corrupt checkpoint");
  }
  ISLKD_CHECK(start_epoch_ < cfg_.epochs, "--resume ", path, " has already trained ", start_epoch_,
              " epochs; pass --epochs larger than that to continue");
  std::vector<uint32_t> order;
  std::map<std::string, Tensor> opt_state;
  std::map<std::string, Tensor> objective_state;
  for (const auto& e : c.extra) {
    if (e.name == "curriculum.order") {
      ISLKD_CHECK(e.dtype == safetensors::DType::I64, path, ": 'curriculum.order' is not int64");
      for (int64_t v : e.i64) {
        ISLKD_CHECK(v >= 0 && v < p_.n_train, path, ": 'curriculum.order' holds ", v, ", outside [0, ", p_.n_train,
                    ")");
        order.push_back(static_cast<uint32_t>(v));
      }
      continue;
    }
    ISLKD_CHECK(e.dtype == safetensors::DType::F32, path, ": '", e.name, "' is not float32");
    Tensor t = Tensor::from_vector(e.f32, e.shape.empty() ? Shape{1} : Shape(e.shape));
    if (e.name.rfind(kObjectivePrefix, 0) == 0)
      objective_state[e.name.substr(std::string(kObjectivePrefix).size())] = t;
    else
      opt_state[e.name] = t;
  }
  // The objective's own parameters and buffers, by name and shape (on the host: the Trainer moves everything after
  // this).
  std::vector<std::pair<std::string, Tensor>> objective_tensors = p_.objective->parameters();
  for (auto& nb : p_.objective->buffers()) objective_tensors.push_back(nb);
  for (auto& [name, param] : objective_tensors) {
    auto it = objective_state.find(name);
    ISLKD_CHECK(it != objective_state.end(), path, ": no '", kObjectivePrefix, name, "' for objective ",
                p_.objective->name());
    ISLKD_CHECK(it->second.shape() == param.shape(), path, ": '", kObjectivePrefix, name, "' has shape ",
                shape_str(it->second.shape()), ", the objective's is ", shape_str(param.shape()));
    std::vector<float> v = it->second.to_vector();
    Tensor dst = param;
    dst.copy_from(Tensor::from_vector(v, param.shape(), param.device()));
  }
  if (curriculum_) {
    nlohmann::json cs = nlohmann::json::parse(meta_get(c.metadata, "curriculum", path, app), nullptr, false);
    ISLKD_CHECK(!cs.is_discarded(), path, ": metadata 'curriculum' is not JSON");
    curriculum_ = std::make_shared<distill::Curriculum>(distill::Curriculum::from_state(cs, order));
  }
  resumed_opt_state_ = std::move(opt_state);
  resumed_opt_steps_ = opt_steps;
}

// The loaders: training batches from the curriculum (ISL) or KD's shuffle, the test split, and the validation split
// when there is one (the run then evaluates on it and reads the test split once, at the end).
void Trainer::open_loaders() {
  const data::LoaderOptions& lopt = p_.loader_options;
  std::shared_ptr<data::Sampler> sampler;
  auto plain = std::make_shared<data::ShuffledSampler>(p_.n_train, lopt.seed);
  if (curriculum_) {
    // Outside its phases ISL draws exactly KD's batches (same sampler, seed and epoch): a fair comparison.
    curriculum_->set_plain_order([plain](int epoch) { return plain->indices(epoch); });
    if (curriculum_->options().stratified) curriculum_->set_labels(train_labels(*p_.train, p_.n_train));
    sampler = std::make_shared<CurriculumSampler>(curriculum_);
  } else {
    sampler = plain;
  }
  if (distributed()) {
    sharded_ = std::make_shared<data::ShardedSampler>(sampler, comm_->rank(), comm_->size(), lopt.batch_size);
    sampler = sharded_;
  }
  const data::Dataset& ds = *p_.train;
  train_loader_ = std::make_unique<data::Loader>(
      p_.train, data::Transform(p_.train_transform, ds.channels(), ds.height(), ds.width()), sampler, lopt);
  test_loader_ = sequential_loader_ptr(p_.test, p_.n_test, lopt);
  if (p_.validation) val_loader_ = sequential_loader_ptr(p_.validation, p_.validation->size(), lopt);
  eval_loader_ = val_loader_ ? val_loader_.get() : test_loader_.get();
  eval_name_ = val_loader_ ? "val" : "test";
  if (!cfg_.trace_batches.empty()) trace_ = std::make_unique<std::ofstream>(cfg_.trace_batches);
}

void Trainer::print_start() const {
  if (cfg_.style == ReportStyle::Train) {
    const data::Dataset& ds = *p_.train;
    std::printf("train: %s (%lld parameters) on %s: %lld train / %lld test instances, %lld classes, %dx%dx%d, "
                "device %s, %d threads, %d loader workers\n",
                cfg_.run_config.value("model", std::string()).c_str(),
                static_cast<long long>(student_->num_parameters()), ds.source().c_str(),
                static_cast<long long>(p_.n_train), static_cast<long long>(p_.n_test),
                static_cast<long long>(p_.num_classes), ds.channels(), ds.height(), ds.width(),
                device_name(cfg_.device), cpu::num_threads(), train_loader_->workers());
    std::printf("train: config %s\n", cfg_.run_config.dump().c_str());
    if (start_epoch_ > 0)
      std::printf("train: resuming %s after epoch %lld (step %lld)\n", cfg_.resume.c_str(),
                  static_cast<long long>(start_epoch_), static_cast<long long>(global_step_));
  } else {
    const bool use_teacher = p_.objective->needs().needs_teacher();
    std::printf("train_kd[%s]: student %s (%lld parameters)%s, %lld train / %lld test instances, out %s\n",
                cfg_.label.c_str(), cfg_.run_config.value("model", std::string()).c_str(),
                static_cast<long long>(student_->num_parameters()),
                use_teacher ? (", teacher " + cfg_.teacher_text).c_str() : "",
                static_cast<long long>(p_.n_train), static_cast<long long>(p_.n_test), cfg_.out.c_str());
    std::printf("train_kd[%s]: config %s\n", cfg_.label.c_str(), cfg_.run_config.dump().c_str());
    if (p_.objective->needs().needs_teacher_features())
      std::printf("train_kd[%s]: objective %s distills the teacher's features: the live teacher runs at every step "
                  "(no logit cache for it); its features take %.2f MiB per batch of %lld\n",
                  cfg_.label.c_str(), p_.objective->name().c_str(),
                  static_cast<double>(teacher_feature_bytes_) / 1048576.0,
                  static_cast<long long>(p_.loader_options.batch_size));
    if (!cfg_.resume.empty())
      std::printf("train_kd[%s]: resuming %s at epoch %lld, step %lld of it\n", cfg_.label.c_str(),
                  cfg_.resume.c_str(), static_cast<long long>(start_epoch_ + 1), static_cast<long long>(skip_steps_));
  }
  const std::string transport =
      reducer_ && reducer_->nccl()
          ? "NCCL " + reducer_->nccl()->version_text() + " (" + reducer_->nccl()->library() + ") on device buffers"
          : "MPI through host memory";
  if (distributed())
    std::printf("%s: data-parallel over %d ranks (%s): global batch %lld = %d x %lld per rank; gradients averaged in "
                "%zu bucket(s) of up to %.1f MiB before each update (%s), over %s\n",
                text_prefix().c_str(), comm_->size(), comm_->backend().c_str(), static_cast<long long>(global_batch_),
                comm_->size(), static_cast<long long>(p_.loader_options.batch_size), reducer_->buckets().size(),
                static_cast<double>(cfg_.bucket_bytes) / 1048576.0,
                cfg_.overlap_allreduce ? "each started during the backward" : "after the backward", transport.c_str());
  else if (reducer_)
    std::printf("%s: gradients all-reduced over 1 rank in %zu bucket(s) of up to %.1f MiB, over %s "
                "(--grad-allreduce nccl)\n",
                text_prefix().c_str(), reducer_->buckets().size(), static_cast<double>(cfg_.bucket_bytes) / 1048576.0,
                transport.c_str());
  std::fflush(stdout);
}

// The rate of (epoch, step): the run's schedule, or with lr_restart the schedule scaled to the curriculum segment
// holding the epoch, restarted at its first epoch.
double Trainer::lr_at(int64_t epoch, int64_t step) {
  if (!curriculum_ || !curriculum_->options().lr_restart) return schedule_->lr_at_step(epoch, step, steps_per_epoch_);
  const int e = static_cast<int>(epoch), first = curriculum_->segment_start(e);
  auto& seg = segment_schedules_[first];
  if (!seg) seg = p_.make_schedule(curriculum_->segment_end(e, static_cast<int>(cfg_.epochs)) - first);
  return seg->lr_at_step(epoch - first, step, steps_per_epoch_);
}

RunResult Trainer::run(const std::atomic<bool>& interrupted) {
  open_loaders();
  // Without augmentation an instance always looks the same, so the teacher's logits are computed once.
  if (cfg_.cached_targets || curriculum_) p_.teacher->cache();
  print_start();
  metrics_ = std::make_unique<MetricsLog>(cfg_.metrics, cfg_.run_config, start_epoch_);
  student_->train();
  run_clock_.reset();
  for (int64_t epoch = start_epoch_; epoch < cfg_.epochs; ++epoch) {
    isl_log_ = nlohmann::json();
    if (curriculum_ && curriculum_->is_phase_boundary(static_cast<int>(epoch)) &&
        !(epoch == start_epoch_ && skip_steps_ > 0))  // a mid-epoch resume restored this phase's order
      curriculum_boundary(epoch);
    if (!train_epoch(epoch, interrupted)) {
      result_.interrupted = true;
      return result_;
    }
  }
  finish();
  result_.seconds = run_clock_.seconds();
  return result_;
}

// An ISL phase boundary: score every instance with the current student, sort, report.
void Trainer::curriculum_boundary(int64_t epoch) {
  distill::Curriculum& c = *curriculum_;
  const distill::CurriculumOptions& copt = c.options();
  TeacherTargets& teacher = *p_.teacher;
  teacher.cache();
  Stopwatch score_clock;
  ScoringData sd{p_.train, p_.n_train, p_.num_classes, p_.loader_options};
  // Data-parallel: a measure that runs the student is computed in shards (rank r: instances [r N / W, (r+1) N / W))
  // and all-gathered; the teacher's measures (from its cached logits, themselves computed in shards and all-gathered)
  // are computed whole on every rank.
  const bool sharded_scoring = distributed() && distill::needs_student(copt.measure);
  const int64_t n = p_.n_train;
  if (sharded_scoring) {
    sd.shard_begin = dist::shard_begin(n, comm_->rank(), comm_->size());
    sd.shard_end = dist::shard_end(n, comm_->rank(), comm_->size());
  }
  std::vector<float> scores = curriculum_scores(c, static_cast<int>(epoch), *student_, teacher, sd, cfg_.score_kd);
  if (sharded_scoring) dist::allgather_shards(*comm_, scores, n, 1);
  // Every rank sorts the same scores into the same order: the all-gathered ones, or rank 0's (the teacher's scores
  // come from the same all-gathered logits on every rank, but their arithmetic may round differently on another
  // machine's CPU).
  if (distributed() && !sharded_scoring)
    comm_->broadcast(scores.data(), static_cast<int64_t>(scores.size() * sizeof(float)), 0);
  const double score_seconds = score_clock.seconds();
  c.begin_phase(static_cast<int>(epoch), scores);
  const int phase = c.phase_of_epoch(static_cast<int>(epoch));
  isl_log_ = {{"phase", phase},
              {"fraction", c.fraction(phase)},
              {"subset_size", c.subset_size(phase)},
              {"score_seconds", score_seconds},
              {"sort_seconds", c.last_sort_seconds()},
              {"teacher_cache_seconds", teacher.cache_seconds()}};
  {
    // The class histogram of the phase's subset (the study plots it: an easy half can drop whole classes).
    std::vector<int64_t> hist(static_cast<size_t>(p_.num_classes), 0);
    const std::vector<int32_t>& y = p_.train->labels();
    for (int64_t r = 0; r < c.subset_size(phase); ++r) ++hist[static_cast<size_t>(y[c.order()[static_cast<size_t>(r)]])];
    isl_log_["subset_class_counts"] = hist;
  }
  // The boundary's cost against a training epoch of this run (the mean so far; none yet after a resume).
  const double boundary_seconds = score_seconds + c.last_sort_seconds();
  const double epoch_seconds =
      steps_timed_ > 0 ? train_seconds_ / static_cast<double>(steps_timed_) * static_cast<double>(steps_per_epoch_)
                       : 0.0;
  if (epoch_seconds > 0.0) isl_log_["boundary_share_of_epoch"] = boundary_seconds / epoch_seconds;
  progress_.clear();
  std::string what;
  if (copt.mode == distill::CurriculumMode::Weighted)
    what = "draws weighted by exp(-rank/(" + fixed(c.weight_tau(phase), 3) + " N))";
  else
    what = std::string(copt.direction == distill::Direction::HardFirst ? "hardest " : "easiest ") +
           fixed(100.0 * c.fraction(phase), 0) + "% (" + std::to_string(c.subset_size(phase)) + " instances)";
  std::printf("train_kd[%s]: phase %d from epoch %lld: %s by %s; scoring %.2fs, sort %.3f ms (%.3f%% of scoring)",
              cfg_.label.c_str(), phase, static_cast<long long>(epoch + 1), what.c_str(),
              distill::measure_name(copt.measure), score_seconds, 1e3 * c.last_sort_seconds(),
              100.0 * c.last_sort_seconds() / std::max(score_seconds, 1e-9));
  if (epoch_seconds > 0.0)
    std::printf("; the boundary costs %.1f%% of a training epoch (%.1fs)", 100.0 * boundary_seconds / epoch_seconds,
                epoch_seconds);
  std::printf("\n");
  std::fflush(stdout);
}

// One epoch of steps; false when interrupted (a checkpoint was written mid-epoch).
bool Trainer::train_epoch(int64_t epoch, const std::atomic<bool>& interrupted) {
  const bool kd_style = cfg_.style == ReportStyle::TrainKd;
  Stopwatch epoch_clock;
  train_loader_->start_epoch(epoch);
  comm_seconds_epoch_start_ = reducer_ ? reducer_->seconds() : 0.0;
  if (sharded_) check_sync_batch_norm_slices(sharded_->last_global_size(), "this epoch's order");
  // Data-parallel: the global steps of this epoch (a rank's loader may have one batch fewer: see learn_nothing).
  const int64_t global_steps =
      sharded_ ? data::global_batches(sharded_->last_global_size(), p_.loader_options.batch_size, comm_->size()) : 0;
  EpochTally tally;
  tally.deferred = kd_style && cfg_.device == Device::CUDA;
  int64_t step = 0;
  data::Batch b;
  if (epoch == start_epoch_ && skip_steps_ > 0) {
    // Mid-epoch resume: the loader's batches are a pure function of (seed, epoch, number); skip the done ones.
    while (step < skip_steps_ && train_loader_->next(b)) ++step;
    const bool short_rank = sharded_ && step < skip_steps_ && skip_steps_ <= global_steps;
    ISLKD_CHECK(step == skip_steps_ || short_rank, cfg_.resume, ": epoch ", epoch + 1, " has only ", step,
                " steps, checkpoint says ", skip_steps_, " were done");
    step = skip_steps_;
    tally = part_;
    tally.deferred = cfg_.device == Device::CUDA;
  }
  const int64_t first_step = step;
  double mid_eval_seconds = 0.0;
  while (train_loader_->next(b)) {
    if (cfg_.device == Device::CUDA) device::wait_prefetch();
    const double lr = lr_at(epoch, step);
    if (trace_) {
      *trace_ << epoch << ' ' << step;
      for (int64_t i : b.indices) *trace_ << ' ' << i;
      *trace_ << '\n';
    }
    optimizer_->set_lr(static_cast<float>(lr));
    if (sharded_) {
      // This rank's share of the global batch's mean loss: 1 for equal slices, else its instances' share.
      const data::BatchShard sh = data::batch_shard(sharded_->last_global_size(), p_.loader_options.batch_size,
                                                    comm_->size(), comm_->rank(), step);
      step_->set_grad_weight(sh.global_count == global_batch_
                                 ? 1.0f
                                 : static_cast<float>(static_cast<double>(sh.count) * comm_->size() /
                                                      static_cast<double>(sh.global_count)));
    }
    const StepOutput out = (*step_)(b.images, b.labels, b.indices, epoch, step);

    tally.add(out.loss, out.logits, b.labels, epoch, step);
    ++step;
    ++global_step_;
    const double t = epoch_clock.seconds() - mid_eval_seconds;
    if (!kd_style) {
      const double per_step = (train_seconds_ + t) / static_cast<double>(steps_timed_ + step);
      const double remaining =
          per_step * (static_cast<double>(steps_per_epoch_ - step) +
                      static_cast<double>(steps_per_epoch_) * static_cast<double>(cfg_.epochs - epoch - 1)) +
          eval_seconds_last_ * static_cast<double>(cfg_.epochs - epoch);
      progress_.update("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.epochs) + " [" +
                       std::to_string(step) + "/" + std::to_string(steps_per_epoch_) + "] loss " +
                       fixed(tally.mean_loss(), 4) + " acc " + fixed(tally.accuracy(), 2) + "% lr " + fixed(lr, 5) +
                       " " + fixed(static_cast<double>(tally.seen) / t, 0) + " img/s ETA " + format_duration(remaining));
      continue;
    }
    if (step % cfg_.log_every == 0 || step == steps_per_epoch_) tally.sync();  // CUDA: one host sync per --log-every

    if (cfg_.interrupt_after_steps > 0 && global_step_ >= cfg_.interrupt_after_steps) interrupt_requested_ = true;
    // Under mpirun a signal reaches the ranks at different steps: only the deterministic test interrupt counts there
    // (the apps leave SIGINT's default action to data-parallel ranks).
    if ((interrupted.load() && !distributed()) || interrupt_requested_) {
      progress_.clear();
      tally.sync();
      save_state(epoch, step, tally, 0.0);
      std::printf("train_kd[%s]: interrupted in epoch %lld after step %lld; checkpoint %s (continue with "
                  "--resume %s)\n",
                  cfg_.label.c_str(), static_cast<long long>(epoch + 1), static_cast<long long>(step),
                  cfg_.out.c_str(), cfg_.out.c_str());
      std::fflush(stdout);
      return false;
    }
    if (cfg_.eval_every > 0 && global_step_ % cfg_.eval_every == 0 && step < steps_per_epoch_ && comm_->is_root()) {
      // An evaluation inside the epoch (accuracy against iterations); its time is not training time.
      Stopwatch eval_clock;
      EvalResult mid = evaluate(*student_, *eval_loader_, cfg_.device);
      mid_eval_seconds += eval_clock.seconds();
      metrics_->append({{"epoch", epoch + 1},
                        {"step", global_step_},
                        {"epoch_step", step},
                        {"lr", lr},
                        {eval_name_ + "_loss", mid.loss},
                        {eval_name_ + "_accuracy", mid.accuracy},
                        {eval_name_ + "_top5_accuracy", mid.top5}});
    }
    const double tt = epoch_clock.seconds() - mid_eval_seconds;
    const int64_t timed = steps_timed_ + (step - first_step);
    const double per_step = timed > 0 ? (train_seconds_ + tt) / static_cast<double>(timed) : 0.0;
    const double remaining =
        per_step * (static_cast<double>(steps_per_epoch_ - step) +
                    static_cast<double>(steps_per_epoch_) * static_cast<double>(cfg_.epochs - epoch - 1)) +
        eval_seconds_last_ * static_cast<double>(cfg_.epochs - epoch);
    progress_.update(cfg_.label + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.epochs) + " [" +
                     std::to_string(step) + "/" + std::to_string(steps_per_epoch_) + "] loss " +
                     fixed(tally.mean_loss(), 4) + " acc " + fixed(tally.accuracy(), 2) + "% " +
                     fixed(static_cast<double>(tally.rows_added() - part_.seen * (epoch == start_epoch_)) / tt, 0) +
                     " img/s ETA " + format_duration(remaining));
  }
  // A rank whose slice of the epoch's short last batch is empty still takes part in that step's reduction.
  while (sharded_ && step < global_steps) {
    optimizer_->set_lr(static_cast<float>(lr_at(epoch, step)));
    step_->learn_nothing();
    ++step;
    ++global_step_;
    if (cfg_.interrupt_after_steps > 0 && global_step_ >= cfg_.interrupt_after_steps) {
      tally.sync();
      save_state(epoch, step, tally, 0.0);
      return false;
    }
  }
  tally.sync();
  const double epoch_train_seconds = epoch_clock.seconds() - mid_eval_seconds;
  train_seconds_ += epoch_train_seconds;
  steps_timed_ += step - first_step;
  end_epoch(epoch, tally, epoch_train_seconds, step - first_step);
  return true;
}

// The end of an epoch: evaluate, checkpoint, one line on stdout and one in the metrics.
void Trainer::end_epoch(int64_t epoch, const EpochTally& rank_tally, double epoch_train_seconds,
                        int64_t steps_done) {
  const EpochTally tally = reduced_tally(rank_tally);
  broadcast_buffers();
  Stopwatch eval_clock;
  EvalResult test;
  if (comm_->is_root()) test = evaluate(*student_, *eval_loader_, cfg_.device);
  eval_seconds_last_ = eval_clock.seconds();
  result_.test_accuracy = test.accuracy;
  result_.test_top5 = test.top5;
  last_eval_accuracy_ = test.accuracy;
  if (best_epoch_ == 0 || test.accuracy > best_accuracy_) best_epoch_ = epoch + 1, best_accuracy_ = test.accuracy;
  result_.best_epoch = best_epoch_;
  result_.best_accuracy = best_accuracy_;
  save_state(epoch + 1, 0, EpochTally{}, test.accuracy);
  const double train_loss = tally.mean_loss(), train_acc = tally.accuracy();
  const double lr_last = lr_at(epoch, steps_per_epoch_ - 1);
  const double remaining = (steps_timed_ > 0 ? train_seconds_ / static_cast<double>(steps_timed_) : 0.0) *
                               static_cast<double>(steps_per_epoch_) * static_cast<double>(cfg_.epochs - epoch - 1) +
                           eval_seconds_last_ * static_cast<double>(cfg_.epochs - epoch - 1);
  progress_.clear();
  if (cfg_.style == ReportStyle::Train) {
    const double ips = static_cast<double>(tally.seen) / epoch_train_seconds;
    std::printf("epoch %lld/%lld  loss %.4f  train acc %.2f%%  test loss %.4f  test acc %.2f%%  lr %.5f  "
                "%.0f img/s  %s (+%s eval)  ETA %s\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(cfg_.epochs), train_loss, train_acc,
                test.loss, test.accuracy, lr_last, ips, format_duration(epoch_train_seconds).c_str(),
                format_duration(eval_seconds_last_).c_str(), format_duration(remaining).c_str());
    std::fflush(stdout);
    nlohmann::json m = {{"epoch", epoch + 1},
                        {"step", global_step_},
                        {"lr_last", lr_last},
                        {"train_loss", train_loss},
                        {"train_accuracy", train_acc},
                        {"test_loss", test.loss},
                        {"test_accuracy", test.accuracy},
                        {"test_top5_accuracy", test.top5},
                        {"best_epoch", best_epoch_},
                        {"best_test_accuracy", best_accuracy_},
                        {"train_seconds", epoch_train_seconds},
                        {"eval_seconds", eval_seconds_last_},
                        {"images_per_second", ips}};
    if (reducer_) {
      m["world_size"] = comm_->size();
      m["comm_seconds"] = reducer_->seconds() - comm_seconds_epoch_start_;
    }
    metrics_->append(m);
    return;
  }
  // The instances trained on (every rank's) per second of the training steps timed in this process: the epoch's
  // count, or at most a full global batch per step timed (an epoch resumed midway counts its earlier part too).
  const double ips = std::min(static_cast<double>(tally.seen),
                              static_cast<double>(steps_done) * static_cast<double>(global_batch_)) /
                     epoch_train_seconds;
  std::printf("%s epoch %lld/%lld  loss %.4f  train acc %.2f%%  %s acc %.2f%%  lr %.5f  %.0f img/s  %s  ETA %s\n",
              cfg_.label.c_str(), static_cast<long long>(epoch + 1), static_cast<long long>(cfg_.epochs), train_loss,
              train_acc, eval_name_.c_str(), test.accuracy, lr_last, ips, format_duration(epoch_train_seconds).c_str(),
              format_duration(remaining).c_str());
  std::fflush(stdout);
  nlohmann::json m = {{"epoch", epoch + 1},
                      {"step", global_step_},
                      {"lr_last", lr_last},
                      {"train_loss", train_loss},
                      {"train_accuracy", train_acc},
                      {eval_name_ + "_loss", test.loss},
                      {eval_name_ + "_accuracy", test.accuracy},
                      {eval_name_ + "_top5_accuracy", test.top5},
                      {"best_epoch", best_epoch_},
                      {"best_" + eval_name_ + "_accuracy", best_accuracy_},
                      {"train_seconds", epoch_train_seconds},
                      {"eval_seconds", eval_seconds_last_},
                      {"images_per_second", ips}};
  if (!isl_log_.is_null()) m["isl"] = isl_log_;
  if (reducer_) {
    m["world_size"] = comm_->size();
    m["comm_seconds"] = reducer_->seconds() - comm_seconds_epoch_start_;  // packing + all-reduce, this rank (0)
  }
  metrics_->append(m);
}

// Accuracy (percent) of each class over the loader's epoch 0, for the study's per-class comparison.
static std::vector<double> per_class_accuracy(Module& model, data::Loader& loader, Device device, int64_t classes) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<int64_t> right(static_cast<size_t>(classes), 0), total(static_cast<size_t>(classes), 0);
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (device == Device::CUDA) device::wait_prefetch();
    std::vector<float> v = model(b.images).to_vector();
    std::vector<int32_t> y = b.labels.to_labels();
    for (size_t r = 0; r < y.size(); ++r) {
      const float* row = v.data() + static_cast<int64_t>(r) * classes;
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (row[c] > row[best]) best = c;
      ++total[static_cast<size_t>(y[r])];
      right[static_cast<size_t>(y[r])] += best == y[r];
    }
  }
  model.train(was_training);
  std::vector<double> acc(static_cast<size_t>(classes), 0.0);
  for (size_t c = 0; c < acc.size(); ++c)
    acc[c] = total[c] > 0 ? 100.0 * static_cast<double>(right[c]) / static_cast<double>(total[c]) : 0.0;
  return acc;
}

// The end of the run. train_kd: the test split (read here for the first time when there is a validation split) and
// its per-class accuracies, one line of the metrics.
void Trainer::finish() {
  if (!comm_->is_root()) return;  // evaluation and reports are rank 0's
  if (cfg_.style == ReportStyle::Train) {
    std::printf("train: done in %s; test acc %.2f%% (top-5 %.2f%%), best %.2f%% at epoch %lld; checkpoint %s\n",
                format_duration(run_clock_.seconds()).c_str(), result_.test_accuracy, result_.test_top5,
                best_accuracy_, static_cast<long long>(best_epoch_), cfg_.out.c_str());
    return;
  }
  nlohmann::json final_line = {{"final", true}, {"epoch", cfg_.epochs}, {"step", global_step_}};
  if (val_loader_) {
    EvalResult test = evaluate(*student_, *test_loader_, cfg_.device);
    result_.test_accuracy = test.accuracy;
    result_.test_top5 = test.top5;
    final_line["val_accuracy"] = last_eval_accuracy_;
    final_line["test_loss"] = test.loss;
    std::printf("%s: test acc %.2f%% (the test split, once, at the end; validation %.2f%%)\n", cfg_.label.c_str(),
                test.accuracy, last_eval_accuracy_);
  }
  final_line["test_accuracy"] = result_.test_accuracy;
  final_line["test_top5_accuracy"] = result_.test_top5;
  final_line["best_epoch"] = best_epoch_;
  final_line["best_" + eval_name_ + "_accuracy"] = best_accuracy_;
  final_line["test_per_class"] = per_class_accuracy(*student_, *test_loader_, cfg_.device, p_.num_classes);
  metrics_->append(final_line);
}

// A checkpoint: the student, the optimizer's momentum, the objective's parameters and buffers, the curriculum's order, and the
// counts that let --resume continue bit for bit.
void Trainer::save_state(int64_t epochs_done, int64_t epoch_step, const EpochTally& rank_tally, double test_acc) {
  const EpochTally t = reduced_tally(rank_tally);  // a collective: every rank comes here, writing or not
  if (cfg_.out.empty()) return;
  std::map<std::string, std::string> meta = {{"format", cfg_.format},
                                             {"config", cfg_.run_config.dump()},
                                             {"epoch", std::to_string(epochs_done)},
                                             {"step", std::to_string(global_step_)},
                                             {"optimizer.steps", std::to_string(optimizer_->step_count())},
                                             {"test_accuracy", fixed(test_acc, 4)}};
  if (best_epoch_ > 0)
    meta["best"] = nlohmann::json{{"epoch", best_epoch_}, {"accuracy", best_accuracy_}}.dump();
  if (!cfg_.data_description.is_null()) meta["data"] = cfg_.data_description.dump();
  if (cfg_.style == ReportStyle::TrainKd) {
    meta["epoch_step"] = std::to_string(epoch_step);
    meta["epoch_partial"] =
        nlohmann::json{{"loss_sum", t.loss_sum}, {"correct", t.correct}, {"seen", t.seen}}.dump();
  }
  std::vector<safetensors::Entry> extra;
  for (auto& [name, x] : optimizer_->state_tensors())
    extra.push_back(safetensors::Entry::from_f32(name, x.shape(), x.to_vector()));
  for (auto& [name, x] : p_.objective->parameters())
    extra.push_back(safetensors::Entry::from_f32(kObjectivePrefix + name, x.shape(), x.to_vector()));
  for (auto& [name, x] : p_.objective->buffers())  // not optimized, but the run continues from them (crd's banks)
    extra.push_back(safetensors::Entry::from_f32(kObjectivePrefix + name, x.shape(), x.to_vector()));
  if (curriculum_) {
    nlohmann::json cs = curriculum_->state_json();
    cs["last_sort_seconds"] = 0.0;  // a timing: kept out so equal runs write equal files
    meta["curriculum"] = cs.dump();
    std::vector<int64_t> order(curriculum_->order().begin(), curriculum_->order().end());
    const int64_t n = static_cast<int64_t>(order.size());
    extra.push_back(safetensors::Entry::from_i64("curriculum.order", {n}, std::move(order)));
  }
  checkpoint::save(cfg_.out, *student_, extra, meta);
}

EpochTally Trainer::reduced_tally(const EpochTally& t) const {
  EpochTally r = t;
  if (!distributed()) return r;
  double v[3] = {t.loss_sum, static_cast<double>(t.correct), static_cast<double>(t.seen)};
  comm_->allreduce_sum(v, 3);
  r.loss_sum = v[0];
  r.correct = static_cast<int64_t>(v[1]);
  r.seen = static_cast<int64_t>(v[2]);
  return r;
}

// Per-rank batch norm (as DDP): each rank's running statistics follow its own batches, so at each epoch's end rank
// 0's are copied to every rank, before the evaluation, the checkpoint and the next phase's scoring.
void Trainer::broadcast_buffers() {
  // --sync-bn: every rank updated its running statistics with the same merged batch statistics (the same bits).
  if (!distributed() || cfg_.sync_batch_norm) return;
  for (auto& [name, x] : student_->named_buffers()) {
    Tensor host = x.to_plain().to(Device::CPU).clone();
    comm_->broadcast(host.data(), host.numel() * static_cast<int64_t>(sizeof(float)), 0);
    if (!comm_->is_root()) {
      Tensor dst = x;
      dst.copy_from(host.to(x.device()));
    }
  }
  for (auto& [name, c] : student_->named_counters()) comm_->broadcast(c, sizeof(int64_t), 0);
}

}  // namespace islkd::train
