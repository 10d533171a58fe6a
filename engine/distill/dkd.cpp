// DKD's loss-weight warm-up factor.
#include "engine/distill/dkd.h"

#include <algorithm>

#include "kernels/common/error.h"

namespace islkd::distill {

float dkd_warmup_factor(int64_t epoch, int64_t warmup_epochs) {
  ISLKD_CHECK(epoch >= 0, "DKD warm-up: epoch must be >= 0, got ", epoch);
  if (warmup_epochs <= 0) return 1.0f;
  return static_cast<float>(std::min(static_cast<double>(epoch) / static_cast<double>(warmup_epochs), 1.0));
}

}  // namespace islkd::distill
