// Fused KD loss: CPU against an unfused double-precision reference, finite differences, extreme logits, PyTorch's
// kl_div/cross_entropy values (through /usr/bin/python3), label and shape errors, thread-count independence.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

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

// The op (engine path): loss, parts, row losses and dL/dstudent via backward().
struct OpResult {
  float loss, mean_kd, mean_ce;
  std::vector<float> row_loss, grad;
};
OpResult run_op(int64_t rows, int64_t C, const std::vector<float>& s, const std::vector<float>& t,
                const std::vector<int32_t>& y, const KDLossParams& p) {
  Tensor st = Tensor::from_vector(s, {rows, C}).set_requires_grad(true);
  ops::KDLossOutput out = ops::kd_loss(st, Tensor::from_vector(t, {rows, C}), Tensor::from_labels(y), p);
  out.loss.backward();
  return {out.loss.item(), out.mean_kd, out.mean_ce, out.row_loss.to_vector(), st.grad().to_vector()};
}

void expect_matches_reference(int64_t rows, int64_t C, const std::vector<float>& s, const std::vector<float>& t,
                              const std::vector<int32_t>& y, const KDLossParams& p, float rtol,
                              const std::string& what) {
  test::RefKD ref = test::ref_kd(rows, C, s, t, y, p.temperature, p.alpha);
  OpResult r = run_op(rows, C, s, t, y, p);
  EXPECT_TRUE(test::all_close({r.loss}, {static_cast<float>(ref.mean_loss)}, 1e-6f, rtol)) << what << " total";
  EXPECT_TRUE(test::all_close({r.mean_kd}, {static_cast<float>(ref.mean_kd)}, 1e-6f, rtol)) << what << " kd";
  EXPECT_TRUE(test::all_close({r.mean_ce}, {static_cast<float>(ref.mean_ce)}, 1e-6f, rtol)) << what << " ce";
  EXPECT_TRUE(test::all_close(r.row_loss, test::to_float(ref.loss), 1e-6f, rtol)) << what << " row loss";
  // Gradient entries are O(1/rows); an absolute floor well below that.
  EXPECT_TRUE(test::all_close(r.grad, test::to_float(ref.grad), 1e-8f, rtol)) << what << " dstudent";
  for (float g : r.grad) ASSERT_TRUE(std::isfinite(g)) << what;
}

}  // namespace

TEST(KDLoss, MatchesUnfusedDoubleReference) {
  const KDLossParams settings[] = {{4.0f, 0.9f}, {1.0f, 0.5f}, {2.5f, 0.0f}, {8.0f, 1.0f}};
  uint32_t seed = 1;
  for (int64_t C : {1, 2, 10, 100, 1000, 5000})
    for (int64_t rows : {1, 31, 33}) {
      const KDLossParams& p = settings[seed % 4];
      ++seed;
      std::vector<float> s = test::random_vector(static_cast<size_t>(rows * C), seed, -6.0f, 6.0f);
      std::vector<float> t = test::random_vector(static_cast<size_t>(rows * C), seed + 1000, -8.0f, 8.0f);
      std::vector<int32_t> y = random_labels(rows, C, seed);
      expect_matches_reference(rows, C, s, t, y, p, 2e-5f,
                               "C=" + std::to_string(C) + " rows=" + std::to_string(rows) +
                                   " T=" + std::to_string(p.temperature) + " alpha=" + std::to_string(p.alpha));
    }
}

TEST(KDLoss, GradientMatchesFiniteDifferences) {
  for (const KDLossParams& p : {KDLossParams{4.0f, 0.9f}, KDLossParams{1.0f, 0.3f}}) {
    const int64_t rows = 5, C = 7;
    Tensor s = test::random_tensor({rows, C}, 11, -2.0f, 2.0f).set_requires_grad(true);
    Tensor t = test::random_tensor({rows, C}, 12, -3.0f, 3.0f);
    Tensor y = Tensor::from_labels(random_labels(rows, C, 13));
    EXPECT_TRUE(test::grad_check(
        [&](const std::vector<Tensor>& in) { return ops::kd_loss(in[0], t, y, p).loss; }, {s}, 1e-2f, 2e-4f, 2e-3f))
        << "T=" << p.temperature << " alpha=" << p.alpha;
  }
}

