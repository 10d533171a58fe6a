// Fused DKD loss on the CPU (kernels/cpu/dkd_loss.cpp through ops::dkd_loss): against an unfused double-precision
// reference written from the definitions (full softmaxes, binary masses, renormalised non-target distributions) at
// awkward sizes, finite differences, extreme logits, one class, the warm-up factor, label and shape errors,
// thread-count independence. PyTorch's numbers: distill_losses_torch_test.cpp; CUDA: cuda_dkd_loss_test.cpp.
#include <cmath>
#include <random>

#include "engine/distill/dkd.h"
#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/kd_reference.h"

using namespace islkd;

namespace {

std::vector<int32_t> random_labels(int64_t rows, int64_t C, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> y(static_cast<size_t>(rows));
  for (auto& v : y) v = static_cast<int32_t>(rng() % static_cast<uint32_t>(C));
  return y;
}

struct RefDKD {
  std::vector<double> row;  // per-row total
  double tckd = 0, nckd = 0, ce = 0, total = 0;
};

// Straight from the definitions, in double, nothing shared with the kernel.
RefDKD ref_dkd(int64_t rows, int64_t C, const std::vector<float>& s, const std::vector<float>& t,
               const std::vector<int32_t>& y, const ops::DKDLossParams& p) {
  auto softmax = [](const float* x, int64_t n, double T) {
    double m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j] / T);
    std::vector<double> e(static_cast<size_t>(n));
    double z = 0;
    for (int64_t j = 0; j < n; ++j) z += e[j] = std::exp(x[j] / T - m);
    for (auto& v : e) v /= z;
    return e;
  };
  RefDKD r;
  const double T = p.temperature, a = p.alpha * p.warmup, b = p.beta * p.warmup;
  for (int64_t i = 0; i < rows; ++i) {
    const float* si = s.data() + i * C;
    const float* ti = t.data() + i * C;
    const int32_t yi = y[static_cast<size_t>(i)];
    const auto P = softmax(si, C, T), Q = softmax(ti, C, T), P1 = softmax(si, C, 1.0);
    double tckd = 0, nckd = 0;
    if (C > 1) {
      const double bs = P[yi], bt = Q[yi], os = 1 - bs, ot = 1 - bt;
      tckd = T * T * (bt * std::log(bt / bs) + ot * std::log(ot / os));
      for (int64_t j = 0; j < C; ++j)
        if (j != yi) nckd += Q[j] / ot * std::log((Q[j] / ot) / (P[j] / os));
      nckd *= T * T;
    }
    const double ce = C > 1 ? -std::log(P1[yi]) : 0.0;
    r.row.push_back(p.ce_weight * ce + a * tckd + b * nckd);
    r.tckd += tckd / rows;
    r.nckd += nckd / rows;
    r.ce += ce / rows;
  }
  r.total = p.ce_weight * r.ce + a * r.tckd + b * r.nckd;
  return r;
}

struct OpResult {
  float loss;
  std::vector<float> parts, row, grad;
};
OpResult run_op(int64_t rows, int64_t C, const std::vector<float>& s, const std::vector<float>& t,
                const std::vector<int32_t>& y, const ops::DKDLossParams& p) {
  Tensor st = Tensor::from_vector(s, {rows, C}).set_requires_grad(true);
  ops::DKDLossOutput o = ops::dkd_loss(st, Tensor::from_vector(t, {rows, C}), Tensor::from_labels(y), p);
  o.loss.backward();
  return {o.loss.item(), o.parts.to_vector(), o.row_loss.to_vector(), st.grad().to_vector()};
}

}  // namespace

