// VID's Gaussian negative log-likelihood on CUDA (kernels/cuda/vid_loss.cu) under the emulator against the CPU kernel
// at awkward sizes (1, 31, 33, 1000), with and without gradients; the sum is the same on every run.
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

TEST(VidLossCuda, MatchesCpuAtAwkwardSizes) {
  struct Size {
    int64_t N, C, HW;
  };
  const Size sizes[] = {{1, 1, 1}, {1, 31, 33}, {33, 1, 31}, {2, 33, 1000}, {3, 1000, 1}, {31, 7, 64}};
  uint32_t seed = 21;
  for (const Size& z : sizes) {
    SCOPED_TRACE(::testing::Message() << z.N << " x " << z.C << " x " << z.HW);
    const auto p = test::random_vector(z.N * z.C * z.HW, ++seed, -2, 2);
    const auto t = test::random_vector(z.N * z.C * z.HW, ++seed, -2, 2);
    const auto ls = test::random_vector(z.C, ++seed, -4, 25);  // past softplus' large-argument branch too
    std::vector<float> dp(p.size()), dls(ls.size());
    const float loss = cpu::vid_loss_forward_backward(z.N, z.C, z.HW, p.data(), t.data(), ls.data(), 1e-5f, dp.data(),
                                                      dls.data());
    DeviceVec<float> gp(p), gt(t), gls(ls), gdp(p.size()), gdls(ls.size()), gl(1), gl2(1);
    cuda::vid_loss_forward_backward(z.N, z.C, z.HW, gp.get(), gt.get(), gls.get(), 1e-5f, gdp.get(), gdls.get(),
                                    gl.get());
    cuda::vid_loss_forward_backward(z.N, z.C, z.HW, gp.get(), gt.get(), gls.get(), 1e-5f, nullptr, nullptr, gl2.get());
    EXPECT_NEAR(gl.host()[0], loss, 1e-6f + 1e-5f * std::fabs(loss));
    EXPECT_EQ(gl.host()[0], gl2.host()[0]);
    EXPECT_TRUE(all_close(gdp.host(), dp, 1e-9f, 1e-5f));
    EXPECT_TRUE(all_close(gdls.host(), dls, 1e-9f, 1e-4f));
  }
}
