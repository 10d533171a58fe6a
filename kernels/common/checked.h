// Overflow-checked int64 arithmetic for counts and sizes that come from flags and file headers (shapes, batch
// counts, buffer sizes): an overflow is an islkd::Error naming what was computed, never a wrapped value that later
// becomes a tiny allocation, a negative loop bound or a hang.
#pragma once
#include <cstdint>

#include "kernels/common/error.h"

namespace islkd {

// a * b; on overflow an Error "<what...>: a x b overflows a 64-bit integer". The `what` parts are streamed only
// on overflow, so callers can pass whatever names the computation without paying for it.
template <typename... What>
int64_t checked_mul(int64_t a, int64_t b, const What&... what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) ISLKD_FAIL(what..., ": ", a, " x ", b, " overflows a 64-bit integer");
  return r;
}

// a + b; on overflow an Error "<what...>: a + b overflows a 64-bit integer".
template <typename... What>
int64_t checked_add(int64_t a, int64_t b, const What&... what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) ISLKD_FAIL(what..., ": ", a, " + ", b, " overflows a 64-bit integer");
  return r;
}

// ceil(n / d) for n >= 0 and d > 0, without the n + d - 1 that overflows when d is near INT64_MAX (a batch count
// for a huge --batch-size is 1, not a wrapped negative number).
inline int64_t ceil_div(int64_t n, int64_t d) {
  ISLKD_CHECK(n >= 0 && d > 0, "ceil_div(", n, ", ", d, "): needs n >= 0 and d > 0");
  return n / d + (n % d != 0 ? 1 : 0);
}

}  // namespace islkd