TEST(DKDLoss, MatchesDefinitionsAtAwkwardSizes) {
  const ops::DKDLossParams settings[] = {{}, {2.0f, 0.5f, 2.0f, 0.3f, 1.0f}, {4.0f, 1.0f, 8.0f, 1.0f, 0.15f}};
  uint32_t seed = 1;
  for (int64_t C : {2, 10, 31, 33, 100, 1000})
    for (int64_t rows : {1, 31, 33}) {
      const ops::DKDLossParams& p = settings[seed % 3];
      ++seed;
      const size_t n = static_cast<size_t>(rows * C);
      auto s = test::random_vector(n, seed, -6.0f, 6.0f), t = test::random_vector(n, seed + 500, -6.0f, 6.0f);
      auto y = random_labels(rows, C, seed);
      SCOPED_TRACE(::testing::Message() << rows << " x " << C);
      const RefDKD ref = ref_dkd(rows, C, s, t, y, p);
      const OpResult o = run_op(rows, C, s, t, y, p);
      EXPECT_TRUE(test::all_close({o.loss}, {static_cast<float>(ref.total)}, 1e-6f, 1e-5f));
      EXPECT_TRUE(test::all_close(o.parts, {static_cast<float>(ref.tckd), static_cast<float>(ref.nckd),
                                            static_cast<float>(ref.ce)},
                                  1e-6f, 1e-5f));
      EXPECT_TRUE(test::all_close(o.row, test::to_float(ref.row), 1e-6f, 1e-5f));
    }
}

TEST(DKDLoss, GradientMatchesFiniteDifferences) {
  for (const ops::DKDLossParams& p : {ops::DKDLossParams{}, ops::DKDLossParams{1.5f, 0.7f, 3.0f, 0.0f, 0.5f}})
    for (int64_t C : {2, 7, 33}) {
      const int64_t rows = 5;
      Tensor s = test::random_tensor({rows, C}, 11, -2.0f, 2.0f).set_requires_grad(true);
      Tensor t = test::random_tensor({rows, C}, 12, -3.0f, 3.0f);
      Tensor y = Tensor::from_labels(random_labels(rows, C, 13));
      EXPECT_TRUE(test::grad_check([&](const std::vector<Tensor>& in) { return ops::dkd_loss(in[0], t, y, p).loss; },
                                   {s}, 1e-2f, 2e-4f, 3e-3f))
          << "C=" << C << " T=" << p.temperature;
    }
}

TEST(DKDLoss, HugeLogitsAndDominantTargetsStayFinite) {
  const int64_t C = 5;
  // A target that dominates by 1e4 (non-target mass ~ exp(-2500)), all equal, huge magnitudes, disagreeing rows.
  std::vector<float> s = {1e4f, 0, 0, 0, 0, 3, 3, 3, 3, 3, -1e4f, -1e4f + 1, -1e4f, -1e4f - 2, -1e4f, 1e4f, -1e4f, 0, 5, 1};
  std::vector<float> t = {1e4f, 0, 1, 0, 0, 0, 0, 0, 0, 9, -1e4f, -1e4f, -1e4f + 3, -1e4f, -1e4f, -1e4f, 1e4f, 0, 5, 1};
  std::vector<int32_t> y = {0, 4, 2, 1};
  const OpResult o = run_op(4, C, s, t, y, ops::DKDLossParams{});
  ASSERT_TRUE(std::isfinite(o.loss));
  for (float v : o.row) EXPECT_TRUE(std::isfinite(v));
  for (float v : o.grad) EXPECT_TRUE(std::isfinite(v));
  for (float v : o.parts) EXPECT_TRUE(std::isfinite(v));
  // Rows sum their gradients to 0 (every term is a difference of distributions).
  for (int r = 0; r < 4; ++r) {
    double sum = 0;
    for (int j = 0; j < C; ++j) sum += o.grad[r * C + j];
    EXPECT_NEAR(sum, 0.0, 1e-6) << "row " << r;
  }
}

TEST(DKDLoss, OneClassIsZeroLossAndGradient) {
  const OpResult o = run_op(3, 1, {1.0f, -2.0f, 5.0f}, {0.0f, 3.0f, -1.0f}, {0, 0, 0}, ops::DKDLossParams{});
  EXPECT_EQ(o.loss, 0.0f);
  EXPECT_EQ(o.grad, std::vector<float>(3, 0.0f));
}

