// CUDA channel ops (kernels/cuda/channel_ops.cu) under the emulator against the CPU kernels: channel_copy into a
// window of a wider tensor (untouched channels stay untouched) and channel_shuffle with its inverse.
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

TEST(ChannelOpsCuda, CopyMatchesCpuAtAwkwardSizes) {
  struct Case {
    int64_t N, HW, src_C, src_c0, dst_C, dst_c0, nc;
  };
  const Case cases[] = {{1, 1, 1, 0, 1, 0, 1}, {2, 31, 5, 1, 7, 3, 3}, {3, 33, 4, 0, 9, 5, 4}, {5, 1000, 3, 2, 3, 0, 1},
                        {31, 7, 6, 3, 6, 3, 3}};
  uint32_t seed = 51;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "N=" << c.N << " HW=" << c.HW << " nc=" << c.nc);
    const auto src = test::random_vector(static_cast<size_t>(c.N * c.src_C * c.HW), ++seed);
    auto dst = test::random_vector(static_cast<size_t>(c.N * c.dst_C * c.HW), ++seed);
    DeviceVec<float> dsrc(src), ddst(dst);
    cpu::channel_copy(c.N, c.HW, src.data(), c.src_C, c.src_c0, dst.data(), c.dst_C, c.dst_c0, c.nc);
    cuda::channel_copy(c.N, c.HW, dsrc.get(), c.src_C, c.src_c0, ddst.get(), c.dst_C, c.dst_c0, c.nc);
    EXPECT_TRUE(all_close(ddst.host(), dst, 0.0f, 0.0f));
  }
}

TEST(ChannelOpsCuda, ShuffleAndInverseMatchCpu) {
  const int64_t cases[][4] = {{1, 1, 1, 1}, {2, 6, 31, 3}, {3, 12, 33, 4}, {1, 10, 1000, 2}, {33, 9, 3, 3}};
  uint32_t seed = 61;
  for (const auto& c : cases) {
    const int64_t N = c[0], C = c[1], HW = c[2], G = c[3];
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " HW=" << HW << " G=" << G);
    const auto x = test::random_vector(static_cast<size_t>(N * C * HW), ++seed);
    std::vector<float> y(x.size()), back(x.size());
    cpu::channel_shuffle(N, C, HW, G, x.data(), y.data(), false);
    cpu::channel_shuffle(N, C, HW, G, y.data(), back.data(), true);
    DeviceVec<float> dx(x), dy(x.size()), dback(x.size());
    cuda::channel_shuffle(N, C, HW, G, dx.get(), dy.get(), false);
    cuda::channel_shuffle(N, C, HW, G, dy.get(), dback.get(), true);
    EXPECT_TRUE(all_close(dy.host(), y, 0.0f, 0.0f));
    EXPECT_TRUE(all_close(dback.host(), x, 0.0f, 0.0f));
  }
}
