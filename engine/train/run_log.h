// What a training run reports and keeps: the train/test splits and their loaders, the in-place progress line,
// the epoch tally, evaluation (which leaves the model in the mode it found it in), checkpoint metadata helpers and
// the JSON-lines metrics log. Shared by the Trainer and the apps.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/module.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "kernels/common/error.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::train {

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

// image_size: DatasetOptions::image_size (ImageFolder of any size, read as S x S; 0 = as stored).
// normalization: DatasetOptions::normalization (a name of data::standard_normalization; empty = the format's own).
inline Splits open_splits(const std::string& dataset, const std::string& path, int64_t limit, int64_t test_limit,
                          int image_size = 0, const std::string& normalization = "") {
  Splits s;
  data::DatasetOptions options;
  options.image_size = image_size;
  options.normalization = normalization;
  s.train = data::open_dataset(dataset, path, "train", options);
  s.test = data::open_dataset(dataset, path, "test", options);
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

// Number of rows whose label is among the k highest logits (ties ranked by class index, so k = 1 agrees with
// count_correct): a class beats the label when its logit is greater, or equal with a lower index.
inline int64_t count_top_k(const Tensor& logits, const std::vector<int32_t>& labels, int64_t k) {
  std::vector<float> v = logits.to_vector();
  const int64_t rows = logits.size(0), cols = logits.size(1);
  int64_t correct = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v.data() + r * cols;
    const int32_t y = labels[static_cast<size_t>(r)];
    int64_t above = 0;
    for (int64_t c = 0; c < cols && above < k; ++c) above += row[c] > row[y] || (row[c] == row[y] && c < y);
    correct += above < k;
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
  double top5 = 0.0;                  // percent with the label among the 5 highest logits (all of them when K <= 5)
  int64_t n = 0;
};

// Mean cross-entropy and accuracy of `model` in eval mode over the loader's epoch 0. The model is left in the mode
// it came in: switching a folded teacher to train mode would silently unfold its batch norms.
inline EvalResult evaluate(Module& model, data::Loader& loader, Device device) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  double loss_sum = 0.0;
  int64_t correct = 0, top5 = 0;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (device == Device::CUDA) device::wait_prefetch();
    Tensor logits = model(b.images);
    const int64_t n = b.images.size(0);
    loss_sum += static_cast<double>(ops::cross_entropy(logits, b.labels).item()) * static_cast<double>(n);
    const std::vector<int32_t> labels = b.labels.to_labels();
    correct += count_correct(logits, labels);
    top5 += count_top_k(logits, labels, 5);
    r.n += n;
  }
  model.train(was_training);
  ISLKD_CHECK(r.n > 0, "evaluation: the test split is empty");
  r.loss = loss_sum / static_cast<double>(r.n);
  r.accuracy = 100.0 * static_cast<double>(correct) / static_cast<double>(r.n);
  r.top5 = 100.0 * static_cast<double>(top5) / static_cast<double>(r.n);
  return r;
}

// What a checkpoint records about its data so `infer` can read new inputs the way training read them: the class
// names (in label order) and the normalisation (checkpoint metadata "data").
inline nlohmann::json describe_data(const data::Dataset& ds) {
  const data::Normalization& n = ds.normalization();
  return {{"class_names", ds.class_names()},
          {"normalization", {{"name", n.name}, {"mean", n.mean}, {"std", n.std}}},
          {"image_shape", {ds.channels(), ds.height(), ds.width()}}};
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

}  // namespace islkd::train
