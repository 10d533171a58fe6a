// `train_kd`: trains a student with cross-entropy alone (ce), Hinton KD from a frozen teacher (kd), or KD with the
// ISL curriculum (isl), from flags or a TOML file. `--method ce,kd,isl` runs the three from the same start and
// prints one line per method (`kd 90.61`): the project's main comparison. Checkpoints each epoch; --resume (and
// Ctrl-C, which checkpoints mid-epoch) continue a run bit for bit on the CPU with the same seed and --threads.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/app_common.h"
#include "apps/toml_config.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/study_split.h"
#include "data/transforms.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/distill/curriculum.h"
#include "engine/distill/kd.h"
#include "engine/lr_schedule.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "models/registry.h"

using namespace islkd;

namespace {

constexpr const char* kFormat = "islkd.train_kd.v1";
constexpr int kInterruptedExit = 130;

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct Args {
  std::string method = "kd";
  std::string model = "resnet8";
  std::string teacher = "teachers/resnet20_fashion-mnist.safetensors";
  std::string teacher_model = "resnet20";
  std::string dataset = "fashion-mnist";
  std::string data_path;
  int64_t epochs = 3;
  int64_t batch_size = 128;
  app::OptimArgs opt;
  // Off by default: the main job's short runs do not gain from random crops, and without them the frozen teacher's
  // logits are a constant per instance, computed once instead of at every step.
  bool augment = false;
  bool nondeterministic = false;  // CUDA: allow cuDNN algorithms that are not deterministic
  float temperature = 4.0f;
  float alpha = 0.9f;
  // ISL curriculum (engine/distill/curriculum.h explains each). Sized for the 3-epoch main job: 1 epoch of plain
  // KD, 1 phase on the easiest half, 1 epoch on everything.
  int isl_warmup = 1;
  int phase_epochs = 1;
  int phases = 1;
  std::string pacing = "linear";
  double start_fraction = 0.5;
  bool full_at_last_phase = false;
  std::string batch_order = "shuffled";
  std::string curriculum_mode = "subset";
  std::string measure = "loss";
  // The study's variants and controls (curriculum.h gives the reason for each); off by default.
  std::string direction = "easy-first";
  bool stratified = false;
  double hard_share = 0.0;
  double weight_tau = 0.25;
  bool rescore_every_epoch = false;
  bool lr_restart = false;
  bool pace_to_lr_drop = false;
  std::string trace_batches;  // tests: every step's instance indices, one line per step
  // Study conditions (data/study_split.h): symmetric noise on the student's training labels; training instances
  // held out as a validation split (evaluated during the run; the test split is then evaluated once, at the end).
  double label_noise = 0.0;
  int64_t val_split = 0;
  uint64_t seed = 0;
  std::string device = "auto";
  int threads = 0;
  int workers = 0;
  std::string out;
  std::string resume;
  std::string metrics;
  int64_t limit = 0;
  int64_t test_limit = 0;
  int64_t eval_every = 0;  // steps between mid-epoch test evaluations (0 = at the end of each epoch only)
  int64_t log_every = 10;  // CUDA: steps between reads of the loss/accuracy tallies from the device (a host sync)
  int64_t interrupt_after_steps = 0;  // tests: behave as if Ctrl-C came after this many steps of the run
};

// The loader asks it for each epoch's instance list: the curriculum's (isl) or a plain shuffle (ce, kd).
class CurriculumSampler : public data::Sampler {
 public:
  explicit CurriculumSampler(const std::unique_ptr<distill::Curriculum>& c) : c_(c) {}
  std::vector<int64_t> indices(int64_t epoch) override { return c_->epoch_indices(static_cast<int>(epoch)); }

