// `train_kd`: flags (or a TOML file) -> a TrainerConfig per run -> engine/train's Trainer. A run is an objective
// (`--objective ce|kd|...`) with or without the ISL curriculum (`--curriculum none|isl`); `--method ce|kd|isl` is the
// shorthand (isl = kd + isl), and `--method ce,kd,isl` runs the three from the same start and prints one line per
// method (`kd 90.61`): the project's main comparison. Checkpoints each epoch; --resume (and Ctrl-C, which
// checkpoints mid-epoch) continue a run bit for bit on the CPU with the same seed and --threads.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/app_common.h"
#include "apps/toml_config.h"
#include "data/dataset.h"
#include "data/study_split.h"
#include "data/transforms.h"
#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/distill/curriculum.h"
#include "engine/distill/kd.h"
#include "engine/distill/objective.h"
#include "engine/lr_schedule.h"
#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/train/teacher_targets.h"
#include "engine/train/trainer.h"
#include "models/registry.h"

using namespace islkd;

namespace {

constexpr const char* kFormat = "islkd.train_kd.v1";
constexpr int kInterruptedExit = 130;

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct Args {
  std::string method = "kd";
  std::string objective;   // with --curriculum: instead of --method (default kd)
  std::string curriculum;  // none | isl
  std::string objective_options;  // JSON table over the objective's defaults
  std::string model = "resnet8";
  std::string teacher = "teachers/resnet20_fashion-mnist.safetensors";
  std::string teacher_model = "resnet20";
  std::string dataset = "fashion-mnist";
  std::string data_path;
  int image_size = 0;  // ImageFolder of any size, read as S x S (0 = as stored)
  std::string normalization;  // a name of data::standard_normalization; empty = the dataset format's own
  int64_t epochs = 3;
  int64_t batch_size = 128;
  app::OptimArgs opt;
  // Off by default: the main job's short runs do not gain from random crops, and without them the frozen teacher's
  // logits are a constant per instance, computed once instead of at every step.
  bool augment = false;
  bool nondeterministic = false;  // CUDA: allow cuDNN algorithms that are not deterministic
  float temperature = 4.0f;
  float alpha = 0.9f;
  // ISL curriculum (engine/distill/curriculum.h explains each). The defaults are the ISL study's choice
  // (bench/isl_study/report.md: the best easy-first variant on validation): difficulty = the teacher's CE, so the
  // phase starts at step 0 on the easiest half, and the phase ends before the LR first drops (--pace-to-lr-drop;
  // an explicit --phase-epochs turns that off). In the 3-epoch main job: 1 phase epoch, then 2 on everything.
  int isl_warmup = 0;
  int phase_epochs = 1;
  int phases = 1;
  std::string pacing = "linear";
  double start_fraction = 0.5;
  bool full_at_last_phase = false;
  std::string batch_order = "shuffled";
  std::string curriculum_mode = "subset";
  std::string measure = "teacher-ce";
  // The study's variants and controls (curriculum.h gives the reason for each); off by default.
  std::string direction = "easy-first";
  bool stratified = false;
  double hard_share = 0.0;
  double weight_tau = 0.25;
  bool rescore_every_epoch = false;
  bool lr_restart = false;
  bool pace_to_lr_drop = true;
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
  // Data-parallel (mpirun -np N train_kd ...; docs/distributed.md): --batch-size is the global batch.
  app::DataParallelArgs dp;  // --grad-allreduce, --bucket-mb, --reshard, --sync-bn
  bool rank_outputs = false;  // tests: ranks other than 0 also write their checkpoint and trace, as <path>.rank<r>
  int64_t per_rank_batch = 0;  // --batch-size / world size, set once the world is known
};

// What every run of one invocation shares: the data and the frozen teacher with its cached logits.
struct Shared {
  app::Splits data;
  Device device = Device::CPU;
  std::shared_ptr<train::TeacherTargets> teacher;  // eval mode, batch norm folded into the convolutions
  double teacher_accuracy = -1.0;
  std::shared_ptr<const data::Dataset> validation;  // --val-split: held out of data.train (null without it)
  std::shared_ptr<dist::Communicator> comm;  // the world of ranks (one process unless launched by mpirun)
};

// One run of the invocation: an objective, with or without the ISL curriculum. `label` names it on its lines and in
// file names: the --method shorthand when there is one (ce, kd, isl = kd + isl), else the objective[+isl].
struct RunSpec {
  std::string label, objective, curriculum;
};

RunSpec run_spec(const std::string& objective, const std::string& curriculum) {
  ISLKD_CHECK(distill::has_objective(objective), "--objective: unknown objective '", objective, "' (expected one of: ",
              app::compact_list(distill::objective_names()), ")");
  ISLKD_CHECK(curriculum == "none" || curriculum == "isl", "--curriculum: unknown curriculum '", curriculum,
              "' (expected none or isl)");
  const bool isl = curriculum == "isl";
  std::string label = objective + (isl ? "+isl" : "");
  if (objective == "kd" && isl) label = "isl";
  return {label, objective, curriculum};
}

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

std::string path_for_method(const std::string& path, const std::string& method, bool several) {
  if (!several) return path;
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + "." + method;
  return path.substr(0, dot) + "_" + method + path.substr(dot);
}

// The checkpoint and metrics paths of one run ("" for metrics when none is asked for).
std::string out_path(const Args& a, const std::string& method, bool several) {
  return path_for_method(a.out.empty() ? a.model + "_" + a.dataset + ".safetensors" : a.out, method, several);
}
std::string metrics_path(const Args& a, const std::string& method, bool several) {
  return a.metrics.empty() ? "" : path_for_method(a.metrics, method, several);
}

data::LoaderOptions loader_options(const Args& a, Device device) {
  data::LoaderOptions o;
  o.batch_size = a.per_rank_batch > 0 ? a.per_rank_batch : a.batch_size;
  o.workers = a.workers;
  o.seed = a.seed;
  o.device = device;
  return o;
}

// The objective's settings: -T/--alpha for kd, then --objective-options on top.
nlohmann::json objective_options(const Args& a, const std::string& objective) {
  nlohmann::json o = nlohmann::json::object();
  if (objective == "kd") {
    KDLossParams kdp;
    kdp.temperature = a.temperature;
    kdp.alpha = a.alpha;
    o = distill::kd_params_to_json(kdp);
  }
  if (!a.objective_options.empty()) {
    nlohmann::json extra = nlohmann::json::parse(a.objective_options, nullptr, false);
    ISLKD_CHECK(extra.is_object(), "--objective-options: expected a JSON object, got '", a.objective_options, "'");
    for (auto& [k, v] : extra.items()) o[k] = v;
  }
  return o;
}

distill::CurriculumOptions curriculum_options(const Args& a, int64_t n_train) {
  distill::CurriculumOptions copt;
  copt.num_instances = n_train;
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
  return copt;
}

// Flags -> the Trainer's config and parts for one run.
train::RunResult run_one(const RunSpec& r, const Args& a, Shared& s, bool several) {
  const bool isl = r.curriculum == "isl";
  models::ModelConfig mcfg;
  mcfg.num_classes = s.data.num_classes;
  mcfg.in_channels = s.data.in_channels;
  mcfg.seed = a.seed;

  train::TrainerParts p;
  p.student = models::create_model(a.model, mcfg);
  p.objective = distill::make_objective(r.objective, objective_options(a, r.objective));
  const bool use_teacher = p.objective->needs().needs_teacher();
  if (use_teacher || isl) p.teacher = s.teacher;
  const app::OptimArgs opt = a.opt;
  p.make_schedule = [opt](int64_t epochs) { return opt.make_schedule(epochs); };
  p.sgd = a.opt.sgd();
  p.train = s.data.train, p.test = s.data.test, p.validation = s.validation;
  p.n_train = s.data.n_train, p.n_test = s.data.n_test, p.num_classes = s.data.num_classes;
  p.train_transform = a.augment ? data::train_transform(*s.data.train) : data::eval_transform(*s.data.train);
  p.loader_options = loader_options(a, s.device);
  p.seed = a.seed;
  const std::unique_ptr<LRSchedule> schedule = a.opt.make_schedule(a.epochs);

  // The ISL measures' KD settings (kd, loss): the kd objective's own, else -T and --alpha; validated.
  KDLossParams score_kd;
  score_kd.temperature = a.temperature;
  score_kd.alpha = a.alpha;
  score_kd = distill::kd_params_from_json(r.objective == "kd" ? p.objective->config()
                                                              : distill::kd_params_to_json(score_kd));

  distill::CurriculumOptions copt = curriculum_options(a, s.data.n_train);
  const int64_t steps_per_epoch = ceil_div(s.data.n_train, a.batch_size);
  if (isl && a.pace_to_lr_drop) {
    // The phases share the whole epochs between the warm-up and the first LR drop, so all data is back in time.
    // When the rate drops before every phase could have a whole epoch (short runs), each phase keeps 1 epoch: the
    // earliest that all data can be back.
    const int drop = distill::epochs_before_lr_drop(*schedule, a.epochs, steps_per_epoch);
    copt.phase_epochs = std::max(1, (drop - a.isl_warmup) / std::max(1, a.phases));
    ISLKD_CHECK(int64_t(a.isl_warmup) + int64_t(a.phases) * copt.phase_epochs <= a.epochs, "isl: --isl-warmup ",
                a.isl_warmup, " + --phases ", a.phases, " (of at least 1 epoch) do not fit in --epochs ", a.epochs,
                "; lower them or raise --epochs");
  }
  if (isl) p.curriculum = std::make_unique<distill::Curriculum>(copt);

  train::TrainerConfig c;
  c.style = train::ReportStyle::TrainKd;
  c.format = kFormat;
  c.label = r.label;
  c.epochs = a.epochs;
  c.device = s.device;
  c.cached_targets = use_teacher && !a.augment;
  c.out = app::rank_path(out_path(a, r.label, several), *s.comm, a.rank_outputs);
  c.metrics = s.comm->is_root() ? metrics_path(a, r.label, several) : "";
  c.resume = a.resume;
  if (!a.trace_batches.empty())
    c.trace_batches = app::rank_path(path_for_method(a.trace_batches, r.label, several), *s.comm, a.rank_outputs);
  c.comm = s.comm;
  c.log_every = a.log_every;
  c.eval_every = a.eval_every;
  c.interrupt_after_steps = a.interrupt_after_steps;
  c.score_kd = score_kd;
  c.run_config = {{"method", r.label},
                  {"objective", r.objective},
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
                  {"optimizer", p.sgd.to_json()},
                  {"schedule", schedule->config()}};
  app::record_world(c.run_config, *s.comm, a.batch_size);
  app::apply_data_parallel(a.dp, c);
  if (use_teacher) {
    c.run_config["teacher_model"] = a.teacher_model;
    c.teacher_text = a.teacher_model + " " + a.teacher;
  }
  const nlohmann::json ocfg = p.objective->config();
  if (!ocfg.empty()) c.run_config[r.objective] = ocfg;
  if (isl) c.run_config["curriculum"] = copt.to_json();
  if (a.image_size > 0) c.run_config["image_size"] = a.image_size;  // absent otherwise: older logs stay identical
  if (!a.normalization.empty()) c.run_config["normalization"] = a.normalization;  // likewise
  c.resume_keys = {"method",  "objective", "model",     "dataset",     "num_classes", "in_channels", "train_instances",
                   "batch_size", "seed",   "augment",   "curriculum",  "label_noise", "val_split", "image_size",
                   "normalization"};
  c.data_description = train::describe_data(*s.data.train);
  train::Trainer trainer(std::move(c), std::move(p));
  return trainer.run(g_interrupted);
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
  cli.add_option("--objective", a.objective,
                 "what the student learns from: " + app::compact_list(distill::objective_names()) +
                     " (instead of --method; its settings: -T/--alpha for kd, --objective-options)");
  cli.add_option("--curriculum", a.curriculum, "none | isl: the order of the data, with any --objective");
  cli.add_option("--objective-options", a.objective_options,
                 "JSON table of the objective's settings over its defaults, e.g. '{\"temperature\": 2}'");
  cli.add_option("--model", a.model, "student model");
  cli.add_option("--teacher", a.teacher, "teacher checkpoint (safetensors, from `train` or a PyTorch state_dict)");
  cli.add_option("--teacher-model", a.teacher_model, "teacher architecture");
  cli.add_option("--dataset,--data-format", a.dataset,
                 "fashion-mnist | mnist | idx | cifar10 | cifar100 | svhn | cinic10 | imagefolder");
  cli.add_option("--data-path", a.data_path, "dataset directory (empty: Fashion-MNIST from Debian's package)");
  cli.add_option("--image-size", a.image_size,
                 "imagefolder/cinic10 with images of any size: evaluate (and cache teacher logits) on the centre "
                 "S x S after resizing the shorter side to round(S/0.875); with --augment train on "
                 "RandomResizedCrop(S) + flip (0 = images as stored, all of the first image's size)")
      ->check(CLI::Range(0, 4096));
  cli.add_option("--normalization", a.normalization,
                 "normalise the images with this mean/std instead of the dataset format's own (" +
                     data::known_normalizations() + "; imagenet for teachers converted from torchvision)");
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
               "isl: lay the phases out so that all data is back before the first LR drop (the default; "
               "--pace-to-lr-drop=false or an explicit --phase-epochs turns it off)");
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
  app::add_data_parallel_flags(cli, a.dp);
  cli.add_flag("--rank-outputs", a.rank_outputs,
               "data-parallel: ranks other than 0 also write their checkpoint and batch trace, as <path>.rank<r> "
               "(for tests)")
      ->group("");
  app::TomlConfig::check_config_file(argc, argv);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);
    ISLKD_FAIL(e.what());  // one line, like every other error
  }
  if (!a.normalization.empty()) data::standard_normalization(a.normalization);  // a bad name fails before the data

  // An explicit phase length replaces the default pacing to the LR drop; asking for both is a contradiction.
  if (cli.count("--phase-epochs") > 0) {
    ISLKD_CHECK(!(cli.count("--pace-to-lr-drop") > 0 && a.pace_to_lr_drop),
                "give either --phase-epochs or --pace-to-lr-drop (which sets the phases' length itself)");
    a.pace_to_lr_drop = false;
  }

  std::vector<RunSpec> runs;
  if (!a.objective.empty() || !a.curriculum.empty()) {
    ISLKD_CHECK(cli.count("--method") == 0, "give either --method or --objective/--curriculum (--method isl is "
                "--objective kd --curriculum isl)");
    runs.push_back(run_spec(a.objective.empty() ? "kd" : a.objective, a.curriculum.empty() ? "none" : a.curriculum));
  } else {
    std::stringstream ss(a.method);
    std::string m;
    while (std::getline(ss, m, ','))
      if (!m.empty()) {
        ISLKD_CHECK(m == "ce" || m == "kd" || m == "isl", "--method: unknown method '", m,
                    "' (expected ce, kd or isl)");
        runs.push_back(run_spec(m == "isl" ? "kd" : m, m == "isl" ? "isl" : "none"));
      }
    ISLKD_CHECK(!runs.empty(), "--method is empty; expected ce, kd, isl or a comma list of them");
  }
  std::vector<std::string> methods;
  for (const auto& r : runs) methods.push_back(r.label);
  const bool any_isl = std::any_of(runs.begin(), runs.end(), [](const RunSpec& r) { return r.curriculum == "isl"; });
  ISLKD_CHECK(a.resume.empty() || methods.size() == 1, "--resume continues one run: give a single --method");
  ISLKD_CHECK(models::has_model(a.model), "unknown --model '", a.model, "'; run with --help for the zoo");
  // Bad curriculum names fail here, before the data and the teacher are loaded.
  distill::parse_pacing(a.pacing);
  distill::parse_batch_order(a.batch_order);
  distill::parse_curriculum_mode(a.curriculum_mode);
  distill::parse_measure(a.measure);
  distill::parse_direction(a.direction);
  for (const auto& r : runs) distill::make_objective(r.objective, objective_options(a, r.objective));  // its settings
  if (any_isl) {  // with --pace-to-lr-drop a phase lasts at least --phase-epochs' default 1
    ISLKD_CHECK(a.phases >= 0 && a.phase_epochs >= 1, "isl: --phases must be >= 0 and --phase-epochs >= 1 (got ",
                a.phases, " and ", a.phase_epochs, ")");
    const int64_t schedule_epochs = int64_t(a.isl_warmup) + int64_t(a.phases) * a.phase_epochs;
    ISLKD_CHECK(schedule_epochs <= a.epochs, "isl: --isl-warmup ", a.isl_warmup, " + --phases ", a.phases,
                " x --phase-epochs ", a.phase_epochs, " = ", schedule_epochs, " epochs do not fit in --epochs ",
                a.epochs, " (the curriculum would be cut short); lower them or raise --epochs");
  }

  // The world of ranks (mpirun), before any output: rank 0 alone prints and writes.
  Shared s;
  s.comm = app::start_world(a.batch_size, a.dp.dist_timeout);
  a.per_rank_batch = a.batch_size / s.comm->size();

  // Every method's outputs, checked and locked before the teacher is loaded and any method runs.
  std::vector<std::pair<std::string, std::string>> outputs;
  for (const auto& m : methods) {
    const std::string suffix = methods.size() > 1 ? " (" + m + ")" : "";
    outputs.emplace_back("--out" + suffix, app::rank_path(out_path(a, m, methods.size() > 1), *s.comm, a.rank_outputs));
    if (s.comm->is_root()) outputs.emplace_back("--metrics" + suffix, metrics_path(a, m, methods.size() > 1));
  }
  const auto output_locks = app::claim_outputs(outputs);

  app::configure_cpu(app::rank_threads(a.threads, *s.comm));
  cuda::set_deterministic_algorithms(!a.nondeterministic);
  s.device = select_device(a.device, std::cout);
  if (s.device == Device::CUDA && s.comm->size() > 1) cuda::set_device(s.comm->local_rank());  // one GPU per rank
  s.data = app::open_splits(a.dataset, a.data_path, a.limit, a.test_limit, a.image_size, a.normalization);
  apply_study_conditions(s, a);

  const bool need_teacher = std::any_of(runs.begin(), runs.end(), [&](const RunSpec& r) {
    return r.curriculum == "isl" || distill::make_objective(r.objective, objective_options(a, r.objective))->needs().needs_teacher();
  });
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
    std::shared_ptr<Module> teacher = models::create_model(a.teacher_model, tc);
    try {
      checkpoint::load(a.teacher, *teacher);
    } catch (const Error& e) {
      const std::string why = e.what();
      // nan/inf weights or a negative running variance: a broken teacher, not a wrong architecture
      if (why.find(": not loaded: ") != std::string::npos) ISLKD_FAIL("teacher ", why);
      ISLKD_FAIL("teacher ", a.teacher, " does not fit a ", a.teacher_model, " for ", s.data.num_classes, " classes x ",
                 s.data.in_channels, " channels of ", a.dataset, " (", e.what(), ")");
    }
    teacher->to(s.device);
    teacher->eval();
    const int folded = nn::fold_batch_norm(*teacher);  // frozen: each BN becomes its conv's scale and bias
    data::Loader tl = app::sequential_loader(s.data.test, s.data.n_test, loader_options(a, s.device));
    s.teacher_accuracy = app::evaluate(*teacher, tl, s.device).accuracy;  // keeps it in eval mode, folded
    s.teacher = std::make_shared<train::TeacherTargets>(teacher, s.data.train, s.data.n_train, s.data.num_classes,
                                                        loader_options(a, s.device));
    std::printf("train_kd: teacher %s: %d batch norms folded into their convolutions\n", a.teacher_model.c_str(),
                folded);
    std::printf("train_kd: teacher %s %s: test accuracy %.2f%%\n", a.teacher_model.c_str(), a.teacher.c_str(),
                s.teacher_accuracy);
  }
  std::printf("train_kd: %s, %lld train / %lld test instances, %lld classes, device %s, %d threads\n",
              s.data.train->source().c_str(), static_cast<long long>(s.data.n_train), static_cast<long long>(s.data.n_test),
              static_cast<long long>(s.data.num_classes), device_name(s.device), cpu::num_threads());
  std::fflush(stdout);

  if (s.comm->size() == 1) std::signal(SIGINT, on_sigint);  // under mpirun, Ctrl-C ends every rank (mpirun's action)
  std::vector<train::RunResult> results;
  for (const auto& r : runs) {
    results.push_back(run_one(r, a, s, runs.size() > 1));
    if (results.back().interrupted) {
      std::fflush(stdout);
      s.comm->finalize();
      return kInterruptedExit;
    }
  }
  // One line per method with the last epoch's accuracy ("kd 90.61": what runs are compared by, and what scripts and
  // CI read), then the top-5 and the best epoch beside it (by the validation split with --val-split).
  if (runs.size() > 1) std::printf("train_kd: test accuracy after %lld epochs\n", static_cast<long long>(a.epochs));
  for (const auto& r : results) std::printf("%s %.2f\n", r.label.c_str(), r.test_accuracy);
  for (const auto& r : results)
    std::printf("%s top-5 %.2f, best %s%.2f at epoch %lld of %lld\n", r.label.c_str(), r.test_top5,
                a.val_split > 0 ? "validation " : "", r.best_accuracy, static_cast<long long>(r.best_epoch),
                static_cast<long long>(a.epochs));
  std::fflush(stdout);
  s.comm->finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return app::guarded_main("train_kd", [&] { return run(argc, argv); });
}
