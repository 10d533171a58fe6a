// End-to-end benchmark of one KD training step (teacher eval forward under no-grad, student forward+backward,
// fused KD loss, SGD update) for the KD literature's teacher->student pairs, plus the ISL phase boundary (score
// every instance with a snapshot, sort) and peak memory. bench/pytorch_baseline.py runs the same step in PyTorch;
// bench/vs_pytorch puts both side by side.
//
// Output: one JSON line per measurement on stdout (`{"kind": "kd_step", ...}`, `{"kind": "isl_boundary", ...}`,
// `{"kind": "memory", ...}`), then a human table on stderr (so `| grep kind` style consumers see only JSON).
// On --device cuda each kd_step record also has "cuda_counters_per_step": what the backend asked of the runtime
// (kernel launches, cuDNN / cuBLAS calls, host syncs, copies split pinned/pageable, cudaMalloc) per steady-state
// step, counted over --steps further steps that upload their batch from pinned memory on the copy stream, as
// train_kd's loader does, with no benchmark sync inside and the loss read once at the end; and "cuda_targets_met"
// (0 cudaMalloc, 0 pageable copies, at most 1 host sync per step). kd_step_bench_emu gives the same counts on the
// emulated device (ISLKD_EMULATED_CUDA=1).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "engine/distill/objective.h"
#include "engine/train/trainer.h"
#include "models/registry.h"

using namespace islkd;

namespace {

struct Pair {
  std::string teacher, student;
  int64_t batch;
};

// The pairs of the issue (RepDistiller's CIFAR-100 table) and the tiny one the smoke run uses.
const std::vector<Pair> kPairs = {{"resnet56", "resnet20", 128}, {"resnet32x4", "resnet8x4", 64},
                                  {"wrn_40_2", "wrn_16_2", 64}};
const Pair kSmokePair = {"resnet8", "resnet8", 8};

struct Options {
  std::vector<std::string> pairs;  // empty = all
  int warmup = 3, steps = 10, threads = 2;
  int64_t classes = 100, size = 32;
  int64_t isl_instances = 50000;  // 0 = skip the phase-boundary measurement
  int64_t isl_batch = 500;
  std::string objective = "kd";  // any registered objective, with its defaults (kd: T 4, alpha 0.9)
  bool smoke = false, table = true;
  bool tf32 = false;  // CUDA: allow TF32 tensor cores (cuda::set_tf32_allowed); strict FP32 by default
  bool require_cuda_targets = false;  // exit 1 when a pair's counted CUDA step misses the targets (CI)
  bool fold = true;  // fold the frozen teacher's (and snapshot's) BN into its convs
  bool blocked = true;  // keep the student's CPU activations in nChw<B>c (ops::set_cpu_blocked_activations)
  Device device = Device::CPU;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void sync(Device d) {
  if (d == Device::CUDA) cuda::synchronize();
}

// Deterministic inputs: a fixed LCG, so every run (and every build) times the same batch.
Tensor random_images(int64_t n, int64_t size, uint64_t seed, Device d) {
  std::vector<float> v(static_cast<size_t>(n * 3 * size * size));
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(s >> 40) / double(1ull << 24) * 2.0 - 1.0);
  }
  return Tensor::from_vector(v, {n, 3, size, size}).to(d);
}

std::vector<int32_t> random_labels(int64_t n, int64_t classes, uint64_t seed) {
  std::vector<int32_t> y(static_cast<size_t>(n));
  uint64_t s = seed;
  for (auto& l : y) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    l = static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(classes));
  }
  return y;
}

// The host-sync budget of the counted steps: at most one per step.
uint64_t d_steps(const Options& o) { return static_cast<uint64_t>(o.steps); }

