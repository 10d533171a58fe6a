// Code shared by the apps (train, train_kd): the error-catching main wrapper, the optimizer / schedule flags, the
// train and test splits, the in-place progress line, accuracy counting, test-split evaluation, checkpoint metadata
// helpers, the metrics log. The device comes from engine/device.h's select_device.
// Header-only because every apps/<name>.cpp is its own executable.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/app_main.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/lr_schedule.h"
#include "engine/module.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "kernels/common/checked.h"
#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::app {

// Numeric flag checks that refuse nan and inf and print their bounds compactly (CLI11's NonNegativeNumber prints
// its range as 300 digits and lets nan through): "--lr: -1 is not a finite number >= 0".
inline CLI::Validator number_in(double lo, bool lo_inclusive, double hi) {
  std::ostringstream desc;
  desc << "NUMBER " << (lo_inclusive ? ">= " : "> ") << lo;
  if (std::isfinite(hi)) desc << " and <= " << hi;
  const std::string what = desc.str().substr(7);
  return CLI::Validator(
      [lo, lo_inclusive, hi, what](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v)) return "'" + in + "' is not a number";
        if (!std::isfinite(v) || v < lo || (!lo_inclusive && v == lo) || v > hi)
          return in + " is not a finite number " + what;
        return std::string();
      },
      desc.str());
}
inline CLI::Validator at_least(double lo) { return number_in(lo, true, HUGE_VAL); }
inline CLI::Validator positive() { return number_in(0, false, HUGE_VAL); }
inline CLI::Validator fraction() { return number_in(0, true, 1); }

// SGD and learning-rate flags, the same in train and train_kd.
struct OptimArgs {
  double lr = 0.05;
  double momentum = 0.9;
  double wd = 5e-4;
  bool nesterov = false;
  std::string schedule = "kd";
  std::vector<double> milestones;
  double gamma = 0.1;
  double min_lr = 0.0;
  double warmup = 0.0;
  double warmup_start = 0.0;

  void add_flags(CLI::App& cli) {
    cli.add_option("--lr", lr, "base learning rate")->check(at_least(0));
    cli.add_option("--momentum", momentum)->check(at_least(0));
    cli.add_option("--wd", wd, "weight decay")->check(at_least(0));
    cli.add_flag("--nesterov", nesterov);
    cli.add_option("--schedule", schedule,
                   "kd (x0.1 at 150/180/210 of 240 epochs, scaled to --epochs) | multistep | cosine | constant");
    cli.add_option("--milestones", milestones, "multistep: epochs where the rate drops (default: the kd ones)");
    cli.add_option("--gamma", gamma, "multistep: factor at each milestone")->check(at_least(0));
    cli.add_option("--min-lr", min_lr, "cosine: floor")->check(at_least(0));
    cli.add_option("--warmup", warmup, "linear warm-up epochs in front of the schedule (0 = none)")
        ->check(at_least(0));
    cli.add_option("--warmup-start", warmup_start, "warm-up: starting fraction of the rate")->check(fraction());
  }
  std::unique_ptr<LRSchedule> make_schedule(int64_t epochs) const {
    ScheduleSpec spec;
    spec.kind = schedule;
    spec.base_lr = lr;
    spec.epochs = epochs;
    spec.milestones = milestones;
    spec.gamma = gamma;
    spec.min_lr = min_lr;
    spec.warmup_epochs = warmup;
    spec.warmup_start_factor = warmup_start;
    return islkd::make_schedule(spec);
  }
  SGDConfig sgd() const {
    SGDConfig c;
    c.lr = static_cast<float>(lr);
    c.momentum = static_cast<float>(momentum);
    c.weight_decay = static_cast<float>(wd);
    c.nesterov = nesterov;
    return c;
  }
};

// The train and test splits of --dataset/--data-path, checked to agree, with --limit / --test-limit applied.
struct Splits {
  std::shared_ptr<const data::Dataset> train, test;
  int64_t n_train = 0, n_test = 0, num_classes = 0, in_channels = 0;
};

