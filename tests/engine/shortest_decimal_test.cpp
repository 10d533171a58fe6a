// shortest_decimal (std::to_chars): the fewest significant digits that read back as the same float, checked against
// the plain search it replaced (%.Ng for N = 1..9 until strtof gives the float back) on random bit patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "engine/shortest_decimal.h"

namespace islkd {
namespace {

double shortest_by_search(float f) {
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return std::strtod(buf, nullptr);
}

TEST(ShortestDecimal, ConfigValuesPrintAsTyped) {
  EXPECT_EQ(shortest_decimal(0.9f), 0.9);
  EXPECT_EQ(shortest_decimal(0.05f), 0.05);
  EXPECT_EQ(shortest_decimal(5e-4f), 5e-4);
  EXPECT_EQ(shortest_decimal(4.0f), 4.0);
  EXPECT_EQ(shortest_decimal(0.0f), 0.0);
  EXPECT_EQ(shortest_decimal(240823472.0f), 2.4082347e+08);  // scientific digits, not the exact integer
}

TEST(ShortestDecimal, EqualsTheDigitSearchOnRandomFloats) {
  std::mt19937 gen(17);
  int checked = 0;
  for (int i = 0; i < 300000; ++i) {
    const uint32_t bits = gen();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    if (!std::isfinite(f)) continue;
    const double got = shortest_decimal(f);
    ASSERT_EQ(got, shortest_by_search(f)) << "bits 0x" << std::hex << bits;
    ASSERT_EQ(static_cast<float>(got), f);
    ++checked;
  }
  EXPECT_GT(checked, 290000);
}

}  // namespace
}  // namespace islkd
