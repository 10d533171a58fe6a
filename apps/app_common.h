// Code shared by the apps (train, train_kd): device choice, the error-catching main wrapper, the in-place
// progress line, accuracy counting. Header-only because every apps/<name>.cpp is its own executable.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>

#include "engine/tensor.h"
#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::app {

// Runs the app body; any error becomes one line on stderr and exit code 1 (never an abort on user input).
inline int guarded_main(const char* app_name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", app_name, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", app_name, e.what());
  }
  return 1;
}

// --device auto|cpu|cuda. auto takes CUDA when a device is there; cuda without one is an error that says why.
inline Device choose_device(const std::string& flag) {
  std::string why;
  if (flag == "auto") return cuda::device_available(&why) ? Device::CUDA : Device::CPU;
  if (flag == "cuda") {
    ISLKD_CHECK(cuda::device_available(&why), "--device cuda: no usable CUDA device (", why, "); use --device cpu");
    return Device::CUDA;
  }
  ISLKD_CHECK(flag == "cpu", "--device must be auto, cpu or cuda, got '", flag, "'");
  return Device::CPU;
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

// Applies --threads (0 = OMP_NUM_THREADS or the library default).
inline void apply_threads(int threads) {
  ISLKD_CHECK(threads >= 0, "--threads must be >= 0, got ", threads);
  cpu::set_num_threads(threads);
}

}  // namespace islkd::app