TEST(KDLoss, HugeAndTinyLogitsStayFiniteAndMatch) {
  const int64_t C = 6;
  // Rows: all huge positive, all huge negative, mixed +-1e4, teacher and student disagreeing at 1e4, tiny values,
  // and a row where one class dominates by 1e4 (probabilities underflow to exactly 0).
  std::vector<float> s = {1e4f,  1e4f + 2, 1e4f - 3, 1e4f, 1e4f + 1, 1e4f,  -1e4f, -1e4f + 1, -1e4f, -1e4f - 5,
                          -1e4f, -1e4f,    1e4f,     -1e4f, 0,       5e3f, -5e3f, 1,         -1e4f, 1e4f,
                          0,     0,        0,        0,     1e-30f,  -1e-30f, 1e-38f, 0,     3e-7f, -2e-7f,
                          1e4f,  0,        0,        0,     0,       0};
  std::vector<float> t = {1e4f,  1e4f - 1, 1e4f, 1e4f + 4, 1e4f,  1e4f,  -1e4f, -1e4f, -1e4f + 2, -1e4f,
                          -1e4f, -1e4f,    -1e4f, 1e4f,    0,     -5e3f, 5e3f,  1,     1e4f,      -1e4f,
                          0,     0,        0,     0,       1e-30f, 2e-30f, 0,   -1e-38f, 0,       1e-7f,
                          0,     0,        1e4f,  0,       0,     0};
  std::vector<int32_t> y = {1, 3, 0, 1, 2, 0};
  for (const KDLossParams& p : {KDLossParams{4.0f, 0.9f}, KDLossParams{1.0f, 0.5f}}) {
    test::RefKD ref = test::ref_kd(6, C, s, t, y, p.temperature, p.alpha);
    OpResult r = run_op(6, C, s, t, y, p);
    ASSERT_TRUE(std::isfinite(r.loss) && std::isfinite(r.mean_kd) && std::isfinite(r.mean_ce));
    for (float v : r.row_loss) ASSERT_TRUE(std::isfinite(v));
    for (float v : r.grad) ASSERT_TRUE(std::isfinite(v));
    EXPECT_TRUE(test::all_close(r.row_loss, test::to_float(ref.loss), 1e-5f, 1e-5f)) << "T=" << p.temperature;
    EXPECT_TRUE(test::all_close(r.grad, test::to_float(ref.grad), 1e-7f, 1e-5f)) << "T=" << p.temperature;
    EXPECT_TRUE(test::all_close({r.loss}, {static_cast<float>(ref.mean_loss)}, 1e-5f, 1e-5f));
  }
}

TEST(KDLoss, MatchesPyTorchKlDivAndCrossEntropy) {
  struct Case {
    int64_t rows, C;
    KDLossParams p;
    std::vector<float> s, t;
    std::vector<int32_t> y;
  };
  std::vector<Case> cases;
  uint32_t seed = 100;
  for (auto [rows, C, T, alpha, range] :
       std::vector<std::tuple<int64_t, int64_t, float, float, float>>{{5, 10, 4.0f, 0.9f, 5.0f},
                                                                      {3, 1000, 2.0f, 0.5f, 10.0f},
                                                                      {4, 100, 1.0f, 0.0f, 3.0f},
                                                                      {2, 7, 4.0f, 1.0f, 80.0f}}) {
    ++seed;
    cases.push_back({rows, C, {T, alpha}, test::random_vector(static_cast<size_t>(rows * C), seed, -range, range),
                     test::random_vector(static_cast<size_t>(rows * C), seed + 50, -range, range),
                     random_labels(rows, C, seed)});
  }
  nlohmann::json in = nlohmann::json::array();
  for (const Case& c : cases) {
    nlohmann::json s = nlohmann::json::array(), t = nlohmann::json::array();
    for (int64_t i = 0; i < c.rows; ++i) {
      s.push_back(std::vector<float>(c.s.begin() + i * c.C, c.s.begin() + (i + 1) * c.C));
      t.push_back(std::vector<float>(c.t.begin() + i * c.C, c.t.begin() + (i + 1) * c.C));
    }
    in.push_back({{"student", s}, {"teacher", t}, {"labels", c.y}, {"T", c.p.temperature}, {"alpha", c.p.alpha}});
  }
  const std::string in_path =
      (std::filesystem::temp_directory_path() / ("islkd_kd_torch_" + std::to_string(getpid()) + ".json")).string();
  {
    std::ofstream f(in_path);
    f << in.dump();  // doubles printed with round-trip precision: torch sees exactly our floats
  }
  const std::string cmd =
      "/usr/bin/python3 " ISLKD_SOURCE_DIR "/tests/kernels/kd_loss_torch_ref.py " + in_path + " 2>&1";
  std::string output;
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << "cannot run " << cmd;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, got);
  int status = pclose(pipe);
  std::filesystem::remove(in_path);
  // A missing interpreter or torch is a failure: this test exists to pin our numbers to PyTorch's.
  ASSERT_EQ(status, 0) << "the PyTorch reference failed (is python3-torch installed for /usr/bin/python3?):\n"
                       << output;
  nlohmann::json res = nlohmann::json::parse(output);
  ASSERT_EQ(res["cases"].size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    const nlohmann::json& r = res["cases"][k];
    OpResult o = run_op(c.rows, c.C, c.s, c.t, c.y, c.p);
    std::vector<float> tgrad;
    for (const auto& row : r["grad"])
      for (double v : row) tgrad.push_back(static_cast<float>(v));
    SCOPED_TRACE("case " + std::to_string(k) + " (torch " + res["torch"].get<std::string>() + ")");
    EXPECT_TRUE(test::all_close({o.mean_kd}, {r["kd"].get<float>()}, 1e-5f, 1e-5f)) << "kd";
    EXPECT_TRUE(test::all_close({o.mean_ce}, {r["ce"].get<float>()}, 1e-5f, 1e-5f)) << "ce";
    EXPECT_TRUE(test::all_close({o.loss}, {r["total"].get<float>()}, 1e-5f, 1e-5f)) << "total";
    EXPECT_TRUE(test::all_close(o.grad, tgrad, 1e-7f, 1e-4f)) << "grad";
  }
}

