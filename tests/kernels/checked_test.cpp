// checked_mul / checked_add / ceil_div: exact results in range, an islkd::Error naming the computation on overflow.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "kernels/common/checked.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

using test::error_of;

}  // namespace

TEST(CheckedArithmetic, ExactInRange) {
  EXPECT_EQ(checked_mul(int64_t(1) << 31, int64_t(1) << 31, "x"), int64_t(1) << 62);
  EXPECT_EQ(checked_mul(-3, kMax / 3, "x"), -(kMax / 3) * 3);
  EXPECT_EQ(checked_mul(0, kMax, "x"), 0);
  EXPECT_EQ(checked_add(kMax - 1, 1, "x"), kMax);
  EXPECT_EQ(checked_add(kMin, kMax, "x"), -1);
}

TEST(CheckedArithmetic, OverflowIsAnErrorNamingTheComputationAndOperands) {
  std::string msg =
      error_of([] { return checked_mul(int64_t(1) << 62, 64, "the element count of shape ", "[2^62, 64]"); });
  EXPECT_NE(msg.find("the element count of shape [2^62, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4611686018427387904 x 64"), std::string::npos) << msg;
  msg = error_of([] { return checked_add(kMax, 1, "batch end"); });
  EXPECT_NE(msg.find("batch end: 9223372036854775807 + 1 overflows"), std::string::npos) << msg;
  EXPECT_THROW(checked_mul(kMin, -1, "x"), Error);
  EXPECT_THROW(checked_add(kMin, -1, "x"), Error);
}

TEST(CheckedArithmetic, CeilDivNeverOverflowsForAHugeDivisor) {
  EXPECT_EQ(ceil_div(256, kMax), 1);  // (256 + kMax - 1) / kMax wraps negative
  EXPECT_EQ(ceil_div(256, kMax - 199), 1);
  EXPECT_EQ(ceil_div(0, kMax), 0);
  EXPECT_EQ(ceil_div(kMax, 1), kMax);
  EXPECT_EQ(ceil_div(50, 7), 8);
  EXPECT_EQ(ceil_div(49, 7), 7);
  EXPECT_THROW(ceil_div(5, 0), Error);
  EXPECT_THROW(ceil_div(-1, 3), Error);
}