 private:
  const std::unique_ptr<distill::Curriculum>& c_;
};

// What every method of one invocation shares: the data, the frozen teacher and its cached logits.
struct Shared {
  app::Splits data;
  Device device = Device::CPU;
  std::shared_ptr<Module> teacher;  // eval mode, batch norm folded into the convolutions
  double teacher_accuracy = -1.0;
  // n_train x num_classes on un-augmented instances, computed once on first use: the isl scores, and without
  // augmentation the kd targets of every step.
  std::vector<float> teacher_logits;
  double teacher_cache_seconds = 0.0;
  std::shared_ptr<const data::Dataset> validation;  // --val-split: held out of data.train (null without it)
};

// --val-split, then --label-noise on what is left for the student; validation and test keep their clean labels.
void apply_study_conditions(Shared& s, const Args& a) {
  if (a.val_split > 0) {
    data::HeldOut h = data::hold_out_validation(s.data.train, s.data.n_train, a.val_split);
    s.data.train = h.train;
    s.data.n_train = h.train->size();
    s.validation = h.validation;
  }
  if (a.label_noise > 0.0) s.data.train = data::with_label_noise(s.data.train, s.data.n_train, a.label_noise, a.seed);
}

// Accuracy (percent) of each class over the loader's epoch 0, for the study's per-class comparison.
std::vector<double> per_class_accuracy(Module& model, data::Loader& loader, Device device, int64_t classes) {
  NoGradGuard no_grad;
  model.eval();
  std::vector<int64_t> right(static_cast<size_t>(classes), 0), total(static_cast<size_t>(classes), 0);
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (device == Device::CUDA) cuda::wait_prefetch();
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
  model.train();
  std::vector<double> acc(static_cast<size_t>(classes), 0.0);
  for (size_t c = 0; c < acc.size(); ++c)
    acc[c] = total[c] > 0 ? 100.0 * static_cast<double>(right[c]) / static_cast<double>(total[c]) : 0.0;
  return acc;
}

std::string path_for_method(const std::string& path, const std::string& method, bool several) {
  if (!several) return path;
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + "." + method;
  return path.substr(0, dot) + "_" + method + path.substr(dot);
}

// The checkpoint and metrics paths of one method's run ("" for metrics when none is asked for).
std::string out_path(const Args& a, const std::string& method, bool several) {
  return path_for_method(a.out.empty() ? a.model + "_" + a.dataset + ".safetensors" : a.out, method, several);
}
std::string metrics_path(const Args& a, const std::string& method, bool several) {
  return a.metrics.empty() ? "" : path_for_method(a.metrics, method, several);
}

data::LoaderOptions loader_options(const Args& a, Device device) {
  data::LoaderOptions o;
  o.batch_size = a.batch_size;
  o.workers = a.workers;
  o.seed = a.seed;
  o.device = device;
  return o;
}

// The cached teacher logits of a batch's instances, as a rows x num_classes tensor on the device.
Tensor gather_teacher_logits(const Shared& s, const std::vector<int64_t>& indices) {
  const int64_t rows = static_cast<int64_t>(indices.size()), c = s.data.num_classes;
  std::vector<float> t(static_cast<size_t>(rows * c));
  for (int64_t r = 0; r < rows; ++r)
    std::copy(s.teacher_logits.begin() + indices[static_cast<size_t>(r)] * c,
              s.teacher_logits.begin() + (indices[static_cast<size_t>(r)] + 1) * c, t.begin() + r * c);
  if (s.device != Device::CUDA) return Tensor::from_vector(t, {rows, c}, s.device);
  // Through pinned staging on the copy stream: no pageable copy, no host wait in the step.
  Tensor d = Tensor::empty({rows, c}, Device::CUDA);
  cuda::memcpy_h2d_staged(d.data(), t.data(), t.size() * sizeof(float));
  return d;
}

// Teacher logits on every un-augmented training instance, computed once (the difficulty scores reuse them).
void cache_teacher_logits(Shared& s, const Args& a) {
  if (!s.teacher_logits.empty()) return;
  app::Stopwatch clock;
  const int64_t c = s.data.num_classes;
  data::Loader loader = app::sequential_loader(s.data.train, s.data.n_train, loader_options(a, s.device));
  s.teacher_logits.assign(static_cast<size_t>(checked_mul(s.data.n_train, c, "teacher logits (instances x classes)")),
                          0.0f);
  NoGradGuard no_grad;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (s.device == Device::CUDA) cuda::wait_prefetch();
    std::vector<float> v = (*s.teacher)(b.images).to_vector();
    for (size_t r = 0; r < b.indices.size(); ++r)
      std::copy(v.begin() + static_cast<int64_t>(r) * c, v.begin() + static_cast<int64_t>(r + 1) * c,
                s.teacher_logits.begin() + b.indices[r] * c);
  }
  s.teacher_cache_seconds = clock.seconds();
  std::printf("train_kd: teacher logits of %lld un-augmented training instances cached in %.1fs\n",
              static_cast<long long>(s.data.n_train), s.teacher_cache_seconds);
  std::fflush(stdout);
}

// Scores every training instance with the current student (frozen: eval mode, no grad) and the cached teacher.
// `labels_override` (one per training instance) replaces the labels, e.g. by the teacher's predictions.
std::vector<float> score_instances(Module& student, Shared& s, const Args& a, const KDLossParams& kdp,
                                   DifficultyMeasure measure, const std::vector<int32_t>* labels_override = nullptr) {
  data::Loader loader = app::sequential_loader(s.data.train, s.data.n_train, loader_options(a, s.device));
  std::vector<float> scores(static_cast<size_t>(s.data.n_train), 0.0f);
  NoGradGuard no_grad;
  student.eval();
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (s.device == Device::CUDA) cuda::wait_prefetch();
    Tensor logits = student(b.images);
    const int64_t rows = static_cast<int64_t>(b.indices.size());
    Tensor teacher = gather_teacher_logits(s, b.indices);
    Tensor labels = b.labels;
    if (labels_override) {
      std::vector<int32_t> l(b.indices.size());
      for (size_t r = 0; r < l.size(); ++r) l[r] = (*labels_override)[static_cast<size_t>(b.indices[r])];
      labels = Tensor::from_labels(l, s.device);
    }
    std::vector<float> sc = ops::difficulty_scores(logits, teacher, labels, measure, kdp).to_vector();
    for (int64_t r = 0; r < rows; ++r) scores[static_cast<size_t>(b.indices[static_cast<size_t>(r)])] = sc[static_cast<size_t>(r)];
  }
  student.train();
  return scores;
}

// The training labels, one per instance of the (possibly limited) training split.
std::vector<int32_t> train_labels(const Shared& s) {
  const auto& l = s.data.train->labels();
  return std::vector<int32_t>(l.begin(), l.begin() + s.data.n_train);
}

// Every training instance's difficulty for the boundary at `epoch`, by the curriculum's measure.
std::vector<float> curriculum_scores(const distill::Curriculum& c, int epoch, Module& student, Shared& s,
                                     const Args& a, const KDLossParams& kdp) {
  const distill::Measure m = c.options().measure;
  if (m == distill::Measure::Random) return c.random_scores(epoch);
  if (m == distill::Measure::Disagreement) {
    const std::vector<int32_t> pred = distill::teacher_predictions(s.teacher_logits, s.data.num_classes);
    return score_instances(student, s, a, kdp, DifficultyMeasure::CE, &pred);
  }
  if (!distill::needs_student(m))
    return distill::teacher_difficulty(s.teacher_logits, train_labels(s), s.data.num_classes, m);
  return score_instances(student, s, a, kdp, distill::student_measure(m));
}

struct MethodResult {
  std::string method;
  double test_accuracy = 0.0;
  double seconds = 0.0;
  bool interrupted = false;
};

