// The shortest decimal that reads back as the same float, as a double: configs logged as JSON show 0.9, not
// 0.8999999761581421 (what the float widened to double prints as). std::to_chars gives the shortest round-trip
// digits (scientific, so 240823472 stays 2.4082347e+08 as the earlier %.Ng search wrote it: the same value for
// 20 million random floats); strtod reads them back as the double nearest that decimal.
#pragma once
#include <charconv>
#include <cstdlib>

namespace islkd {

inline double shortest_decimal(float f) {
  char buf[48];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf - 1, f, std::chars_format::scientific);
  *r.ptr = '\0';  // 48 bytes hold any float ("-1.17549435e-38" is 15); ec cannot be set
  return std::strtod(buf, nullptr);
}

}  // namespace islkd
