// Shared test helpers: tolerance comparison that prints the first mismatches, random tensors, and the
// finite-difference gradient check used by every op with a backward.
#pragma once
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/tensor.h"

namespace islkd::test {

// Runs a shell command; returns its exit status (-1 when it did not exit) and its stdout + stderr.
inline std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// max |got - ref| / max |ref|: the relative error the PyTorch-reference tests bound.
inline double max_relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - ref[i]));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return diff / std::max(scale, 1e-30);
}

// |a - ref| <= atol + rtol * |ref| element-wise; reports the count and the first five mismatches with indices.
inline ::testing::AssertionResult all_close(const std::vector<float>& actual, const std::vector<float>& ref,
                                            float atol, float rtol) {
  if (actual.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << actual.size() << " != reference size " << ref.size();
  std::ostringstream os;
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    float a = actual[i], r = ref[i];
    bool ok = (std::isnan(a) && std::isnan(r)) || (a == r) || std::fabs(a - r) <= atol + rtol * std::fabs(r);
    if (!ok) {
      if (bad < 5) os << "\n  [" << i << "] got " << a << " expected " << r << " (|diff| " << std::fabs(a - r) << ")";
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << ref.size() << " values differ (atol " << atol << ", rtol "
                                       << rtol << "):" << os.str();
}

inline ::testing::AssertionResult all_close(const Tensor& actual, const std::vector<float>& ref, float atol,
                                            float rtol) {
  return all_close(actual.to_vector(), ref, atol, rtol);
}

inline std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// NCHW -> nChw<B>c ([N][C/B][HW][B], oneDNN's aBcd8b / aBcd16b) by index arithmetic, independent of oneDNN's
// reorders. C % B == 0.
inline std::vector<float> nchw_to_blocked(const std::vector<float>& x, int64_t N, int64_t C, int64_t HW,
                                          int64_t B) {
  std::vector<float> y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < HW; ++p) y[((n * (C / B) + c / B) * HW + p) * B + c % B] = x[(n * C + c) * HW + p];
  return y;
}

// The message of the islkd::Error that f throws, or "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f,
                            Device device = Device::CPU) {
  return Tensor::from_vector(random_vector(static_cast<size_t>(shape_numel(shape)), seed, lo, hi), shape, device);
}

// Scalar sum_i y_i * r_i with its backward, so any op output becomes a loss with a non-trivial upstream gradient.
inline Tensor weighted_sum(const Tensor& y, const std::vector<float>& r) {
  std::vector<float> yv = y.to_vector();
  double s = 0.0;
  for (size_t i = 0; i < yv.size(); ++i) s += static_cast<double>(yv[i]) * r[i];
  Tensor out = Tensor::full({1}, static_cast<float>(s), y.device());
  if (needs_grad({&y})) {
    Tensor yy = y;
    record("weighted_sum", {yy}, {out}, [yy, r](const std::vector<Tensor>& g) {
      float go = g[0].item();
      std::vector<float> d(r.size());
      for (size_t i = 0; i < r.size(); ++i) d[i] = go * r[i];
      accumulate_grad(yy, Tensor::from_vector(d, yy.shape(), yy.device()));
    });
  }
  return out;
}

// Finite-difference gradient check. `f` maps the inputs to a tensor y; the loss is weighted_sum(y, r) with a fixed
// random r. For each input that requires grad, up to `max_per_input` coordinates (spread over the tensor) are
// perturbed by +-eps (float32 central differences) and compared with the autograd gradient:
// |analytic - numeric| <= atol + rtol * |numeric|.
inline ::testing::AssertionResult grad_check(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                             std::vector<Tensor> inputs, float eps, float atol, float rtol,
                                             int max_per_input = 64) {
  Tensor y0;
  {
    NoGradGuard ng;
    y0 = f(inputs);
  }
  std::vector<float> r = random_vector(static_cast<size_t>(y0.numel()), 12345u);
  for (auto& t : inputs) t.zero_grad();
  Tensor loss = weighted_sum(f(inputs), r);
  loss.backward();
  std::ostringstream os;
  int bad = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& t = inputs[k];
    if (!t.requires_grad()) continue;
    if (!t.grad().defined()) return ::testing::AssertionFailure() << "input " << k << " got no gradient";
    std::vector<float> analytic = t.grad().to_vector();
    std::vector<float> base = t.to_vector();
    int64_t n = t.numel();
    int64_t step = std::max<int64_t>(1, n / max_per_input);
    for (int64_t i = 0; i < n; i += step) {
      auto eval = [&](float delta) {
        std::vector<float> v = base;
        v[static_cast<size_t>(i)] += delta;
        Tensor p = Tensor::from_vector(v, t.shape(), t.device());
        std::vector<Tensor> in2 = inputs;
        in2[k] = p;
        NoGradGuard ng;
        std::vector<float> yv = f(in2).to_vector();
        double s = 0.0;
        for (size_t j = 0; j < yv.size(); ++j) s += static_cast<double>(yv[j]) * r[j];
        return s;
      };
      double numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
      double a = analytic[static_cast<size_t>(i)];
      if (std::fabs(a - numeric) > atol + rtol * std::fabs(numeric)) {
        if (bad < 5) os << "\n  input " << k << " [" << i << "] analytic " << a << " numeric " << numeric;
        ++bad;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " gradient entries differ (eps " << eps << ", atol " << atol
                                       << ", rtol " << rtol << "):" << os.str();
}

}  // namespace islkd::test
