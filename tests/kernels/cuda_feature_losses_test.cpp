// Feature-distillation kernels on CUDA (kernels/cuda/feature_losses.cu: attention transfer and the mean squared
// error) under the emulator against the CPU kernels at awkward sizes (1, 31, 33, 1000, non-powers of two), the ops
// on device tensors with their backward, and the deterministic sums.
#include <cmath>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

TEST(AtLossCuda, MatchesCpuAtAwkwardSizes) {
  struct Size {
    int64_t N, Cs, Ct, HW;
  };
  const Size sizes[] = {{1, 1, 1, 1}, {1, 31, 33, 1}, {3, 33, 31, 31}, {2, 16, 64, 1000}, {33, 3, 5, 64},
                        {1, 7, 9, 4097}};
  uint32_t seed = 5;
  for (const Size& z : sizes) {
    SCOPED_TRACE(::testing::Message() << z.N << " x " << z.Cs << "/" << z.Ct << " x " << z.HW);
    const auto s = test::random_vector(z.N * z.Cs * z.HW, ++seed, -2, 2);
    const auto t = test::random_vector(z.N * z.Ct * z.HW, ++seed, -2, 2);
    std::vector<float> grad(s.size());
    const float loss = cpu::at_loss_forward_backward(z.N, z.Cs, z.Ct, z.HW, s.data(), t.data(), grad.data());
    DeviceVec<float> ds(s), dt(t), dgrad(s.size()), dloss(1);
    cuda::at_loss_forward_backward(z.N, z.Cs, z.Ct, z.HW, ds.get(), dt.get(), dgrad.get(), dloss.get());
    EXPECT_NEAR(dloss.host()[0], loss, 1e-7f + 1e-4f * loss);
    float gmax = 0;
    for (float g : grad) gmax = std::max(gmax, std::fabs(g));
    EXPECT_TRUE(all_close(dgrad.host(), grad, 1e-4f * gmax + 1e-12f, 1e-3f));
  }
}

TEST(MseLossCuda, MatchesCpuAtAwkwardSizesAndIsDeterministic) {
  for (int64_t n : {1, 31, 33, 1000, 4097, 1000003}) {
    SCOPED_TRACE(n);
    const auto a = test::random_vector(n, 1, -3, 3), b = test::random_vector(n, 2, -3, 3);
    std::vector<float> da(n);
    const float loss = cpu::mse_loss_forward_backward(n, a.data(), b.data(), da.data());
    DeviceVec<float> ga(a), gb(b), gda(n), gl(1), gl2(1);
    cuda::mse_loss_forward_backward(n, ga.get(), gb.get(), gda.get(), gl.get());
    cuda::mse_loss_forward_backward(n, ga.get(), gb.get(), nullptr, gl2.get());
    EXPECT_NEAR(gl.host()[0], loss, 1e-5f * loss);
    EXPECT_EQ(gl.host()[0], gl2.host()[0]);
    EXPECT_TRUE(all_close(gda.host(), da, 1e-12f, 1e-5f));
  }
}

TEST(FeatureLossesCuda, OpsOnDeviceTensorsMatchCpuOps) {
  const auto s = test::random_vector(3 * 5 * 6 * 6, 1, -2, 2), t = test::random_vector(3 * 7 * 6 * 6, 2, -2, 2);
  const auto u = test::random_vector(3 * 5 * 6 * 6, 3, -2, 2);
  std::vector<float> at[2], mse[2], gs[2], gu[2];
  int i = 0;
  for (Device dev : {Device::CPU, Device::CUDA}) {
    Tensor st = Tensor::from_vector(s, {3, 5, 6, 6}, dev).set_requires_grad(true);
    Tensor ut = Tensor::from_vector(u, {3, 5, 6, 6}, dev).set_requires_grad(true);
    Tensor a = ops::at_loss(st, Tensor::from_vector(t, {3, 7, 6, 6}, dev));
    Tensor m = ops::mse_loss(st, ut);
    EXPECT_EQ(a.device(), dev);
    ops::add(ops::scale(a, 100.0f), ops::scale(m, 0.5f)).backward();
    at[i] = a.to_vector();
    mse[i] = m.to_vector();
    gs[i] = st.grad().to_vector();
    gu[i++] = ut.grad().to_vector();
  }
  EXPECT_TRUE(all_close(at[1], at[0], 1e-8f, 1e-4f));
  EXPECT_TRUE(all_close(mse[1], mse[0], 1e-8f, 1e-5f));
  EXPECT_TRUE(all_close(gs[1], gs[0], 1e-7f, 1e-3f));
  EXPECT_TRUE(all_close(gu[1], gu[0], 1e-8f, 1e-5f));
}
