// The relational distillation losses (kernels/cpu/relational_losses.cpp; ops::sp_loss, ops::pkt_loss, ops::rkd_loss): against the
// PyTorch references of RepDistiller's modules (float64 autograd, tests/kernels/relational_losses_torch_ref.py) on the
// CPU and the emulated CUDA device at awkward sizes, loss and dL/dstudent within 1e-4 relative; and by central
// finite differences of the CPU kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/relational_torch.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

using CpuLoss = std::function<float(int64_t, int64_t, int64_t, const float*, const float*, float*)>;
using OpLoss = std::function<Tensor(const Tensor&, const Tensor&)>;

struct Named {
  const char* kind;
  CpuLoss cpu;
  OpLoss op;
};

const Named kLosses[] = {
    {"sp", cpu::sp_loss_forward_backward, ops::sp_loss},
    {"pkt", cpu::pkt_loss_forward_backward, ops::pkt_loss},
    // RepDistiller's RKDLoss defaults w_d 25, w_a 50 (distiller_zoo/RKD.py), as the torch reference's.
    {"rkd",
     [](int64_t N, int64_t Ds, int64_t Dt, const float* s, const float* t, float* ds) {
       return cpu::rkd_loss_forward_backward(N, Ds, Dt, s, t, 25.0f, 50.0f, ds);
     },
     [](const Tensor& s, const Tensor& t) { return ops::rkd_loss(s, t, 25.0f, 50.0f); }},
};

}  // namespace

TEST(RelationalLossesTorch, MatchRepDistillerOnCpuAndEmulatedCuda) {
  // student shape, teacher shape: flattened per instance; 4-D maps as SP's feat[-2], 2-D vectors as PKT's feat[-1].
  // A batch of 1 (all), 2 (RKD) or one value per instance (PKT) has a zero gradient, where a relative error means
  // nothing: RelationalLosses.DegenerateBatchesHaveNoGradient covers them.
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 3}, {3, 1}},         {{31, 33}, {31, 7}},
      {{33, 1000}, {33, 31}},   {{4, 8, 3, 3}, {4, 16, 3, 3}}, {{16, 31, 2, 2}, {16, 1, 1, 1}}};
  nlohmann::json cases = nlohmann::json::array();
  std::vector<std::pair<std::vector<float>, std::vector<float>>> data;
  uint32_t seed = 70;
  for (const Named& l : kLosses)
    for (const auto& [ss, ts] : shapes) {
      // ReLU'd features (non-negative, as the models' stage outputs) and signed ones (PKT's pooled vector is >= 0,
      // an embedding need not be).
      const float lo = seed % 2 ? 0.0f : -2.0f;
      auto s = test::random_vector(static_cast<size_t>(shape_numel(ss)), ++seed, lo, 2.0f);
      auto t = test::random_vector(static_cast<size_t>(shape_numel(ts)), ++seed, lo, 2.0f);
      cases.push_back({{"kind", l.kind}, {"student", s}, {"teacher", t}, {"student_shape", ss},
                       {"teacher_shape", ts}});
      data.emplace_back(s, t);
    }
  const nlohmann::json res = test::run_relational_torch(cases);
  ASSERT_EQ(res.size(), cases.size());
  double worst = 0;
  size_t k = 0;
  for (const Named& l : kLosses)
    for (const auto& [ss, ts] : shapes) {
      const auto& [s, t] = data[k];
      const nlohmann::json& r = res[k++];
      for (Device dev : {Device::CPU, Device::CUDA}) {
        SCOPED_TRACE(::testing::Message() << l.kind << " " << shape_str(ss) << " / " << shape_str(ts) << " "
                                          << device_name(dev));
        Tensor st = Tensor::from_vector(s, ss, dev).set_requires_grad(true);
        Tensor loss = l.op(st, Tensor::from_vector(t, ts, dev));
        ops::scale(loss, 3.0f).backward();  // the upstream gradient reaches dstudent
        std::vector<float> g = test::json_floats(r["grad"]);
        for (float& x : g) x *= 3.0f;
        const double el = test::max_relative_error(loss.to_vector(), {r["loss"].get<float>()});
        const double eg = test::max_relative_error(st.grad().to_vector(), g);
        EXPECT_LE(el, 1e-4);
        EXPECT_LE(eg, 1e-4);
        worst = std::max({worst, el, eg});
      }
    }
  std::printf("[ torch ] sp, pkt, rkd: worst max|diff|/max|ref| over loss and dstudent, CPU and emulated CUDA: %.3e\n",
              worst);
}

