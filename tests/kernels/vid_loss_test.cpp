// VID's Gaussian negative log-likelihood (kernels/cpu/vid_loss.cpp, ops::vid_loss): against a plain double reference,
// by central finite differences w.r.t. the prediction and the log-variance, and the op's gradients on the tape. The
// PyTorch reference of the whole VIDLoss is tests/engine/objective_vid_test.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

double reference(int64_t N, int64_t C, int64_t HW, const std::vector<float>& p, const std::vector<float>& t,
                 const std::vector<float>& ls, double eps) {
  double s = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const double v = std::log(1.0 + std::exp(static_cast<double>(ls[c]))) + eps;
      for (int64_t k = 0; k < HW; ++k) {
        const double d = static_cast<double>(p[(n * C + c) * HW + k]) - t[(n * C + c) * HW + k];
        s += 0.5 * (d * d / v + std::log(v));
      }
    }
  return s / static_cast<double>(N * C * HW);
}

}  // namespace

TEST(VidLoss, MatchesThePlainReferenceAndFiniteDifferences) {
  for (auto [N, C, HW] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {2, 3, 5}, {3, 31, 4}}) {
    SCOPED_TRACE(::testing::Message() << N << " x " << C << " x " << HW);
    auto p = test::random_vector(static_cast<size_t>(N * C * HW), 1, -2, 2);
    const auto t = test::random_vector(p.size(), 2, -2, 2);
    auto ls = test::random_vector(static_cast<size_t>(C), 3, -3, 3);
    std::vector<float> dp(p.size()), dls(ls.size());
    const float loss = cpu::vid_loss_forward_backward(N, C, HW, p.data(), t.data(), ls.data(), 1e-5f, dp.data(),
                                                      dls.data());
    EXPECT_NEAR(loss, reference(N, C, HW, p, t, ls, 1e-5), 1e-6 * (1 + std::fabs(loss)));
    const float h = 1e-2f;
    auto fd = [&](std::vector<float>& x, size_t i) {
      const float v = x[i];
      x[i] = v + h;
      const double up = reference(N, C, HW, p, t, ls, 1e-5);
      x[i] = v - h;
      const double down = reference(N, C, HW, p, t, ls, 1e-5);
      x[i] = v;
      return static_cast<float>((up - down) / (2.0 * h));
    };
    std::vector<float> fp(p.size()), fl(ls.size());
    for (size_t i = 0; i < p.size(); ++i) fp[i] = fd(p, i);
    for (size_t i = 0; i < ls.size(); ++i) fl[i] = fd(ls, i);
    EXPECT_TRUE(test::all_close(dp, fp, 1e-5f, 1e-3f));
    EXPECT_TRUE(test::all_close(dls, fl, 1e-5f, 1e-3f));
  }
}

TEST(VidLoss, OpGradientsReachThePredictionAndTheLogScaleNotTheTarget) {
  Tensor p = Tensor::from_vector(test::random_vector(2 * 3 * 4, 1), {2, 3, 2, 2}).set_requires_grad(true);
  Tensor t = Tensor::from_vector(test::random_vector(2 * 3 * 4, 2), {2, 3, 2, 2}).set_requires_grad(true);
  Tensor ls = Tensor::from_vector({0.1f, -0.5f, 2.0f}, {3}).set_requires_grad(true);
  ops::scale(ops::vid_loss(p, t, ls, 1e-5f), 2.0f).backward();
  std::vector<float> dp(24), dls(3);
  cpu::vid_loss_forward_backward(2, 3, 4, p.to_vector().data(), t.to_vector().data(), ls.to_vector().data(), 1e-5f,
                                 dp.data(), dls.data());
  for (float& x : dp) x *= 2.0f;
  for (float& x : dls) x *= 2.0f;
  EXPECT_TRUE(test::all_close(p.grad(), dp, 0.0f, 0.0f));
  EXPECT_TRUE(test::all_close(ls.grad(), dls, 0.0f, 0.0f));
  EXPECT_FALSE(t.grad().defined());
  EXPECT_THROW(ops::vid_loss(p, t, Tensor::zeros({2}), 1e-5f), Error);
  EXPECT_THROW(ops::vid_loss(p, Tensor::zeros({2, 3, 1, 1}), ls, 1e-5f), Error);
}