TEST(DKDLoss, WarmupFactorScalesTheDecoupledTermsOnly) {
  EXPECT_FLOAT_EQ(distill::dkd_warmup_factor(1), 0.05f);
  EXPECT_FLOAT_EQ(distill::dkd_warmup_factor(10), 0.5f);
  EXPECT_FLOAT_EQ(distill::dkd_warmup_factor(20), 1.0f);
  EXPECT_FLOAT_EQ(distill::dkd_warmup_factor(240), 1.0f);
  EXPECT_FLOAT_EQ(distill::dkd_warmup_factor(3, 0), 1.0f);
  EXPECT_THROW(distill::dkd_warmup_factor(-1), Error);
  auto s = test::random_vector(4 * 6, 1, -3, 3), t = test::random_vector(4 * 6, 2, -3, 3);
  std::vector<int32_t> y = {0, 5, 2, 3};
  ops::DKDLossParams p, half;
  half.warmup = 0.5f;
  const OpResult full = run_op(4, 6, s, t, y, p), warm = run_op(4, 6, s, t, y, half);
  EXPECT_EQ(full.parts, warm.parts);  // the parts are unweighted
  EXPECT_NEAR(warm.loss, full.parts[2] + 0.5f * (full.loss - full.parts[2]), 1e-5f);
}

TEST(DKDLoss, LabelOutOfRangeAndShapeErrorsNameTheOp) {
  try {
    ops::dkd_loss(Tensor::zeros({4, 10}), Tensor::zeros({4, 10}), Tensor::from_labels({0, 9, 10, 3}), {});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("dkd_loss"), std::string::npos) << m;
    EXPECT_NE(m.find("label 10 of row 2"), std::string::npos) << m;
  }
  try {
    ops::dkd_loss(Tensor::zeros({4, 10}), Tensor::zeros({4, 9}), Tensor::from_labels({0, 1, 2, 3}), {});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("dkd_loss"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 9]"), std::string::npos) << m;
  }
  ops::DKDLossParams bad;
  bad.temperature = 0.0f;
  EXPECT_THROW(ops::dkd_loss(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}), Tensor::from_labels({0, 1}), bad), Error);
  EXPECT_THROW(ops::dkd_loss(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}), Tensor::zeros({2}), {}), Error);
}

TEST(DKDLoss, TeacherIsConstantAndUpstreamGradientScales) {
  Tensor s = test::random_tensor({3, 5}, 1).set_requires_grad(true);
  Tensor t = test::random_tensor({3, 5}, 2).set_requires_grad(true);
  Tensor y = Tensor::from_labels({0, 1, 4});
  ops::dkd_loss(s, t, y, {}).loss.backward();
  EXPECT_FALSE(t.grad().defined());
  const std::vector<float> g1 = s.grad().to_vector();
  s.zero_grad();
  ops::scale(ops::dkd_loss(s, t, y, {}).loss, 3.0f).backward();
  std::vector<float> expect = g1;
  for (float& v : expect) v *= 3.0f;
  EXPECT_TRUE(test::all_close(s.grad().to_vector(), expect, 0.0f, 1e-6f));
}

TEST(DKDLoss, ResultDoesNotDependOnThreadCount) {
  const int64_t rows = 97, C = 1000;
  auto s = test::random_vector(rows * C, 5, -4, 4), t = test::random_vector(rows * C, 6, -4, 4);
  auto y = random_labels(rows, C, 7);
  const int saved = cpu::num_threads();
  cpu::set_num_threads(1);
  const OpResult one = run_op(rows, C, s, t, y, {});
  cpu::set_num_threads(2);
  const OpResult two = run_op(rows, C, s, t, y, {});
  cpu::set_num_threads(saved);
  EXPECT_EQ(one.loss, two.loss);
  EXPECT_EQ(one.row, two.row);
  EXPECT_EQ(one.grad, two.grad);
}
