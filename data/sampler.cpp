// Built-in samplers: the identity order and a (seed, epoch)-determined shuffle.
#include "data/sampler.h"

#include <numeric>

#include "data/transforms.h"
#include "kernels/common/error.h"

namespace islkd::data {

std::vector<int64_t> SequentialSampler::indices(int64_t) {
  std::vector<int64_t> v(static_cast<size_t>(n_));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

std::vector<int64_t> ShuffledSampler::indices(int64_t epoch) {
  std::vector<int64_t> v(static_cast<size_t>(n_));
  std::iota(v.begin(), v.end(), int64_t{0});
  // Fisher-Yates; position i's draw is keyed by (seed, epoch, i) in its own stream, apart from augmentation's.
  for (int64_t i = n_ - 1; i > 0; --i) {
    uint64_t r = random_bits(seed_, epoch, i, 0x5348554646ull /* "SHUFF" */);
    int64_t j = static_cast<int64_t>(r % static_cast<uint64_t>(i + 1));
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(j)]);
  }
  return v;
}

}  // namespace islkd::data