nlohmann::json bench_pair(const Pair& pr, const Options& o) {
  models::ModelConfig cfg;
  cfg.num_classes = o.classes;
  cfg.seed = 1;
  auto teacher = models::create_model(pr.teacher, cfg);
  cfg.seed = 2;
  auto student = models::create_model(pr.student, cfg);
  teacher->to(o.device);
  student->to(o.device);
  teacher->eval();
  if (o.fold) nn::fold_batch_norm(*teacher);
  student->train();
  SGDConfig sc;
  sc.lr = 0.05f, sc.momentum = 0.9f, sc.weight_decay = 5e-4f;
  const Tensor x = random_images(pr.batch, o.size, 7, o.device);
  const Tensor y = Tensor::from_labels(random_labels(pr.batch, o.classes, 9), o.device);
  // train_kd's step (engine/train: TrainStep) with the objective (kd by default) and the live teacher; its two
  // halves are timed apart.
  std::unique_ptr<distill::Objective> objective =
      o.objective == "kd" ? distill::make_objective("kd", {{"temperature", 4.0}, {"alpha", 0.9}})
                          : distill::make_objective(o.objective);
  train::TeacherTargets targets(teacher, nullptr, 0, o.classes, data::LoaderOptions{});
  const Shape input = {cfg.in_channels, o.size, o.size};
  // An objective with per-instance state (crd's memory banks) binds to a CIFAR-sized training set (50,000 instances,
  // labels round-robin) and sees consecutive instances per step.
  const int64_t n_train = 50000;
  std::vector<int32_t> train_labels;
  if (objective->needs().instances)
    for (int64_t i = 0; i < n_train; ++i) train_labels.push_back(static_cast<int32_t>(i % o.classes));
  train::bind_objective(*objective, *student, &targets, input, 3, train_labels.empty() ? nullptr : &train_labels);
  objective->to(o.device);
  const int64_t teacher_feature_bytes = train::teacher_feature_bytes(*objective, targets, input, pr.batch);
  SGD opt(train::trained_parameters(*student, *objective), sc);
  train::TrainStep train_step(*student, *objective, opt, &targets, /*cached_targets=*/false);
  const std::vector<int64_t> no_indices;
  int64_t step_number = 0;

  float loss = 0.0f;
  double t_teacher = 0.0, t_student = 0.0;  // per-phase sums over the timed steps (with a sync at each edge)
  auto step = [&](bool timed) {
    const double t0 = timed ? now_s() : 0.0;
    distill::ObjectiveInputs in = train_step.teacher_targets(x, no_indices);
    if (!train_labels.empty()) {
      in.step = step_number++;
      for (int64_t i = 0; i < pr.batch; ++i) in.indices.push_back((in.step * pr.batch + i) % n_train);
    }
    if (timed) sync(o.device), t_teacher += now_s() - t0;
    const double t1 = timed ? now_s() : 0.0;
    train::StepOutput out = train_step.learn(x, y, std::move(in));
    if (timed) sync(o.device), t_student += now_s() - t1;
    return out;
  };
  for (int i = 0; i < o.warmup; ++i) step(false);
  sync(o.device);
  std::vector<double> times;
  for (int i = 0; i < o.steps; ++i) {
    const double t0 = now_s();
    Tensor l = step(true).loss;
    sync(o.device);
    times.push_back(now_s() - t0);
    if (i + 1 == o.steps) loss = l.item();
  }
  const double med = median(times);
  nlohmann::json counted = nullptr, targets_met = nullptr;
  if (o.device == Device::CUDA) {
    // The batch arrives as the loader delivers it: pinned host buffers, copied on the copy stream.
    const std::vector<float> xh = x.to_vector();
    const std::vector<int32_t> yh = random_labels(pr.batch, o.classes, 9);
    float* xp = static_cast<float*>(cuda::pinned_host_malloc(xh.size() * sizeof(float)));
    int32_t* yp = static_cast<int32_t*>(cuda::pinned_host_malloc(yh.size() * sizeof(int32_t)));
    std::copy(xh.begin(), xh.end(), xp);
    std::copy(yh.begin(), yh.end(), yp);
    Tensor last_loss;
    auto counted_step = [&] {
      cuda::memcpy_h2d_prefetch(x.data(), xp, xh.size() * sizeof(float));
      cuda::memcpy_h2d_prefetch(y.data_i32(), yp, yh.size() * sizeof(int32_t));
      cuda::wait_prefetch();
      last_loss = step(false).loss;  // only the [1] loss stays alive, as in a training loop
    };
    for (int i = 0; i < 2; ++i) counted_step();  // uncounted: the allocator learns the blocks that overlap steps
    sync(o.device);
    const cuda::Counters c0 = cuda::counters();
    for (int i = 0; i < o.steps; ++i) counted_step();
    float* loss_pinned = static_cast<float*>(cuda::pinned_host_malloc(sizeof(float)));
    cuda::memcpy_d2h(loss_pinned, last_loss.data(), sizeof(float));  // the one read (train_kd: every --log-every)
    loss = *loss_pinned;
    cuda::pinned_host_free(loss_pinned);
    const cuda::Counters d = cuda::counters_delta(c0, cuda::counters());
    cuda::pinned_host_free(xp);
    cuda::pinned_host_free(yp);
    const double n = o.steps;
    counted = {{"steps", o.steps},
               {"kernel_launches", d.kernel_launches / n},
               {"cudnn_calls", d.cudnn_calls / n},
               {"cublas_calls", d.cublas_calls / n},
               {"host_syncs", d.host_syncs / n},
               {"h2d_pinned", d.h2d_pinned / n},
               {"h2d_pageable", d.h2d_pageable / n},
               {"d2h_pinned", d.d2h_pinned / n},
               {"d2h_pageable", d.d2h_pageable / n},
               {"d2d", d.d2d / n},
               {"h2d_bytes", d.h2d_bytes / n},
               {"d2h_bytes", d.d2h_bytes / n},
               {"d2d_bytes", d.d2d_bytes / n},
               {"cuda_mallocs", d.cuda_mallocs / n},
               {"cuda_malloc_bytes", d.cuda_malloc_bytes / n}};
    targets_met = d.cuda_mallocs == 0 && d.h2d_pageable + d.d2h_pageable == 0 && d.host_syncs <= d_steps(o);
  }
  return {{"kind", "kd_step"},
          {"impl", "islkd"},
          {"pair", pr.teacher + "->" + pr.student},
          {"objective", o.objective},
          {"objective_parameters", static_cast<int64_t>(objective->parameters().size())},
          {"teacher_feature_bytes", teacher_feature_bytes},
          {"batch", pr.batch},
          {"device", device_name(o.device)},
          {"math", o.device == Device::CUDA ? (o.tf32 ? "tf32" : "strict") : "fp32"},
          {"threads", cpu::num_threads()},
          {"teacher_fold", o.fold},
          {"blocked_activations", o.blocked},
          {"onednn_isa", cpu::onednn_isa()},
          {"activation_layout", cpu::activation_layout_name()},
          {"steps", o.steps},
          {"median_s", med},
          {"min_s", *std::min_element(times.begin(), times.end())},
          {"step_s", times},
          {"images_per_s", double(pr.batch) / med},
          {"teacher_share", t_teacher / (t_teacher + t_student)},
          {"loss", loss},
          {"cuda_counters_per_step", counted},
          {"cuda_targets_met", targets_met}};
}

