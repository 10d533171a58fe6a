// The relational distillation kernels on CUDA (kernels/cuda/relational_losses.cu: SP, PKT, RKD) under the emulator
// against the CPU kernels at awkward sizes (1, 31, 33, 1000), with and without the gradient, and deterministic sums.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

namespace {

template <typename CpuFn, typename CudaFn>
void check_against_cpu(CpuFn cpu_fn, CudaFn cuda_fn, bool cubic = false) {
  struct Size {
    int64_t N, Ds, Dt;
  };
  // RKD's angles are N^3 D: its largest case stays at a batch of 33 under the emulator.
  const std::vector<Size> sizes =
      cubic ? std::vector<Size>{{1, 1, 1}, {2, 31, 33}, {31, 33, 1}, {33, 64, 31}, {3, 1000, 1000}}
            : std::vector<Size>{{1, 1, 1}, {1, 31, 33}, {31, 33, 1}, {33, 1000, 31}, {2, 1000, 1000}, {64, 257, 129}};
  uint32_t seed = 11;
  for (const Size& z : sizes) {
    SCOPED_TRACE(::testing::Message() << z.N << " x " << z.Ds << "/" << z.Dt);
    const auto s = test::random_vector(z.N * z.Ds, ++seed, -1, 2), t = test::random_vector(z.N * z.Dt, ++seed, -1, 2);
    std::vector<float> grad(s.size());
    const float loss = cpu_fn(z.N, z.Ds, z.Dt, s.data(), t.data(), grad.data());
    DeviceVec<float> ds(s), dt(t), dgrad(s.size()), dloss(1), dloss2(1);
    cuda_fn(z.N, z.Ds, z.Dt, ds.get(), dt.get(), dgrad.get(), dloss.get());
    cuda_fn(z.N, z.Ds, z.Dt, ds.get(), dt.get(), nullptr, dloss2.get());
    EXPECT_NEAR(dloss.host()[0], loss, 1e-7f + 1e-4f * std::fabs(loss));
    EXPECT_EQ(dloss.host()[0], dloss2.host()[0]);
    float gmax = 0;
    for (float g : grad) gmax = std::max(gmax, std::fabs(g));
    EXPECT_TRUE(all_close(dgrad.host(), grad, 1e-4f * gmax + 1e-12f, 1e-3f));
  }
}

}  // namespace

TEST(SpLossCuda, MatchesCpuAtAwkwardSizes) {
  check_against_cpu(cpu::sp_loss_forward_backward, cuda::sp_loss_forward_backward);
}

TEST(PktLossCuda, MatchesCpuAtAwkwardSizes) {
  check_against_cpu(cpu::pkt_loss_forward_backward, cuda::pkt_loss_forward_backward);
}

TEST(RkdLossCuda, MatchesCpuAtAwkwardSizes) {
  check_against_cpu(
      [](int64_t N, int64_t Ds, int64_t Dt, const float* s, const float* t, float* ds) {
        return cpu::rkd_loss_forward_backward(N, Ds, Dt, s, t, 25.0f, 50.0f, ds);
      },
      [](int64_t N, int64_t Ds, int64_t Dt, const float* s, const float* t, float* ds, float* loss) {
        cuda::rkd_loss_forward_backward(N, Ds, Dt, s, t, 25.0f, 50.0f, ds, loss);
      },
      /*cubic=*/true);
}
