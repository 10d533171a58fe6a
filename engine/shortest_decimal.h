// The shortest decimal that reads back as the same float, as a double: configs logged as JSON show 0.9, not
// 0.8999999761581421 (what the float widened to double prints as).
#pragma once
#include <cstdio>
#include <cstdlib>

namespace islkd {

inline double shortest_decimal(float f) {
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return std::strtod(buf, nullptr);
}

}  // namespace islkd