// The ISL phase boundary: forward a resnet20 snapshot (eval, no grad) over every instance, score each against
// the resnet56 teacher's cached logits (ops::difficulty_scores, measure `loss`), then radix-sort the scores.
// The teacher's logits are cached by train_kd once per run, so they are an input here (random, fixed seed).
nlohmann::json bench_isl(const Options& o) {
  models::ModelConfig cfg;
  cfg.num_classes = o.classes;
  cfg.seed = 3;
  auto snapshot = models::create_model(o.smoke ? "resnet8" : "resnet20", cfg);
  snapshot->to(o.device);
  snapshot->eval();
  if (o.fold) nn::fold_batch_norm(*snapshot);
  const int64_t n = o.isl_instances, b = std::min(o.isl_batch, n);
  const Tensor images = random_images(b, o.size, 11, o.device);  // one batch reused: the data path is not timed
  std::vector<float> tl(static_cast<size_t>(n * o.classes));
  uint64_t s = 5;
  for (auto& v : tl) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<float>(static_cast<double>(s >> 40) / double(1ull << 24) * 8.0 - 4.0);
  }
  const Tensor teacher_logits = Tensor::from_vector(tl, {n, o.classes}).to(o.device);
  const Tensor labels = Tensor::from_labels(random_labels(n, o.classes, 13), o.device);
  KDLossParams kp;
  kp.temperature = 4.0f, kp.alpha = 0.9f;

  NoGradGuard ng;
  Tensor snap_logits = Tensor::empty({n, o.classes}, o.device);
  const double t0 = now_s();
  for (int64_t i = 0; i < n; i += b) {
    const int64_t m = std::min(b, n - i);
    // A last partial batch still runs a full batch (as a padded loader would); only its m rows are kept.
    Tensor out = (*snapshot)(images);
    const size_t bytes = sizeof(float) * size_t(m * o.classes);
    if (o.device == Device::CPU)
      std::memcpy(snap_logits.data() + i * o.classes, out.data(), bytes);
    else
      cuda::memcpy_d2d(snap_logits.data() + i * o.classes, out.data(), bytes);
  }
  sync(o.device);
  const double t_forward = now_s() - t0;
  const double t1 = now_s();
  Tensor scores = ops::difficulty_scores(snap_logits, teacher_logits, labels, DifficultyMeasure::Loss, kp);
  sync(o.device);
  const double t_scores = now_s() - t1;
  std::vector<uint32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0u);
  const double t2 = now_s();
  auto sorted = ops::radix_sort_pairs(scores, idx);
  sync(o.device);
  const double t_sort = now_s() - t2;
  return {{"kind", "isl_boundary"},   {"instances", n},
          {"snapshot", o.smoke ? "resnet8" : "resnet20"},
          {"device", device_name(o.device)},
          {"snapshot_forward_s", t_forward}, {"difficulty_scores_s", t_scores},
          {"radix_sort_s", t_sort},          {"sort_share_of_boundary", t_sort / (t_forward + t_scores + t_sort)}};
}