TEST(KDLoss, LabelOutOfRangeNamesRowAndLabel) {
  for (int32_t bad : {10, -1}) {
    std::vector<int32_t> y = {0, 9, bad, 3};
    try {
      ops::kd_loss(Tensor::zeros({4, 10}), Tensor::zeros({4, 10}), Tensor::from_labels(y), KDLossParams{});
      FAIL() << "no error for label " << bad;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("kd_loss"), std::string::npos) << m;
      EXPECT_NE(m.find("row 2"), std::string::npos) << m;
      EXPECT_NE(m.find("label " + std::to_string(bad)), std::string::npos) << m;
    }
  }
}

TEST(KDLoss, ShapeMismatchNamesOpAndShapes) {
  try {
    ops::kd_loss(Tensor::zeros({4, 10}), Tensor::zeros({4, 9}), Tensor::from_labels({0, 1, 2, 3}), KDLossParams{});
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("kd_loss"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 9]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 10]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::kd_loss(Tensor::zeros({4, 10}), Tensor::zeros({4, 10}), Tensor::from_labels({0, 1, 2}),
                            KDLossParams{}),
               Error);
  EXPECT_THROW(ops::kd_loss(Tensor::zeros({4, 10}), Tensor::zeros({4, 10}), Tensor::zeros({4}), KDLossParams{}),
               Error);
  EXPECT_THROW(ops::kd_loss(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}), Tensor::from_labels({0, 1}),
                            KDLossParams{0.0f, 0.9f}),
               Error);
}

TEST(KDLoss, TeacherIsConstant) {
  Tensor s = test::random_tensor({3, 5}, 1).set_requires_grad(true);
  Tensor t = test::random_tensor({3, 5}, 2).set_requires_grad(true);
  ops::kd_loss(s, t, Tensor::from_labels({0, 1, 4}), KDLossParams{}).loss.backward();
  EXPECT_TRUE(s.grad().defined());
  EXPECT_FALSE(t.grad().defined());
}

TEST(KDLoss, UpstreamGradientScalesDstudent) {
  std::vector<float> s = test::random_vector(4 * 6, 3), t = test::random_vector(4 * 6, 4);
  std::vector<int32_t> y = {0, 5, 2, 3};
  OpResult base = run_op(4, 6, s, t, y, KDLossParams{});
  Tensor st = Tensor::from_vector(s, {4, 6}).set_requires_grad(true);
  ops::scale(ops::kd_loss(st, Tensor::from_vector(t, {4, 6}), Tensor::from_labels(y), KDLossParams{}).loss, 3.0f)
      .backward();
  std::vector<float> expect = base.grad;
  for (float& v : expect) v *= 3.0f;
  EXPECT_TRUE(test::all_close(st.grad().to_vector(), expect, 0.0f, 1e-6f));
}

TEST(KDLoss, ResultDoesNotDependOnThreadCount) {
  const int64_t rows = 97, C = 1000;
  std::vector<float> s = test::random_vector(rows * C, 5, -4, 4), t = test::random_vector(rows * C, 6, -4, 4);
  std::vector<int32_t> y = random_labels(rows, C, 7);
  const int saved = cpu::num_threads();
  cpu::set_num_threads(1);
  OpResult one = run_op(rows, C, s, t, y, KDLossParams{});
  cpu::set_num_threads(2);
  OpResult two = run_op(rows, C, s, t, y, KDLossParams{});
  cpu::set_num_threads(saved);
  EXPECT_EQ(one.loss, two.loss);
  EXPECT_EQ(one.row_loss, two.row_loss);
  EXPECT_EQ(one.grad, two.grad);
}
