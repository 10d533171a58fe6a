// CUDA batch norm (kernels/cuda/batch_norm.cu) under the emulator against the CPU kernels: training forward
// (output, saved statistics, running statistics), eval forward and backward at awkward sizes and random shapes.
#include <random>
#include <tuple>

#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;
using test::random_vector;

namespace {

struct Shape3 {
  int64_t N, C, HW;
};

void check_train_forward(Shape3 s, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " HW=" << s.HW);
  const size_t n = static_cast<size_t>(s.N * s.C * s.HW), c = static_cast<size_t>(s.C);
  // An offset mean checks the two-pass variance (no cancellation).
  const auto x = random_vector(n, seed, 2.0f, 5.0f);
  const auto gamma = random_vector(c, seed + 1, 0.5f, 1.5f), beta = random_vector(c, seed + 2);
  const auto rm0 = random_vector(c, seed + 3), rv0 = random_vector(c, seed + 4, 0.5f, 2.0f);
  std::vector<float> y(n), mean(c), invstd(c), rm = rm0, rv = rv0;
  cpu::batch_norm_forward_train(s.N, s.C, s.HW, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), 0.1f,
                                1e-5f, y.data(), mean.data(), invstd.data());
  DeviceVec<float> dx(x), dg(gamma), db(beta), drm(rm0), drv(rv0), dy(n), dmean(c), dinv(c);
  cuda::batch_norm_forward_train(s.N, s.C, s.HW, dx.get(), dg.get(), db.get(), drm.get(), drv.get(), 0.1f, 1e-5f,
                                 dy.get(), dmean.get(), dinv.get());
  EXPECT_TRUE(all_close(dy.host(), y, 2e-4f, 1e-4f));
  EXPECT_TRUE(all_close(dmean.host(), mean, 1e-5f, 1e-5f));
  EXPECT_TRUE(all_close(dinv.host(), invstd, 1e-4f, 2e-4f));
  EXPECT_TRUE(all_close(drm.host(), rm, 1e-5f, 1e-5f));
  EXPECT_TRUE(all_close(drv.host(), rv, 1e-4f, 1e-4f));
}

void check_backward(Shape3 s, uint32_t seed, bool with_dx) {
  SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " HW=" << s.HW << " dx=" << with_dx);
  const size_t n = static_cast<size_t>(s.N * s.C * s.HW), c = static_cast<size_t>(s.C);
  const auto x = random_vector(n, seed, -1.0f, 3.0f), g = random_vector(n, seed + 1);
  const auto gamma = random_vector(c, seed + 2, 0.5f, 1.5f), mean = random_vector(c, seed + 3, 0.5f, 1.5f);
  const auto invstd = random_vector(c, seed + 4, 0.5f, 2.0f);
  std::vector<float> dxr(n), dgr(c), dbr(c);
  cpu::batch_norm_backward(s.N, s.C, s.HW, x.data(), g.data(), gamma.data(), mean.data(), invstd.data(),
                           with_dx ? dxr.data() : nullptr, dgr.data(), dbr.data());
  DeviceVec<float> dx(x), dg(g), dgam(gamma), dm(mean), di(invstd), ddx(n), ddg(c), ddb(c);
  cuda::batch_norm_backward(s.N, s.C, s.HW, dx.get(), dg.get(), dgam.get(), dm.get(), di.get(),
                            with_dx ? ddx.get() : nullptr, ddg.get(), ddb.get());
  if (with_dx) {
    EXPECT_TRUE(all_close(ddx.host(), dxr, 1e-4f, 1e-4f));
  }
  EXPECT_TRUE(all_close(ddg.host(), dgr, 1e-4f, 1e-4f));
  EXPECT_TRUE(all_close(ddb.host(), dbr, 1e-4f, 1e-4f));
}

const Shape3 kAwkward[] = {{1, 1, 1},   {2, 1, 1},  {1, 3, 31},   {3, 33, 1},  {2, 5, 33},
                           {1, 7, 1000}, {31, 3, 9}, {33, 2, 1000}, {1000, 3, 1}, {7, 1, 4099}};

}  // namespace

TEST(BatchNormCuda, TrainForwardMatchesCpuAtAwkwardSizes) {
  uint32_t seed = 1;
  for (const Shape3& s : kAwkward) check_train_forward(s, seed += 10);
}