nlohmann::json memory_record(const Options& o) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  nlohmann::json j = {{"kind", "memory"}, {"max_rss_bytes", int64_t(ru.ru_maxrss) * 1024}};
  if (o.device == Device::CUDA) j["cuda_allocator_peak_bytes"] = cuda::allocator_peak_bytes();
  return j;
}

void usage() {
  std::fprintf(stderr,
               "usage: kd_step_bench [--smoke] [--pair TEACHER->STUDENT]... [--warmup N] [--steps N] [--threads N]\n"
               "                     [--isl-instances N (0 = skip)] [--device cpu|cuda|auto] [--no-table]\n"
               "                     [--objective NAME (ce, kd, dkd, at, fitnet, ...: the step's objective, its\n"
               "                      defaults; kd: T 4, alpha 0.9)]\n"
               "                     [--no-fold (run the teacher's BN unfolded)]\n"
               "                     [--plain-activations (train the student on plain NCHW activations)]\n"
               "                     [--tf32 (CUDA: TF32 tensor cores allowed; default strict FP32)]\n"
               "                     [--require-cuda-targets (exit 1 unless every CUDA step makes 0 cudaMalloc,\n"
               "                      0 pageable copies and at most 1 host sync)]\n");
}

Options parse(int argc, char** argv) {
  Options o;
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      ISLKD_CHECK(i + 1 < argc, "kd_step_bench: ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--smoke") o.smoke = true;
    else if (a == "--pair") o.pairs.push_back(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--steps") o.steps = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--isl-instances") o.isl_instances = std::stoll(next());
    else if (a == "--device") device = next();
    else if (a == "--objective") o.objective = next();
    else if (a == "--no-table") o.table = false;
    else if (a == "--require-cuda-targets") o.require_cuda_targets = true;
    else if (a == "--tf32") o.tf32 = true;
    else if (a == "--no-fold") o.fold = false;
    else if (a == "--plain-activations") o.blocked = false;
    else if (a == "--help" || a == "-h") usage(), std::exit(0);
    else ISLKD_FAIL("kd_step_bench: unknown argument '", a, "' (see --help)");
  }
  if (device == "auto") device = cuda::device_available(nullptr) ? "cuda" : "cpu";
  o.device = parse_device(device);
  if (o.smoke) {
    o.warmup = 1, o.steps = 2;
    o.isl_instances = std::min<int64_t>(o.isl_instances, 512);
    o.isl_batch = 256;
  }
  ISLKD_CHECK(o.steps >= 1 && o.warmup >= 0, "kd_step_bench: needs --steps >= 1 and --warmup >= 0");
  ISLKD_CHECK(distill::has_objective(o.objective), "kd_step_bench: unknown --objective '", o.objective, "'");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    cpu::set_num_threads(o.threads);
    ops::set_cpu_blocked_activations(o.blocked);
    cuda::set_tf32_allowed(o.tf32);
    std::vector<Pair> pairs;
    if (o.pairs.empty()) {
      pairs = o.smoke ? std::vector<Pair>{kSmokePair} : kPairs;
    } else {
      for (const auto& name : o.pairs) {
        bool found = false;
        for (const auto& p : kPairs)
          if (p.teacher + "->" + p.student == name) pairs.push_back(p), found = true;
        if (kSmokePair.teacher + "->" + kSmokePair.student == name) pairs.push_back(kSmokePair), found = true;
        ISLKD_CHECK(found, "kd_step_bench: unknown pair '", name,
                    "' (known: resnet56->resnet20, resnet32x4->resnet8x4, wrn_40_2->wrn_16_2, resnet8->resnet8)");
      }
    }
    std::vector<nlohmann::json> out;
    for (const auto& p : pairs) {
      out.push_back(bench_pair(p, o));
      std::cout << out.back().dump() << std::endl;
    }
    if (o.isl_instances > 0) {
      out.push_back(bench_isl(o));
      std::cout << out.back().dump() << std::endl;
    }
    out.push_back(memory_record(o));
    std::cout << out.back().dump() << std::endl;
    if (o.table) {
      std::fprintf(stderr, "\n%-24s %6s %12s %10s %9s\n", "pair", "batch", "images/s", "median ms", "teacher%");
      for (const auto& j : out) {
        if (j["kind"] == "kd_step") {
          std::string pair = j["pair"].get<std::string>();
          if (j["objective"] != "kd") pair += " [" + j["objective"].get<std::string>() + "]";
          std::fprintf(stderr, "%-24s %6lld %12.1f %10.2f %8.1f%%\n", pair.c_str(),
                       static_cast<long long>(j["batch"].get<int64_t>()), j["images_per_s"].get<double>(),
                       1e3 * j["median_s"].get<double>(), 100.0 * j["teacher_share"].get<double>());
          if (j["teacher_feature_bytes"].get<int64_t>() > 0)
            std::fprintf(stderr, "  teacher features: %.2f MiB per batch (live teacher)\n",
                         j["teacher_feature_bytes"].get<int64_t>() / 1048576.0);
          const auto& c = j["cuda_counters_per_step"];
          if (!c.is_null())
            std::fprintf(stderr,
                         "  per step: %.0f launches, %.0f cuDNN, %.0f cuBLAS, %.2f host syncs, H2D %.1f pinned / "
                         "%.1f pageable, D2H %.1f pinned / %.1f pageable, %.0f D2D, %.1f cudaMalloc (%s)\n",
                         c["kernel_launches"].get<double>(), c["cudnn_calls"].get<double>(),
                         c["cublas_calls"].get<double>(), c["host_syncs"].get<double>(),
                         c["h2d_pinned"].get<double>(), c["h2d_pageable"].get<double>(),
                         c["d2h_pinned"].get<double>(), c["d2h_pageable"].get<double>(), c["d2d"].get<double>(),
                         c["cuda_mallocs"].get<double>(),
                         j["cuda_targets_met"].get<bool>() ? "targets met" : "TARGETS MISSED");
        }
        else if (j["kind"] == "isl_boundary")
          std::fprintf(stderr, "ISL boundary, %lld instances: snapshot forward %.2f s, difficulty_scores %.4f s, "
                               "radix sort %.4f s\n",
                       static_cast<long long>(j["instances"].get<int64_t>()), j["snapshot_forward_s"].get<double>(),
                       j["difficulty_scores_s"].get<double>(), j["radix_sort_s"].get<double>());
        else if (j["kind"] == "memory")
          std::fprintf(stderr, "peak memory: max RSS %.1f MiB\n", j["max_rss_bytes"].get<int64_t>() / 1048576.0);
      }
    }
    if (o.require_cuda_targets) {
      ISLKD_CHECK(o.device == Device::CUDA, "kd_step_bench: --require-cuda-targets needs --device cuda");
      for (const auto& j : out)
        if (j["kind"] == "kd_step" && !j["cuda_targets_met"].get<bool>()) {
          std::fprintf(stderr, "kd_step_bench: %s misses the CUDA step targets: %s\n",
                       j["pair"].get<std::string>().c_str(), j["cuda_counters_per_step"].dump().c_str());
          return 1;
        }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kd_step_bench: %s\n", e.what());
    return 1;
  }
}
