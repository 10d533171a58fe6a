// batch_norm2d: training/eval forward against a double reference, running statistics (momentum, unbiased
// variance as in PyTorch), and gradients against finite differences of the double-precision reference (float32
// central differences through the normalisation are too noisy to be a useful check).
#include <cmath>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

struct Dims {
  int64_t N, C, H, W;
};

// Training-mode batch norm in double. Returns y; writes batch mean and biased variance.
std::vector<double> ref_train(const Dims& d, const std::vector<double>& x, const std::vector<double>& gamma,
                              const std::vector<double>& beta, double eps, std::vector<double>* mean_out = nullptr,
                              std::vector<double>* var_out = nullptr) {
  const int64_t HW = d.H * d.W, M = d.N * HW;
  std::vector<double> y(x.size());
  for (int64_t c = 0; c < d.C; ++c) {
    double mean = 0, var = 0;
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t i = 0; i < HW; ++i) mean += x[static_cast<size_t>((n * d.C + c) * HW + i)];
    mean /= double(M);
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        double v = x[static_cast<size_t>((n * d.C + c) * HW + i)] - mean;
        var += v * v;
      }
    var /= double(M);
    if (mean_out) mean_out->push_back(mean);
    if (var_out) var_out->push_back(var);
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        size_t k = static_cast<size_t>((n * d.C + c) * HW + i);
        y[k] = (x[k] - mean) / std::sqrt(var + eps) * gamma[static_cast<size_t>(c)] + beta[static_cast<size_t>(c)];
      }
  }
  return y;
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

const std::vector<Dims> kDims = {{2, 3, 5, 7}, {1, 5, 31, 33}, {4, 16, 8, 8}, {3, 7, 1, 1}, {128, 2, 3, 3}};

}  // namespace

TEST(BatchNorm2d, TrainingForwardMatchesReference) {
  uint32_t seed = 1;
  for (const Dims& d : kDims) {
    const int64_t C = d.C;
    // An offset mean (3) checks the two-pass variance does not cancel.
    auto x = test::random_vector(static_cast<size_t>(d.N * C * d.H * d.W), seed++, 2.0f, 4.0f);
    auto gamma = test::random_vector(static_cast<size_t>(C), seed++, 0.5f, 1.5f);
    auto beta = test::random_vector(static_cast<size_t>(C), seed++);
    std::vector<double> mean, var;
    auto ref = ref_train(d, to_double(x), to_double(gamma), to_double(beta), 1e-5, &mean, &var);
    Tensor rm = Tensor::full({C}, 0.5f), rv = Tensor::full({C}, 2.0f);
    Tensor y = ops::batch_norm2d(Tensor::from_vector(x, {d.N, C, d.H, d.W}), Tensor::from_vector(gamma, {C}),
                                 Tensor::from_vector(beta, {C}), rm, rv, true, 0.1f, 1e-5f);
    EXPECT_TRUE(test::all_close(y, to_float(ref), 1e-4f, 1e-4f)) << d.N << "x" << C << "x" << d.H << "x" << d.W;
    // PyTorch: running = 0.9 * running + 0.1 * batch, with the unbiased variance for running_var.
    const double M = double(d.N * d.H * d.W);
    std::vector<float> rm_ref, rv_ref;
    for (int64_t c = 0; c < C; ++c) {
      rm_ref.push_back(float(0.9 * 0.5 + 0.1 * mean[static_cast<size_t>(c)]));
      rv_ref.push_back(float(0.9 * 2.0 + 0.1 * var[static_cast<size_t>(c)] * M / (M - 1)));
    }
    EXPECT_TRUE(test::all_close(rm, rm_ref, 1e-6f, 1e-5f));
    EXPECT_TRUE(test::all_close(rv, rv_ref, 1e-6f, 1e-5f));
  }
}

TEST(BatchNorm2d, EvalForwardUsesRunningStatistics) {
  const Dims d{3, 5, 4, 6};
  auto x = test::random_vector(static_cast<size_t>(d.N * d.C * d.H * d.W), 3);
  auto gamma = test::random_vector(5, 4), beta = test::random_vector(5, 5);
  auto rm = test::random_vector(5, 6), rv = test::random_vector(5, 7, 0.5f, 2.0f);
  std::vector<float> ref(x.size());
  for (size_t k = 0; k < x.size(); ++k) {
    size_t c = (k / static_cast<size_t>(d.H * d.W)) % 5;
    ref[k] = float((x[k] - double(rm[c])) / std::sqrt(double(rv[c]) + 1e-5) * gamma[c] + beta[c]);
  }
  Tensor rmt = Tensor::from_vector(rm, {5}), rvt = Tensor::from_vector(rv, {5});
  Tensor y = ops::batch_norm2d(Tensor::from_vector(x, {d.N, d.C, d.H, d.W}), Tensor::from_vector(gamma, {5}),
                               Tensor::from_vector(beta, {5}), rmt, rvt, false);
  EXPECT_TRUE(test::all_close(y, ref, 1e-5f, 1e-5f));
  EXPECT_EQ(rmt.to_vector(), rm);  // eval leaves the statistics alone
  EXPECT_EQ(rvt.to_vector(), rv);
}

