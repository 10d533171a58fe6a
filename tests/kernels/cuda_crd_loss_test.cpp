// CRD's contrast and memory update on CUDA (kernels/cuda/crd_loss.cu) under the emulator against the CPU kernels at
// awkward sizes (every combination of B 1, 31, 33; K 1, 31, 1000; D 1, 33, 128; N non-powers of two), with and
// without gradients, Z set on the device or already set; the loss is the same on every run.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

TEST(CrdLossCuda, MatchesCpuAtAwkwardSizes) {
  struct Size {
    int64_t B, K, D, N;
  };
  std::vector<Size> sizes;  // every combination; N a non-power of two above K + 1
  for (int64_t B : {1, 31, 33})
    for (int64_t K : {1, 31, 1000})
      for (int64_t D : {1, 33, 128}) sizes.push_back({B, K, D, K + 3 + 2 * B + (D % 5)});
  uint32_t seed = 40;
  for (const Size& s : sizes) {
    SCOPED_TRACE(::testing::Message() << "B " << s.B << " K " << s.K << " D " << s.D << " N " << s.N);
    const int64_t K1 = s.K + 1;
    const auto u = test::random_vector(s.B * s.D, ++seed, -1, 1);
    auto mem = test::random_vector(s.N * s.D, ++seed, -0.3f, 0.3f);
    const auto r = test::random_vector(s.B * K1, ++seed, 0.0f, 1.0f);
    std::vector<int32_t> idx;
    for (float x : r) idx.push_back(std::min<int32_t>(static_cast<int32_t>(x * s.N), static_cast<int32_t>(s.N - 1)));
    for (float T : {0.07f, 0.5f}) {
      float z = -1.0f;
      std::vector<float> du(u.size());
      const float loss = cpu::crd_contrast_forward_backward(s.B, K1, s.D, s.N, u.data(), mem.data(), idx.data(), T,
                                                            &z, du.data());
      DeviceVec<float> gu(u), gm(mem), gdu(u.size()), gz(std::vector<float>{-1.0f}), gl(1), gl2(1);
      DeviceVec<int32_t> gi(idx);
      cuda::crd_contrast_forward_backward(s.B, K1, s.D, s.N, gu.get(), gm.get(), gi.get(), T, gz.get(), gdu.get(),
                                          gl.get());
      const float z_set = gz.host()[0];
      EXPECT_NEAR(z_set, z, 1e-5f * z);
      // Z is now set: a second call without gradients keeps it and gives the same loss bits.
      cuda::crd_contrast_forward_backward(s.B, K1, s.D, s.N, gu.get(), gm.get(), gi.get(), T, gz.get(), nullptr,
                                          gl2.get());
      EXPECT_EQ(gz.host()[0], z_set);
      EXPECT_EQ(gl.host()[0], gl2.host()[0]);
      EXPECT_NEAR(gl.host()[0], loss, 1e-5f * (1.0f + std::fabs(loss)));
      // D 1: v = sign(u) does not move with u, the exact gradient is 0 and both sides hold rounding noise.
      EXPECT_TRUE(all_close(gdu.host(), du, s.D == 1 ? 1e-5f : 1e-7f, 1e-4f));
    }
    // The update of distinct rows.
    std::vector<int32_t> y;
    for (int64_t b = 0; b < s.B; ++b) y.push_back(static_cast<int32_t>((b * 7 + 1) % s.N));
    std::sort(y.begin(), y.end());
    y.erase(std::unique(y.begin(), y.end()), y.end());
    if (y.size() > 1) y[1] = -1;  // a skipped row
    const int64_t B = static_cast<int64_t>(y.size());
    DeviceVec<float> gm(mem), gu(std::vector<float>(u.begin(), u.begin() + B * s.D));
    DeviceVec<int32_t> gy(y);
    cpu::crd_memory_update(B, s.D, s.N, mem.data(), u.data(), y.data(), 0.5f);
    cuda::crd_memory_update(B, s.D, s.N, gm.get(), gu.get(), gy.get(), 0.5f);
    EXPECT_TRUE(all_close(gm.host(), mem, 1e-6f, 1e-5f));
  }
}