// "a, b, c" for up to 6 names, then "... (N in all)".
inline std::string compact_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 6; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 6) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

inline Splits open_splits(const std::string& dataset, const std::string& path, int64_t limit, int64_t test_limit) {
  Splits s;
  s.train = data::open_dataset(dataset, path, "train");
  s.test = data::open_dataset(dataset, path, "test");
  ISLKD_CHECK(s.train->size() > 0, s.train->source(), ": the train split is empty");
  ISLKD_CHECK(s.test->size() > 0, s.test->source(), ": the test split is empty (nothing to evaluate on)");
  ISLKD_CHECK(s.train->source() != s.test->source(), s.train->source(),
              ": the train and test splits are the same file (give the dataset folder, which holds both)");
  ISLKD_CHECK(s.test->class_names() == s.train->class_names(), s.test->source(), ": the test split's classes (",
              compact_list(s.test->class_names()), ") differ from the train split's (",
              compact_list(s.train->class_names()), "): a label would mean another class in each");
  ISLKD_CHECK(s.test->channels() == s.train->channels() && s.test->height() == s.train->height() &&
                  s.test->width() == s.train->width(),
              s.test->source(), ": the test split's images are ", s.test->channels(), "x", s.test->height(), "x",
              s.test->width(), ", the train split's ", s.train->channels(), "x", s.train->height(), "x",
              s.train->width());
  s.n_train = limit > 0 ? std::min(limit, s.train->size()) : s.train->size();
  s.n_test = test_limit > 0 ? std::min(test_limit, s.test->size()) : s.test->size();
  s.num_classes = s.train->num_classes();
  s.in_channels = s.train->channels();
  return s;
}

// A loader over the first n instances of ds in order, with the evaluation transform (normalisation only).
inline data::Loader sequential_loader(const std::shared_ptr<const data::Dataset>& ds, int64_t n,
                                      const data::LoaderOptions& options) {
  return data::Loader(ds, data::Transform(data::eval_transform(*ds), ds->channels(), ds->height(), ds->width()),
                      std::make_shared<data::SequentialSampler>(n), options);
}

// "1h02m", "3m05s", "12s".
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

// Number of rows whose arg-max logit equals the label (ties: the first maximum, like torch.argmax).
inline int64_t count_correct(const Tensor& logits, const std::vector<int32_t>& labels) {
  std::vector<float> v = logits.to_vector();
  const int64_t rows = logits.size(0), cols = logits.size(1);
  int64_t correct = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v.data() + r * cols;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c)
      if (row[c] > row[best]) best = c;
    correct += best == labels[static_cast<size_t>(r)];
  }
  return correct;
}