// Gradients of L = sum(r * y) for every input, against central differences of the double reference (eps 1e-5,
// where double's rounding error is ~1e-11 and the truncation error ~1e-10).
TEST(BatchNorm2d, TrainingGradientMatchesDoubleFiniteDifferences) {
  for (const Dims& d : {Dims{2, 3, 3, 4}, Dims{5, 2, 1, 1}, Dims{1, 4, 5, 3}}) {
    const int64_t C = d.C;
    const size_t n = static_cast<size_t>(d.N * C * d.H * d.W);
    auto x = test::random_vector(n, 11), gamma = test::random_vector(static_cast<size_t>(C), 12, 0.5f, 1.5f);
    auto beta = test::random_vector(static_cast<size_t>(C), 13), r = test::random_vector(n, 14);
    Tensor xt = Tensor::from_vector(x, {d.N, C, d.H, d.W}).set_requires_grad(true);
    Tensor gt = Tensor::from_vector(gamma, {C}).set_requires_grad(true);
    Tensor bt = Tensor::from_vector(beta, {C}).set_requires_grad(true);
    Tensor y = ops::batch_norm2d(xt, gt, bt, Tensor::zeros({C}), Tensor::full({C}, 1.0f), true);
    test::weighted_sum(y, r).backward();

    std::vector<std::vector<double>> in{to_double(x), to_double(gamma), to_double(beta)};
    auto loss = [&](const std::vector<std::vector<double>>& v) {
      auto yy = ref_train(d, v[0], v[1], v[2], 1e-5);
      double s = 0;
      for (size_t i = 0; i < yy.size(); ++i) s += yy[i] * r[i];
      return s;
    };
    std::vector<Tensor> ts{xt, gt, bt};
    for (size_t k = 0; k < 3; ++k) {
      std::vector<float> numeric;
      for (size_t i = 0; i < in[k].size(); ++i) {
        auto p = in, m = in;
        p[k][i] += 1e-5;
        m[k][i] -= 1e-5;
        numeric.push_back(float((loss(p) - loss(m)) / 2e-5));
      }
      EXPECT_TRUE(test::all_close(ts[k].grad(), numeric, 1e-4f, 1e-3f)) << "input " << k << " N" << d.N;
    }
  }
}

TEST(BatchNorm2d, EvalGradientMatchesFiniteDifferences) {
  // Eval mode is affine in x, gamma and beta: float32 central differences are exact up to rounding.
  Tensor x = test::random_tensor({2, 3, 4, 5}, 21).set_requires_grad(true);
  Tensor g = test::random_tensor({3}, 22, 0.5f, 1.5f).set_requires_grad(true);
  Tensor b = test::random_tensor({3}, 23).set_requires_grad(true);
  Tensor rm = test::random_tensor({3}, 24), rv = test::random_tensor({3}, 25, 0.5f, 2.0f);
  EXPECT_TRUE(test::grad_check(
      [rm, rv](const std::vector<Tensor>& in) { return ops::batch_norm2d(in[0], in[1], in[2], rm, rv, false); },
      {x, g, b}, 1e-2f, 1e-3f, 1e-3f));
}

TEST(BatchNorm2d, KernelIsDeterministicAndThreadCountIndependent) {
  const int64_t N = 8, C = 6, HW = 1000;  // above the kernel's OpenMP threshold
  auto x = test::random_vector(static_cast<size_t>(N * C * HW), 31);
  auto dy = test::random_vector(x.size(), 32);
  std::vector<float> g(C, 1.3f), b(C, 0.1f);
  auto run = [&](int threads) {
    cpu::set_num_threads(threads);
    std::vector<float> rm(C, 0.f), rv(C, 1.f), y(x.size()), sm(C), si(C), dx(x.size()), dg(C), db(C);
    cpu::batch_norm_forward_train(N, C, HW, x.data(), g.data(), b.data(), rm.data(), rv.data(), 0.1f, 1e-5f,
                                  y.data(), sm.data(), si.data());
    cpu::batch_norm_backward(N, C, HW, x.data(), dy.data(), g.data(), sm.data(), si.data(), dx.data(), dg.data(),
                             db.data());
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), dg.begin(), dg.end());
    return y;
  };
  const int before = cpu::num_threads();
  auto a = run(1), c = run(2);
  cpu::set_num_threads(before);
  EXPECT_EQ(a, c);
}

TEST(BatchNorm2d, BoundaryErrorsNameOpAndShapes) {
  try {
    ops::batch_norm2d(Tensor::zeros({2, 3, 4, 4}), Tensor::zeros({4}), Tensor::zeros({3}), Tensor::zeros({3}),
                      Tensor::zeros({3}), true);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("batch_norm2d"), std::string::npos) << m;
    EXPECT_NE(m.find("[4]"), std::string::npos) << m;
    EXPECT_NE(m.find("[3]"), std::string::npos) << m;
  }
  // One value per channel has no batch variance (PyTorch refuses too).
  EXPECT_THROW(ops::batch_norm2d(Tensor::zeros({1, 3, 1, 1}), Tensor::zeros({3}), Tensor::zeros({3}),
                                 Tensor::zeros({3}), Tensor::zeros({3}), true),
               Error);
}