TEST(BatchNormCuda, TrainForwardMatchesCpuAtRandomShapes) {
  std::mt19937 rng(2024);
  for (int i = 0; i < 6; ++i) {
    Shape3 s{1 + static_cast<int64_t>(rng() % 9), 1 + static_cast<int64_t>(rng() % 19),
             1 + static_cast<int64_t>(rng() % 300)};
    check_train_forward(s, 100 + i);
  }
}

TEST(BatchNormCuda, EvalForwardMatchesCpu) {
  for (const Shape3& s : kAwkward) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " HW=" << s.HW);
    const size_t n = static_cast<size_t>(s.N * s.C * s.HW), c = static_cast<size_t>(s.C);
    const auto x = random_vector(n, 7), gamma = random_vector(c, 8), beta = random_vector(c, 9);
    const auto rm = random_vector(c, 10), rv = random_vector(c, 11, 0.1f, 3.0f);
    std::vector<float> y(n);
    cpu::batch_norm_forward_eval(s.N, s.C, s.HW, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), 1e-5f,
                                 y.data());
    DeviceVec<float> dx(x), dg(gamma), db(beta), drm(rm), drv(rv), dy(n);
    cuda::batch_norm_forward_eval(s.N, s.C, s.HW, dx.get(), dg.get(), db.get(), drm.get(), drv.get(), 1e-5f,
                                  dy.get());
    EXPECT_TRUE(all_close(dy.host(), y, 1e-5f, 1e-5f));
  }
}

TEST(BatchNormCuda, BackwardMatchesCpuAtAwkwardSizes) {
  uint32_t seed = 3;
  for (const Shape3& s : kAwkward) check_backward(s, seed += 10, true);
}

TEST(BatchNormCuda, BackwardWithoutDxWritesOnlyParameterGradients) {
  check_backward({4, 6, 17}, 77, false);
}

TEST(BatchNormCuda, LargeChannelStatisticsMatchCpu) {
  // 64 x 32 x 32 values per channel: each thread adds 256 of them in float before the shuffle tree.
  check_train_forward({64, 2, 1024}, 555);
  check_backward({64, 2, 1024}, 556, true);
}

// Channels whose values are split over many blocks (slices of unequal length: the last one shorter), with an
// offset mean and a large spread of counts per channel: 1 channel x 1000 planes of 33, 3 x 31 planes of 1000.
TEST(BatchNormCuda, StatisticsSplitOverManyBlocksMatchCpu) {
  const Shape3 shapes[] = {{1000, 1, 33}, {31, 3, 1000}, {1, 1, 100003}, {129, 5, 31}};
  uint32_t seed = 900;
  for (const Shape3& s : shapes) {
    check_train_forward(s, seed += 10);
    check_backward(s, seed += 10, true);
    check_backward(s, seed += 10, false);
  }
}

// The statistics are the same bits run after run (partials combined in a fixed order, no atomics).
TEST(BatchNormCuda, MultiBlockStatisticsAreDeterministic) {
  const Shape3 s{64, 3, 1024};
  const size_t n = static_cast<size_t>(s.N * s.C * s.HW), c = static_cast<size_t>(s.C);
  const auto x = random_vector(n, 5, -2.0f, 7.0f), g = random_vector(n, 6);
  DeviceVec<float> dx(x), dg(g), gamma(std::vector<float>(c, 1.0f)), beta(std::vector<float>(c, 0.0f));
  DeviceVec<float> rm(std::vector<float>(c, 0.0f)), rv(std::vector<float>(c, 1.0f)), y(n), mean(c), inv(c);
  DeviceVec<float> ddx(n), dgam(c), dbet(c);
  std::vector<float> first_y, first_dx, first_dgam;
  for (int run = 0; run < 2; ++run) {
    cuda::batch_norm_forward_train(s.N, s.C, s.HW, dx.get(), gamma.get(), beta.get(), rm.get(), rv.get(), 0.1f,
                                   1e-5f, y.get(), mean.get(), inv.get());
    cuda::batch_norm_backward(s.N, s.C, s.HW, dx.get(), dg.get(), gamma.get(), mean.get(), inv.get(), ddx.get(),
                              dgam.get(), dbet.get());
    if (run == 0) {
      first_y = y.host(), first_dx = ddx.host(), first_dgam = dgam.host();
    } else {
      EXPECT_TRUE(all_close(y.host(), first_y, 0.0f, 0.0f));
      EXPECT_TRUE(all_close(ddx.host(), first_dx, 0.0f, 0.0f));
      EXPECT_TRUE(all_close(dgam.host(), first_dgam, 0.0f, 0.0f));
    }
  }
}