class Stopwatch {
 public:
  Stopwatch() : t0_(std::chrono::steady_clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  void reset() { t0_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// A status line rewritten in place on a terminal (at most ~4 times a second); silent when stdout is a file or
// pipe, where only the per-epoch lines appear.
class ProgressLine {
 public:
  ProgressLine() : tty_(isatty(fileno(stdout)) != 0) {}
  void update(const std::string& text, bool force = false) {
    if (!tty_) return;
    if (!force && last_.seconds() < 0.25) return;
    last_.reset();
    std::printf("\r%-*s", static_cast<int>(width_), text.c_str());
    width_ = text.size();
    std::fflush(stdout);
  }
  // Clears the in-place line so a permanent line can follow.
  void clear() {
    if (!tty_ || width_ == 0) return;
    std::printf("\r%*s\r", static_cast<int>(width_), "");
    width_ = 0;
    std::fflush(stdout);
  }

 private:
  bool tty_;
  size_t width_ = 0;
  Stopwatch last_;
};

// The CPU backend's settings for training: --threads (0 = OMP_NUM_THREADS or the library default), and the
// student's activations kept in oneDNN's blocked layout nChw<B>c (ops::set_cpu_blocked_activations; B = 8 on AVX2,
// 16 on AVX-512, or ISLKD_CPU_CHANNEL_BLOCK; same results as plain NCHW within float rounding, no reorder around
// each convolution). The block is resolved here, so a bad ISLKD_CPU_CHANNEL_BLOCK stops the app before any work.
inline void configure_cpu(int threads) {
  ISLKD_CHECK(threads >= 0, "--threads must be >= 0, got ", threads);
  cpu::set_num_threads(threads);
  cpu::activation_block();
  ops::set_cpu_blocked_activations(true);
}

inline std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Running training loss and accuracy of an epoch. add() takes one step's mean loss and logits; a loss that is not
// finite stops the run with advice (the rate is too high) instead of training on NaNs.
struct EpochTally {
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0;  // up to the last sync() when deferred
  // Deferred (train_kd on CUDA): add() queues the step's loss and right predictions into device accumulators
  // (cuda::tally_add: no host sync per step) and sync() reads them, one host sync per --log-every steps.
  bool deferred = false;
  int64_t queued = 0, queued_from_step = -1, queued_epoch = 0;  // rows added since the last sync()
  std::shared_ptr<double> device_acc, host_acc;                  // 3 doubles each (device; pinned host)

  int64_t rows_added() const { return seen + queued; }

  void add(const Tensor& loss, const Tensor& logits, const Tensor& labels, int64_t epoch, int64_t step) {
    const int64_t n = logits.size(0);
    if (deferred && loss.is_cuda()) {
      if (!device_acc) {
        device_acc.reset(static_cast<double*>(cuda::device_malloc(3 * sizeof(double))), cuda::device_free);
        cuda::fill(reinterpret_cast<float*>(device_acc.get()), 0.0f, 6);  // 0.0f bits are 0.0 doubles
        host_acc.reset(static_cast<double*>(cuda::pinned_host_malloc(3 * sizeof(double))), cuda::pinned_host_free);
      }
      const Tensor l = logits.detach().to_plain();
      cuda::tally_add(n, l.size(1), l.data(), labels.data_i32(), loss.data(), device_acc.get());
      if (queued_from_step < 0) queued_from_step = step, queued_epoch = epoch;
      queued += n;
      return;
    }
    const float value = loss.item();
    ISLKD_CHECK(std::isfinite(value), "epoch ", epoch + 1, " step ", step + 1, ": the loss is ", value,
                " (diverged); lower --lr");
    loss_sum += static_cast<double>(value) * static_cast<double>(n);
    correct += count_correct(logits.detach(), labels.to_labels());
    seen += n;
  }
  // Reads the device accumulators (one host sync) into loss_sum / correct / seen and checks the loss.
  void sync() {
    if (queued == 0 || !device_acc) return;
    cuda::memcpy_d2h(host_acc.get(), device_acc.get(), 3 * sizeof(double));
    cuda::fill(reinterpret_cast<float*>(device_acc.get()), 0.0f, 6);
    const double* h = host_acc.get();
    ISLKD_CHECK(std::isfinite(h[0]), "epoch ", queued_epoch + 1, ", a step from step ", queued_from_step + 1,
                " on: the loss is ", h[0], " (diverged: lower --lr; on CUDA also what a label outside the classes "
                "gives)");
    loss_sum += h[0];
    correct += static_cast<int64_t>(h[1]);
    seen += static_cast<int64_t>(h[2]);
    queued = 0, queued_from_step = -1;
  }
  double mean_loss() const { return seen > 0 ? loss_sum / static_cast<double>(seen) : 0.0; }
  double accuracy() const { return seen > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(seen) : 0.0; }
};

struct EvalResult {
  double loss = 0.0, accuracy = 0.0;  // mean cross-entropy, percent right
  int64_t n = 0;
};

// Mean cross-entropy and accuracy of `model` (switched to eval mode, then back to train) over the loader's epoch 0.
inline EvalResult evaluate(Module& model, data::Loader& loader, Device device) {
  NoGradGuard no_grad;
  model.eval();
  EvalResult r;
  double loss_sum = 0.0;
  int64_t correct = 0;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (device == Device::CUDA) cuda::wait_prefetch();
    Tensor logits = model(b.images);
    const int64_t n = b.images.size(0);
    loss_sum += static_cast<double>(ops::cross_entropy(logits, b.labels).item()) * static_cast<double>(n);
    correct += count_correct(logits, b.labels.to_labels());
    r.n += n;
  }
  model.train();
  ISLKD_CHECK(r.n > 0, "evaluation: the test split is empty");
  r.loss = loss_sum / static_cast<double>(r.n);
  r.accuracy = 100.0 * static_cast<double>(correct) / static_cast<double>(r.n);
  return r;
}

// The files a run writes, checked and locked at start so a bad or busy path fails before any epoch: each must be a
// regular file or not exist yet in an existing directory (check_output_path), no two may be the same path, and
// each is locked for the whole run (OutputLock: a second run writing the same file stops here, naming the first).
// `outputs` are (flag, path) pairs; empty paths (an output not asked for) are skipped. Keep the result alive.
inline std::vector<std::unique_ptr<OutputLock>> claim_outputs(
    const std::vector<std::pair<std::string, std::string>>& outputs) {
  std::vector<std::unique_ptr<OutputLock>> locks;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& [flag, path] = outputs[i];
    if (path.empty()) continue;
    for (size_t j = 0; j < i; ++j)
      ISLKD_CHECK(outputs[j].second != path, outputs[j].first, " and ", flag, " name the same file '", path, "'");
    try {
      check_output_path(path);
      locks.push_back(std::make_unique<OutputLock>(path));
    } catch (const Error& e) {
      ISLKD_FAIL(flag, ": ", e.what());
    }
  }
  return locks;
}

inline std::string meta_get(const std::map<std::string, std::string>& meta, const std::string& key,
                            const std::string& path, const char* app_name) {
  auto it = meta.find(key);
  ISLKD_CHECK(it != meta.end(), path, ": not a checkpoint of `", app_name, "` (metadata has no '", key, "')");
  return it->second;
}

// A checkpoint's count (epoch, step): an integer >= 0.
inline int64_t parse_count(const std::string& s, const std::string& what);

inline int64_t parse_int(const std::string& s, const std::string& what) {
  try {
    size_t pos = 0;
    long long v = std::stoll(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  ISLKD_FAIL(what, ": '", s, "' is not an integer");
}

inline int64_t parse_count(const std::string& s, const std::string& what) {
  const int64_t v = parse_int(s, what);
  ISLKD_CHECK(v >= 0, what, ": ", v, " is negative (a tampered or corrupt checkpoint)");
  return v;
}

// Per-epoch metrics as JSON lines: a first line with the run config, then one line per epoch. Kept in memory and
// rewritten atomically after each epoch; a resumed run keeps the lines of the epochs it did not redo.
class MetricsLog {
 public:
  MetricsLog(std::string path, const nlohmann::json& config, int64_t resume_epoch) : path_(std::move(path)) {
    if (path_.empty()) return;
    if (resume_epoch > 0) {
      if (std::FILE* f = std::fopen(path_.c_str(), "r")) {
        std::string line;
        int ch;
        auto flush_line = [&] {
          nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
          if (!j.is_discarded() && j.is_object() && !j.contains("config") &&
              j.value("epoch", resume_epoch + 1) <= resume_epoch)
            lines_.push_back(j.dump());
          line.clear();
        };
        while ((ch = std::fgetc(f)) != EOF) {
          if (ch == '\n')
            flush_line();
          else
            line.push_back(static_cast<char>(ch));
        }
        if (!line.empty()) flush_line();
        std::fclose(f);
      }
    }
    lines_.insert(lines_.begin(), nlohmann::json{{"config", config}}.dump());
  }
  void append(const nlohmann::json& epoch_metrics) {
    if (path_.empty()) return;
    lines_.push_back(epoch_metrics.dump());
    std::string text;
    for (const auto& l : lines_) text += l + "\n";
    write_file_atomic(path_, text.data(), text.size());
  }

 private:
  std::string path_;
  std::vector<std::string> lines_;
};

}  // namespace islkd::app