MethodResult run_method(const std::string& method, const Args& a, Shared& s, bool several) {
  const bool use_teacher = method != "ce", isl = method == "isl";
  const std::string out = out_path(a, method, several);
  const std::string metrics_file = metrics_path(a, method, several);

  models::ModelConfig mcfg;
  mcfg.num_classes = s.data.num_classes;
  mcfg.in_channels = s.data.in_channels;
  mcfg.seed = a.seed;
  std::shared_ptr<Module> student = models::create_model(a.model, mcfg);

  std::unique_ptr<LRSchedule> schedule = a.opt.make_schedule(a.epochs);
  const SGDConfig ocfg = a.opt.sgd();

  KDLossParams kdp;
  kdp.temperature = a.temperature;
  kdp.alpha = a.alpha;
  kdp = distill::kd_params_from_json(distill::kd_params_to_json(kdp));  // validates T and alpha

  distill::CurriculumOptions copt;
  copt.num_instances = s.data.n_train;
  copt.seed = a.seed;
  copt.mode = distill::parse_curriculum_mode(a.curriculum_mode);
  copt.warmup_epochs = a.isl_warmup;
  copt.phase_epochs = a.phase_epochs;
  copt.num_phases = a.phases;
  copt.pacing = distill::parse_pacing(a.pacing);
  copt.start_fraction = a.start_fraction;
  copt.full_at_last_phase = a.full_at_last_phase;
  copt.batch_order = distill::parse_batch_order(a.batch_order);
  copt.measure = distill::parse_measure(a.measure);
  copt.direction = distill::parse_direction(a.direction);
  copt.stratified = a.stratified;
  copt.hard_share = a.hard_share;
  copt.weight_tau = a.weight_tau;
  copt.rescore_every_epoch = a.rescore_every_epoch;
  copt.lr_restart = a.lr_restart;
  const int64_t steps_per_epoch = ceil_div(s.data.n_train, a.batch_size);
  if (isl && a.pace_to_lr_drop) {
    // The phases share the whole epochs between the warm-up and the first LR drop, so all data is back in time.
    const int drop = distill::epochs_before_lr_drop(*schedule, a.epochs, steps_per_epoch);
    ISLKD_CHECK(drop - a.isl_warmup >= a.phases, "--pace-to-lr-drop: the rate first drops in epoch ", drop + 1,
                ", which leaves ", drop - a.isl_warmup, " whole epochs after --isl-warmup ", a.isl_warmup, " for ",
                a.phases, " phases; lower --isl-warmup or --phases");
    copt.phase_epochs = (drop - a.isl_warmup) / a.phases;
  }
  std::unique_ptr<distill::Curriculum> curriculum;
  if (isl) curriculum = std::make_unique<distill::Curriculum>(copt);

  nlohmann::json run_config = {{"method", method},
                               {"model", a.model},
                               {"dataset", a.dataset},
                               {"num_classes", s.data.num_classes},
                               {"in_channels", s.data.in_channels},
                               {"train_instances", s.data.n_train},
                               {"batch_size", a.batch_size},
                               {"seed", a.seed},
                               {"augment", a.augment},
                               {"label_noise", a.label_noise},
                               {"val_split", a.val_split},
                               {"optimizer", ocfg.to_json()},
                               {"schedule", schedule->config()}};
  if (use_teacher) {
    run_config["teacher_model"] = a.teacher_model;
    run_config["kd"] = distill::kd_params_to_json(kdp);
  }
  if (isl) run_config["curriculum"] = copt.to_json();

  // ---- resume ----
  int64_t start_epoch = 0, global_step = 0, skip_steps = 0;
  app::EpochTally part;  // of the epoch a mid-epoch checkpoint stopped in
  std::map<std::string, Tensor> opt_state;
  int64_t opt_steps = 0;
  if (!a.resume.empty()) {
    const char* app = "train_kd";
    checkpoint::Contents c = checkpoint::load(a.resume, *student);
    ISLKD_CHECK(app::meta_get(c.metadata, "format", a.resume, app) == kFormat, a.resume, ": checkpoint format '",
                c.metadata.at("format"), "', expected ", kFormat);
    nlohmann::json saved = nlohmann::json::parse(app::meta_get(c.metadata, "config", a.resume, app), nullptr, false);
    ISLKD_CHECK(!saved.is_discarded(), a.resume, ": metadata 'config' is not JSON");
    for (const char* key : {"method", "model", "dataset", "num_classes", "in_channels", "train_instances",
                            "batch_size", "seed", "augment", "curriculum", "label_noise", "val_split"}) {
      nlohmann::json want = run_config.value(key, nlohmann::json()), got = saved.value(key, nlohmann::json());
      ISLKD_CHECK(want == got, "--resume ", a.resume, ": it was trained with ", key, " = ", got.dump(),
                  ", this run has ", want.dump());
    }
    start_epoch = app::parse_count(app::meta_get(c.metadata, "epoch", a.resume, app), a.resume + ": 'epoch'");
    global_step = app::parse_count(app::meta_get(c.metadata, "step", a.resume, app), a.resume + ": 'step'");
    opt_steps = app::parse_count(app::meta_get(c.metadata, "optimizer.steps", a.resume, app), a.resume + ": steps");
    skip_steps = app::parse_count(app::meta_get(c.metadata, "epoch_step", a.resume, app), a.resume + ": epoch_step");
    {  // the counts must agree with each other (same data and batch size: checked against the config above)
      const int64_t per_epoch = ceil_div(s.data.n_train, a.batch_size);
      ISLKD_CHECK(skip_steps <= per_epoch && global_step == start_epoch * per_epoch + skip_steps &&
                      opt_steps == global_step,
                  a.resume, ": inconsistent counts (epoch ", start_epoch, ", epoch_step ", skip_steps, ", step ",
                  global_step, ", optimizer.steps ", opt_steps, " with ", per_epoch,
                  " steps per epoch): a tampered or corrupt checkpoint");
    }
    nlohmann::json pj = nlohmann::json::parse(app::meta_get(c.metadata, "epoch_partial", a.resume, app), nullptr,
                                              false);
    ISLKD_CHECK(pj.is_object(), a.resume, ": metadata 'epoch_partial' is not a JSON object");
    part.loss_sum = pj.value("loss_sum", 0.0);
    part.correct = pj.value("correct", int64_t(0));
    part.seen = pj.value("seen", int64_t(0));
    ISLKD_CHECK(std::isfinite(part.loss_sum) && part.seen >= 0 && part.correct >= 0 && part.correct <= part.seen,
                a.resume, ": metadata 'epoch_partial' ", pj.dump(), " is not a possible tally");
    ISLKD_CHECK(start_epoch < a.epochs, "--resume ", a.resume, " has already trained ", start_epoch,
                " epochs; pass --epochs larger than that to continue");
    std::vector<uint32_t> order;
    for (const auto& e : c.extra) {
      if (e.name == "curriculum.order") {
        ISLKD_CHECK(e.dtype == safetensors::DType::I64, a.resume, ": 'curriculum.order' is not int64");
        for (int64_t v : e.i64) {
          ISLKD_CHECK(v >= 0 && v < s.data.n_train, a.resume, ": 'curriculum.order' holds ", v, ", outside [0, ",
                      s.data.n_train, ")");
          order.push_back(static_cast<uint32_t>(v));
        }
        continue;
      }
      ISLKD_CHECK(e.dtype == safetensors::DType::F32, a.resume, ": '", e.name, "' is not float32");
      opt_state[e.name] = Tensor::from_vector(e.f32, e.shape.empty() ? Shape{1} : Shape(e.shape));
    }
    if (isl) {
      nlohmann::json cs = nlohmann::json::parse(app::meta_get(c.metadata, "curriculum", a.resume, app), nullptr,
                                                false);
      ISLKD_CHECK(!cs.is_discarded(), a.resume, ": metadata 'curriculum' is not JSON");
      curriculum = std::make_unique<distill::Curriculum>(distill::Curriculum::from_state(cs, order));
    }
  }
  student->to(s.device);
  SGD optimizer(student->named_parameters(), ocfg);
  if (!a.resume.empty()) optimizer.load_state(opt_state, opt_steps);

  const data::LoaderOptions lopt = loader_options(a, s.device);
  std::shared_ptr<data::Sampler> sampler;
  auto kd_sampler = std::make_shared<data::ShuffledSampler>(s.data.n_train, a.seed);
  if (isl) {
    // Outside its phases ISL draws exactly KD's batches (same sampler, seed and epoch): a fair comparison.
    curriculum->set_plain_order([kd_sampler](int epoch) { return kd_sampler->indices(epoch); });
    if (copt.stratified) curriculum->set_labels(train_labels(s));
    sampler = std::make_shared<CurriculumSampler>(curriculum);
  } else {
    sampler = kd_sampler;
  }
  // The rate of (epoch, step): the run's schedule, or with lr_restart the schedule scaled to the curriculum segment
  // holding the epoch, restarted at its first epoch.
  std::map<int, std::unique_ptr<LRSchedule>> segment_schedules;
  auto lr_at = [&](int64_t epoch, int64_t step) {
    if (!isl || !copt.lr_restart) return schedule->lr_at_step(epoch, step, steps_per_epoch);
    const int e = static_cast<int>(epoch), first = curriculum->segment_start(e);
    auto& seg = segment_schedules[first];
    if (!seg) seg = a.opt.make_schedule(curriculum->segment_end(e, static_cast<int>(a.epochs)) - first);
    return seg->lr_at_step(epoch - first, step, steps_per_epoch);
  };
  std::unique_ptr<std::ofstream> trace;
  if (!a.trace_batches.empty()) trace = std::make_unique<std::ofstream>(path_for_method(a.trace_batches, method, several));
  const data::Dataset& train_ds = *s.data.train;
  data::Loader train_loader(
      s.data.train,
      data::Transform(a.augment ? data::train_transform(train_ds) : data::eval_transform(train_ds),
                      train_ds.channels(), train_ds.height(), train_ds.width()),
      sampler, lopt);
  data::Loader test_loader = app::sequential_loader(s.data.test, s.data.n_test, lopt);
  // What the run evaluates on as it goes: the validation split when there is one (the test split is then read once,
  // at the end), else the test split.
  std::unique_ptr<data::Loader> val_loader;
  if (s.validation)
    val_loader = std::make_unique<data::Loader>(s.validation,
                                                data::Transform(data::eval_transform(*s.validation),
                                                                s.validation->channels(), s.validation->height(),
                                                                s.validation->width()),
                                                std::make_shared<data::SequentialSampler>(s.validation->size()), lopt);
  data::Loader& eval_loader = val_loader ? *val_loader : test_loader;
  const std::string eval_name = val_loader ? "val" : "test";
  // Without augmentation an instance always looks the same, so the teacher's logits are computed once.
  const bool cached_targets = use_teacher && !a.augment;
  if (cached_targets || isl) cache_teacher_logits(s, a);

  std::printf("train_kd[%s]: student %s (%lld parameters)%s, %lld train / %lld test instances, out %s\n",
              method.c_str(), a.model.c_str(), static_cast<long long>(student->num_parameters()),
              use_teacher ? (", teacher " + a.teacher_model + " " + a.teacher).c_str() : "",
              static_cast<long long>(s.data.n_train), static_cast<long long>(s.data.n_test), out.c_str());
  std::printf("train_kd[%s]: config %s\n", method.c_str(), run_config.dump().c_str());
  if (!a.resume.empty())
    std::printf("train_kd[%s]: resuming %s at epoch %lld, step %lld of it\n", method.c_str(), a.resume.c_str(),
                static_cast<long long>(start_epoch + 1), static_cast<long long>(skip_steps));
  std::fflush(stdout);

  app::MetricsLog metrics(metrics_file, run_config, start_epoch);

  auto save = [&](int64_t epochs_done, int64_t epoch_step, const app::EpochTally& t, double test_acc) {
    std::map<std::string, std::string> meta = {
        {"format", kFormat},
        {"config", run_config.dump()},
        {"epoch", std::to_string(epochs_done)},
        {"epoch_step", std::to_string(epoch_step)},
        {"epoch_partial", nlohmann::json{{"loss_sum", t.loss_sum}, {"correct", t.correct}, {"seen", t.seen}}.dump()},
        {"step", std::to_string(global_step)},
        {"optimizer.steps", std::to_string(optimizer.step_count())},
        {"test_accuracy", app::fixed(test_acc, 4)}};
    std::vector<safetensors::Entry> extra;
    for (auto& [name, t] : optimizer.state_tensors())
      extra.push_back(safetensors::Entry::from_f32(name, t.shape(), t.to_vector()));
    if (isl) {
      nlohmann::json cs = curriculum->state_json();
      cs["last_sort_seconds"] = 0.0;  // a timing: kept out so equal runs write equal files
      meta["curriculum"] = cs.dump();
      std::vector<int64_t> order(curriculum->order().begin(), curriculum->order().end());
      const int64_t n = static_cast<int64_t>(order.size());
      extra.push_back(safetensors::Entry::from_i64("curriculum.order", {n}, std::move(order)));
    }
    checkpoint::save(out, *student, extra, meta);
  };

  student->train();
  app::ProgressLine progress;
  app::Stopwatch run_clock;
  double train_seconds = 0.0, eval_seconds_last = 0.0;
  int64_t steps_timed = 0;
  MethodResult result;
  result.method = method;
  double last_eval_accuracy = 0.0;
  for (int64_t epoch = start_epoch; epoch < a.epochs; ++epoch) {
    nlohmann::json isl_log;
    if (isl && curriculum->is_phase_boundary(static_cast<int>(epoch)) &&
        !(epoch == start_epoch && skip_steps > 0)) {  // a mid-epoch resume restored this phase's order
      cache_teacher_logits(s, a);
      app::Stopwatch score_clock;
      std::vector<float> scores = curriculum_scores(*curriculum, static_cast<int>(epoch), *student, s, a, kdp);
      const double score_seconds = score_clock.seconds();
      curriculum->begin_phase(static_cast<int>(epoch), scores);
      const int phase = curriculum->phase_of_epoch(static_cast<int>(epoch));
      isl_log = {{"phase", phase},
                 {"fraction", curriculum->fraction(phase)},
                 {"subset_size", curriculum->subset_size(phase)},
                 {"score_seconds", score_seconds},
                 {"sort_seconds", curriculum->last_sort_seconds()},
                 {"teacher_cache_seconds", s.teacher_cache_seconds}};
      {
        // The class histogram of the phase's subset (the study plots it: an easy half can drop whole classes).
        std::vector<int64_t> hist(static_cast<size_t>(s.data.num_classes), 0);
        const std::vector<int32_t>& y = s.data.train->labels();
        for (int64_t r = 0; r < curriculum->subset_size(phase); ++r)
          ++hist[static_cast<size_t>(y[curriculum->order()[static_cast<size_t>(r)]])];
        isl_log["subset_class_counts"] = hist;
      }
      // The boundary's cost against a training epoch of this run (the mean so far; none yet after a resume).
      const double boundary_seconds = score_seconds + curriculum->last_sort_seconds();
      const double epoch_seconds =
          steps_timed > 0 ? train_seconds / static_cast<double>(steps_timed) * static_cast<double>(steps_per_epoch)
                          : 0.0;
      if (epoch_seconds > 0.0) isl_log["boundary_share_of_epoch"] = boundary_seconds / epoch_seconds;
      progress.clear();
      std::string what;
      if (copt.mode == distill::CurriculumMode::Weighted)
        what = "draws weighted by exp(-rank/(" + app::fixed(curriculum->weight_tau(phase), 3) + " N))";
      else
        what = std::string(copt.direction == distill::Direction::HardFirst ? "hardest " : "easiest ") +
               app::fixed(100.0 * curriculum->fraction(phase), 0) + "% (" +
               std::to_string(curriculum->subset_size(phase)) + " instances)";
      std::printf("train_kd[isl]: phase %d from epoch %lld: %s by %s; scoring %.2fs, sort %.3f ms (%.3f%% of scoring)",
                  phase, static_cast<long long>(epoch + 1), what.c_str(), distill::measure_name(copt.measure),
                  score_seconds, 1e3 * curriculum->last_sort_seconds(),
                  100.0 * curriculum->last_sort_seconds() / std::max(score_seconds, 1e-9));
      if (epoch_seconds > 0.0)
        std::printf("; the boundary costs %.1f%% of a training epoch (%.1fs)", 100.0 * boundary_seconds / epoch_seconds,
                    epoch_seconds);
      std::printf("\n");
      std::fflush(stdout);
    }

    app::Stopwatch epoch_clock;
    train_loader.start_epoch(epoch);
    app::EpochTally tally;
    tally.deferred = s.device == Device::CUDA;
    int64_t step = 0;
    data::Batch b;
    if (epoch == start_epoch && skip_steps > 0) {
      // Mid-epoch resume: the loader's batches are a pure function of (seed, epoch, number); skip the done ones.
      while (step < skip_steps && train_loader.next(b)) ++step;
      ISLKD_CHECK(step == skip_steps, a.resume, ": epoch ", epoch + 1, " has only ", step, " steps, checkpoint says ",
                  skip_steps, " were done");
      tally = part;
      tally.deferred = s.device == Device::CUDA;
    }
    const int64_t first_step = step;
    double mid_eval_seconds = 0.0;
    while (train_loader.next(b)) {
      if (s.device == Device::CUDA) cuda::wait_prefetch();
      const double lr = lr_at(epoch, step);
      if (trace) {
        *trace << epoch << ' ' << step;
        for (int64_t i : b.indices) *trace << ' ' << i;
        *trace << '\n';
      }
      optimizer.set_lr(static_cast<float>(lr));
      optimizer.zero_grad();
      Tensor logits = (*student)(b.images);
      Tensor loss;
      if (use_teacher) {
        Tensor t_logits;
        if (cached_targets) {
          t_logits = gather_teacher_logits(s, b.indices);
        } else {
          NoGradGuard no_grad;
          t_logits = (*s.teacher)(b.images);
        }
        loss = ops::kd_loss(logits, t_logits, b.labels, kdp).loss;
      } else {
        loss = ops::cross_entropy(logits, b.labels);
      }
      loss.backward();
      optimizer.step();

      tally.add(loss, logits, b.labels, epoch, step);
      ++step;
      ++global_step;
      if (step % a.log_every == 0 || step == steps_per_epoch) tally.sync();  // CUDA: one host sync per --log-every steps

      if (a.interrupt_after_steps > 0 && global_step >= a.interrupt_after_steps) g_interrupted.store(true);
      if (g_interrupted.load()) {
        progress.clear();
        tally.sync();
        save(epoch, step, tally, 0.0);
        std::printf("train_kd[%s]: interrupted in epoch %lld after step %lld; checkpoint %s (continue with "
                    "--resume %s)\n",
                    method.c_str(), static_cast<long long>(epoch + 1), static_cast<long long>(step), out.c_str(),
                    out.c_str());
        std::fflush(stdout);
        result.interrupted = true;
        return result;
      }
      if (a.eval_every > 0 && global_step % a.eval_every == 0 && step < steps_per_epoch) {
        // A test evaluation inside the epoch (accuracy against iterations); its time is not training time.
        app::Stopwatch eval_clock;
        app::EvalResult mid = app::evaluate(*student, eval_loader, s.device);
        mid_eval_seconds += eval_clock.seconds();
        metrics.append({{"epoch", epoch + 1},
                        {"step", global_step},
                        {"epoch_step", step},
                        {"lr", lr},
                        {eval_name + "_loss", mid.loss},
                        {eval_name + "_accuracy", mid.accuracy}});
      }
      const double t = epoch_clock.seconds() - mid_eval_seconds;
      const int64_t timed = steps_timed + (step - first_step);
      const double per_step = timed > 0 ? (train_seconds + t) / static_cast<double>(timed) : 0.0;
      const double remaining =
          per_step * (static_cast<double>(steps_per_epoch - step) +
                      static_cast<double>(steps_per_epoch) * static_cast<double>(a.epochs - epoch - 1)) +
          eval_seconds_last * static_cast<double>(a.epochs - epoch);
      progress.update(method + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(a.epochs) + " [" +
                      std::to_string(step) + "/" + std::to_string(steps_per_epoch) + "] loss " +
                      app::fixed(tally.mean_loss(), 4) + " acc " + app::fixed(tally.accuracy(), 2) + "% " +
                      app::fixed(static_cast<double>(tally.rows_added() - part.seen * (epoch == start_epoch)) / t, 0) +
                      " img/s ETA " + app::format_duration(remaining));
    }
    tally.sync();
    const double epoch_train_seconds = epoch_clock.seconds() - mid_eval_seconds;
    train_seconds += epoch_train_seconds;
    steps_timed += step - first_step;

    app::Stopwatch eval_clock;
    app::EvalResult test = app::evaluate(*student, eval_loader, s.device);
    eval_seconds_last = eval_clock.seconds();
    result.test_accuracy = test.accuracy;
    last_eval_accuracy = test.accuracy;

    save(epoch + 1, 0, app::EpochTally{}, test.accuracy);
    const double train_loss = tally.mean_loss(), train_acc = tally.accuracy();
    const double remaining = (steps_timed > 0 ? train_seconds / static_cast<double>(steps_timed) : 0.0) *
                                 static_cast<double>(steps_per_epoch) * static_cast<double>(a.epochs - epoch - 1) +
                             eval_seconds_last * static_cast<double>(a.epochs - epoch - 1);
    progress.clear();
    std::printf("%s epoch %lld/%lld  loss %.4f  train acc %.2f%%  %s acc %.2f%%  lr %.5f  %.0f img/s  %s  ETA %s\n",
                method.c_str(), static_cast<long long>(epoch + 1), static_cast<long long>(a.epochs), train_loss,
                train_acc, eval_name.c_str(), test.accuracy, lr_at(epoch, steps_per_epoch - 1),
                static_cast<double>(step - first_step) * static_cast<double>(a.batch_size) / epoch_train_seconds,
                app::format_duration(epoch_train_seconds).c_str(), app::format_duration(remaining).c_str());
    std::fflush(stdout);
    nlohmann::json m = {{"epoch", epoch + 1},
                        {"step", global_step},
                        {"lr_last", lr_at(epoch, steps_per_epoch - 1)},
                        {"train_loss", train_loss},
                        {"train_accuracy", train_acc},
                        {eval_name + "_loss", test.loss},
                        {eval_name + "_accuracy", test.accuracy},
                        {"train_seconds", epoch_train_seconds},
                        {"eval_seconds", eval_seconds_last}};
    if (!isl_log.is_null()) m["isl"] = isl_log;
    metrics.append(m);
  }
  // The end of the run: the test split (read here for the first time when there is a validation split) and its
  // per-class accuracies, one line of the metrics.
  nlohmann::json final_line = {{"final", true}, {"epoch", a.epochs}, {"step", global_step}};
  if (val_loader) {
    app::EvalResult test = app::evaluate(*student, test_loader, s.device);
    result.test_accuracy = test.accuracy;
    final_line["val_accuracy"] = last_eval_accuracy;
    final_line["test_loss"] = test.loss;
    std::printf("%s: test acc %.2f%% (the test split, once, at the end; validation %.2f%%)\n", method.c_str(),
                test.accuracy, last_eval_accuracy);
  }
  final_line["test_accuracy"] = result.test_accuracy;
  final_line["test_per_class"] = per_class_accuracy(*student, test_loader, s.device, s.data.num_classes);
  metrics.append(final_line);
  result.seconds = run_clock.seconds();
  return result;
}

