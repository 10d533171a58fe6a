// The math, bit and min/max intrinsics the emulator provides, against their CUDA definitions.
// The kernel is in intrinsics_kernels.cu.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/emu/emu_kernels.h"

namespace {

TEST(Emulator, MathAndBitIntrinsicsFollowCuda) {
  const std::vector<float> x = {2.0f, 0.5f, std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::infinity()};
  std::vector<float> f(13, -1.0f);
  std::vector<int> i(10, -1);
  emu_test::intrinsics(x.data(), f.data(), i.data());
  EXPECT_NEAR(f[0], std::exp(2.0f), 1e-5f);
  EXPECT_NEAR(f[1], std::log(2.0f), 1e-6f);
  EXPECT_FLOAT_EQ(f[2], 4.0f);
  EXPECT_FLOAT_EQ(f[3], 0.5f);
  EXPECT_FLOAT_EQ(f[4], 2.0f);
  EXPECT_FLOAT_EQ(f[5], 2.5f);
  EXPECT_FLOAT_EQ(f[6], 2.0f);
  EXPECT_FLOAT_EQ(f[7], 1.5f);  // saturate: 1 + 0 + 0.5
  EXPECT_FLOAT_EQ(f[8], 2.0f);
  EXPECT_FLOAT_EQ(f[9], 0.5f);
  EXPECT_FLOAT_EQ(f[10], 1.5f);
  EXPECT_FLOAT_EQ(f[11], 0.5f);
  const float ref12 = std::exp(0.5f) * std::log(2.0f) + std::sqrt(2.0f) + 8.0f + std::tanh(0.5f) + std::sin(0.5f) +
                      std::cos(0.5f);
  EXPECT_NEAR(f[12], ref12, 1e-5f);
  EXPECT_EQ(i[0], 3);
  EXPECT_EQ(i[1], 8);
  EXPECT_EQ(i[2], 31);
  EXPECT_EQ(i[3], 4);
  EXPECT_EQ(i[4], 4);
  EXPECT_EQ(i[5], 10);
  EXPECT_EQ(i[6], 2 - 20);  // round half to even, then truncation toward zero
  EXPECT_EQ(i[7], 8);
  EXPECT_EQ(i[8], 40 + 63);
  EXPECT_EQ(i[9], 2 + 2);
}

}  // namespace