TEST(RelationalLosses, GradientsMatchCentralFiniteDifferences) {
  for (const Named& l : kLosses)
    for (auto [N, Ds, Dt] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 3, 2}, {5, 7, 4}, {9, 33, 31}}) {
      SCOPED_TRACE(::testing::Message() << l.kind << " " << N << " x " << Ds << "/" << Dt);
      auto s = test::random_vector(static_cast<size_t>(N * Ds), 3, -1.0f, 1.0f);
      const auto t = test::random_vector(static_cast<size_t>(N * Dt), 4, -1.0f, 1.0f);
      std::vector<float> g(s.size());
      l.cpu(N, Ds, Dt, s.data(), t.data(), g.data());
      std::vector<float> fd(s.size());
      const float h = 1e-2f;
      for (size_t i = 0; i < s.size(); ++i) {
        const float x = s[i];
        s[i] = x + h;
        const double up = l.cpu(N, Ds, Dt, s.data(), t.data(), nullptr);
        s[i] = x - h;
        const double down = l.cpu(N, Ds, Dt, s.data(), t.data(), nullptr);
        s[i] = x;
        fd[i] = static_cast<float>((up - down) / (2.0 * h));
      }
      float gmax = 1e-6f;
      for (float v : g) gmax = std::max(gmax, std::fabs(v));
      EXPECT_TRUE(test::all_close(fd, g, 2e-3f * gmax, 2e-2f));
    }
}

TEST(RelationalLosses, TeacherGetsNoGradientAndBatchMismatchIsAnError) {
  Tensor s = Tensor::from_vector(test::random_vector(12, 1), {3, 4}).set_requires_grad(true);
  Tensor t = Tensor::from_vector(test::random_vector(15, 2), {3, 5}).set_requires_grad(true);
  ops::add(ops::add(ops::sp_loss(s, t), ops::pkt_loss(s, t)), ops::rkd_loss(s, t, 25.0f, 50.0f)).backward();
  EXPECT_TRUE(s.grad().defined());
  EXPECT_FALSE(t.grad().defined());
  EXPECT_THROW(ops::sp_loss(s, Tensor::zeros({2, 4})), Error);
  EXPECT_THROW(ops::pkt_loss(s, Tensor::zeros({4, 4})), Error);
  EXPECT_THROW(ops::rkd_loss(s, Tensor::zeros({4, 4}), 25.0f, 50.0f), Error);
}

TEST(RelationalLosses, DegenerateBatchesHaveNoGradient) {
  // One instance: its only relation is with itself (SP's normalised Gram row and PKT's conditional are 1; RKD has no
  // pair, upstream's mean over none is NaN, here 0). Two instances: RKD's one distance is its own mean and every
  // angle is 0 or +-1 for any features. One value per instance: PKT's unit vectors are +-1 whatever the
  // value. The losses are then constant in the student.
  struct Case {
    const Named& loss;
    int64_t N, Ds;
  };
  for (const Case& c : {Case{kLosses[0], 1, 3}, Case{kLosses[0], 1, 1000}, Case{kLosses[1], 1, 3},
                        Case{kLosses[1], 2, 1}, Case{kLosses[1], 7, 1}, Case{kLosses[2], 1, 5}, Case{kLosses[2], 2, 7}}) {
    SCOPED_TRACE(::testing::Message() << c.loss.kind << " " << c.N << " x " << c.Ds);
    const auto s = test::random_vector(static_cast<size_t>(c.N * c.Ds), 5, 0.5f, 2.0f);
    const auto t = test::random_vector(static_cast<size_t>(c.N * 3), 6, -1.0f, 1.0f);
    std::vector<float> g(s.size());
    const float loss = c.loss.cpu(c.N, c.Ds, 3, s.data(), t.data(), g.data());
    EXPECT_TRUE(std::isfinite(loss));
    for (float v : g) EXPECT_LE(std::fabs(v), 1e-5f);
  }
}