int run(int argc, char** argv) {
  Args a;
  CLI::App cli{"train_kd: trains a student alone (ce), by KD from a teacher (kd), or by KD with the ISL curriculum "
               "(isl); `--method ce,kd,isl` compares them"};
  cli.config_formatter(std::make_shared<app::TomlConfig>(&cli));
  cli.set_config("--config", "", "TOML file with any of these options (flags given here override it)");
  cli.allow_config_extras(false);
  cli.option_defaults()->always_capture_default();
  cli.add_option("--method", a.method, "ce | kd | isl, or a comma list run one after another (ce,kd,isl)");
  cli.add_option("--model", a.model, "student model");
  cli.add_option("--teacher", a.teacher, "teacher checkpoint (safetensors, from `train` or a PyTorch state_dict)");
  cli.add_option("--teacher-model", a.teacher_model, "teacher architecture");
  cli.add_option("--dataset,--data-format", a.dataset,
                 "fashion-mnist | mnist | idx | cifar10 | cifar100 | svhn | cinic10 | imagefolder");
  cli.add_option("--data-path", a.data_path, "dataset directory (empty: Fashion-MNIST from Debian's package)");
  cli.add_option("--epochs", a.epochs)->check(CLI::PositiveNumber);
  cli.add_option("--batch-size", a.batch_size,
                 "instances per step (larger than the split: the whole split in one step)")
      ->check(CLI::PositiveNumber);
  a.opt.add_flags(cli);
  cli.add_flag("--augment,!--no-augment", a.augment,
               "random crop / flip (off by default; without it the teacher's logits are computed once)");
  cli.add_option("--log-every", a.log_every,
                 "CUDA: steps between reads of the training loss and accuracy from the device (each is a host sync)")
      ->check(CLI::PositiveNumber);
  cli.add_option("--eval-every", a.eval_every,
                 "also evaluate on the test split (the validation split with --val-split) every N steps, into the metrics "
                 "file (0 = once per epoch)")
      ->check(app::at_least(0));
  cli.add_option("-T,--temperature", a.temperature, "KD temperature")->check(app::positive());
  cli.add_option("--alpha", a.alpha, "KD weight: alpha*KD + (1-alpha)*CE")->check(app::fraction());
  cli.add_option("--isl-warmup", a.isl_warmup, "isl: epochs of plain KD before the first phase")
      ->check(app::at_least(0));
  cli.add_option("--phase-epochs", a.phase_epochs, "isl: epochs per curriculum phase");
  cli.add_option("--phases", a.phases, "isl: number of curriculum phases");
  cli.add_option("--pacing", a.pacing, "isl: linear | root | step");
  cli.add_option("--start-fraction", a.start_fraction, "isl: fraction of easiest instances in the first phase")
      ->check(app::number_in(0, false, 1));
  cli.add_flag("--nondeterministic", a.nondeterministic,
               "CUDA: also use cuDNN algorithms that are not deterministic (may be faster; runs are then not "
               "bit-reproducible on the same GPU)");
  cli.add_flag("--full-at-last-phase", a.full_at_last_phase, "isl: the last phase already trains on everything");
  cli.add_option("--batch-order", a.batch_order, "isl: shuffled | sequence (within a phase's subset)");
  cli.add_option("--curriculum-mode", a.curriculum_mode, "isl: subset | ordering | weighted");
  cli.add_option("--measure", a.measure,
                 "isl: difficulty: loss | ce | kd | confidence (the student's) | random (control: a random subset) | "
                 "teacher-ce | teacher-confidence (the teacher's, usable from step 0) | disagreement");
  cli.add_option("--direction", a.direction, "isl: easy-first | hard-first (the anti-curriculum control)");
  cli.add_flag("--stratified", a.stratified, "isl: each class keeps its own easiest fraction");
  cli.add_option("--hard-share", a.hard_share, "isl: share of a phase's subset drawn at random from the harder rest")
      ->check(app::fraction());
  cli.add_option("--weight-tau", a.weight_tau,
                 "isl, --curriculum-mode weighted: P(rank r) ~ exp(-r/(tau*N)), tau annealed towards uniform")
      ->check(app::positive());
  cli.add_flag("--rescore-every-epoch", a.rescore_every_epoch, "isl: re-score and re-sort at every phase epoch");
  cli.add_flag("--lr-restart", a.lr_restart,
               "isl: restart the LR schedule (scaled to the segment) at the warm-up, each phase and the final stage");
  cli.add_flag("--pace-to-lr-drop", a.pace_to_lr_drop,
               "isl: lay the phases out so that all data is back before the first LR drop");
  cli.add_option("--label-noise", a.label_noise,
                 "replace this share of the student's training labels by another class, uniformly (seeded by --seed; "
                 "the teacher stays the clean one)")
      ->check(app::fraction());
  cli.add_option("--val-split", a.val_split,
                 "hold N training instances out of the student's training set as a validation split (a fixed draw); "
                 "evaluate on it during the run and on the test split once, at the end")
      ->check(app::at_least(0));
  cli.add_option("--seed", a.seed);
  cli.add_option("--device", a.device, "auto | cpu | cuda");
  cli.add_option("--threads", a.threads, "CPU threads (0 = OMP_NUM_THREADS or all cores)")
      ->check(app::at_least(0));
  cli.add_option("--workers", a.workers, "loader threads (0 = default)")->check(app::at_least(0));
  cli.add_option("--out", a.out, "checkpoint (default <model>_<dataset>.safetensors; _<method> added for several)");
  cli.add_option("--resume", a.resume, "checkpoint to continue (one method only)");
  cli.add_option("--metrics", a.metrics, "JSON-lines metrics file (_<method> added for several)");
  cli.add_option("--limit", a.limit, "train on the first N instances only (0 = all)")->check(app::at_least(0));
  cli.add_option("--test-limit", a.test_limit, "evaluate on the first N test instances (0 = all)")
      ->check(app::at_least(0));
  cli.add_option("--interrupt-after-steps", a.interrupt_after_steps,
                 "act as if Ctrl-C came after this many training steps (for tests)")
      ->group("");  // hidden from --help
  cli.add_option("--trace-batches", a.trace_batches, "write every step's instance indices to this file (for tests)")
      ->group("");
  app::TomlConfig::check_config_file(argc, argv);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);
    ISLKD_FAIL(e.what());  // one line, like every other error
  }

  std::vector<std::string> methods;
  {
    std::stringstream ss(a.method);
    std::string m;
    while (std::getline(ss, m, ','))
      if (!m.empty()) methods.push_back(m);
  }
  ISLKD_CHECK(!methods.empty(), "--method is empty; expected ce, kd, isl or a comma list of them");
  for (const auto& m : methods)
    ISLKD_CHECK(m == "ce" || m == "kd" || m == "isl", "--method: unknown method '", m, "' (expected ce, kd or isl)");
  ISLKD_CHECK(a.resume.empty() || methods.size() == 1, "--resume continues one run: give a single --method");
  ISLKD_CHECK(models::has_model(a.model), "unknown --model '", a.model, "'; run with --help for the zoo");
  // Bad curriculum names fail here, before the data and the teacher are loaded.
  distill::parse_pacing(a.pacing);
  distill::parse_batch_order(a.batch_order);
  distill::parse_curriculum_mode(a.curriculum_mode);
  distill::parse_measure(a.measure);
  distill::parse_direction(a.direction);
  if (std::find(methods.begin(), methods.end(), "isl") != methods.end() && !a.pace_to_lr_drop) {
    ISLKD_CHECK(a.phases >= 0 && a.phase_epochs >= 1, "isl: --phases must be >= 0 and --phase-epochs >= 1 (got ",
                a.phases, " and ", a.phase_epochs, ")");
    const int64_t schedule_epochs = int64_t(a.isl_warmup) + int64_t(a.phases) * a.phase_epochs;
    ISLKD_CHECK(schedule_epochs <= a.epochs, "isl: --isl-warmup ", a.isl_warmup, " + --phases ", a.phases,
                " x --phase-epochs ", a.phase_epochs, " = ", schedule_epochs, " epochs do not fit in --epochs ",
                a.epochs, " (the curriculum would be cut short); lower them or raise --epochs");
  }

  // Every method's outputs, checked and locked before the teacher is loaded and any method runs.
  std::vector<std::pair<std::string, std::string>> outputs;
  for (const auto& m : methods) {
    const std::string suffix = methods.size() > 1 ? " (" + m + ")" : "";
    outputs.emplace_back("--out" + suffix, out_path(a, m, methods.size() > 1));
    outputs.emplace_back("--metrics" + suffix, metrics_path(a, m, methods.size() > 1));
  }
  const auto output_locks = app::claim_outputs(outputs);

  app::configure_cpu(a.threads);
  cuda::set_deterministic_algorithms(!a.nondeterministic);
  Shared s;
  s.device = select_device(a.device, std::cout);
  s.data = app::open_splits(a.dataset, a.data_path, a.limit, a.test_limit);
  apply_study_conditions(s, a);

  const bool need_teacher = std::any_of(methods.begin(), methods.end(), [](const auto& m) { return m != "ce"; });
  if (need_teacher) {
    ISLKD_CHECK(models::has_model(a.teacher_model), "unknown --teacher-model '", a.teacher_model, "'");
    {
      struct stat st;  // not fopen: opening a FIFO would block; checkpoint::load refuses non-regular files
      ISLKD_CHECK(::stat(a.teacher.c_str(), &st) == 0, "no teacher checkpoint at '", a.teacher,
                  "'; train one with: train --model ", a.teacher_model, " --out ", a.teacher);
    }
    models::ModelConfig tc;
    tc.num_classes = s.data.num_classes;
    tc.in_channels = s.data.in_channels;
    s.teacher = models::create_model(a.teacher_model, tc);
    try {
      checkpoint::load(a.teacher, *s.teacher);
    } catch (const Error& e) {
      const std::string why = e.what();
      // nan/inf weights or a negative running variance: a broken teacher, not a wrong architecture
      if (why.find(": not loaded: ") != std::string::npos) ISLKD_FAIL("teacher ", why);
      ISLKD_FAIL("teacher ", a.teacher, " does not fit a ", a.teacher_model, " for ", s.data.num_classes, " classes x ",
                 s.data.in_channels, " channels of ", a.dataset, " (", e.what(), ")");
    }
    s.teacher->to(s.device);
    s.teacher->eval();
    const int folded = nn::fold_batch_norm(*s.teacher);  // frozen: each BN becomes its conv's scale and bias
    data::Loader tl = app::sequential_loader(s.data.test, s.data.n_test, loader_options(a, s.device));
    s.teacher_accuracy = app::evaluate(*s.teacher, tl, s.device).accuracy;
    s.teacher->eval();  // evaluate() leaves modules in training mode, which unfolds the batch norms
    nn::fold_batch_norm(*s.teacher);
    std::printf("train_kd: teacher %s: %d batch norms folded into their convolutions\n", a.teacher_model.c_str(),
                folded);
    std::printf("train_kd: teacher %s %s: test accuracy %.2f%%\n", a.teacher_model.c_str(), a.teacher.c_str(),
                s.teacher_accuracy);
  }
  std::printf("train_kd: %s, %lld train / %lld test instances, %lld classes, device %s, %d threads\n",
              s.data.train->source().c_str(), static_cast<long long>(s.data.n_train), static_cast<long long>(s.data.n_test),
              static_cast<long long>(s.data.num_classes), device_name(s.device), cpu::num_threads());
  std::fflush(stdout);

  std::signal(SIGINT, on_sigint);
  std::vector<MethodResult> results;
  for (const auto& m : methods) {
    results.push_back(run_method(m, a, s, methods.size() > 1));
    if (results.back().interrupted) return kInterruptedExit;
  }
  if (methods.size() > 1) std::printf("train_kd: test accuracy after %lld epochs\n", static_cast<long long>(a.epochs));
  for (const auto& r : results) std::printf("%s %.2f\n", r.method.c_str(), r.test_accuracy);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return app::guarded_main("train_kd", [&] { return run(argc, argv); });
}
