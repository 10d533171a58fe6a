// The specified order of the score sort and its reference, shared by the CPU and CUDA radix-sort tests: float
// comparisons (not bit tricks), -0 == +0, NaN after +inf, ties keep input order; output keys canonical (+0, one
// quiet NaN). Plus a key mixture with ties and every special value.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace islkd::test {

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline const float kInf = std::numeric_limits<float>::infinity();

// The specified order, written with float comparisons (not bit tricks): NaN after everything, -0 == +0.
inline bool score_less(float a, float b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a < b;
}

// Reference: std::stable_sort of indices by key; the expected output keys are canonical (+0, quiet NaN).
inline void reference_sort(const std::vector<float>& keys, const std::vector<uint32_t>& values, std::vector<float>* k_out,
                    std::vector<uint32_t>* v_out) {
  std::vector<size_t> idx(keys.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return score_less(keys[a], keys[b]); });
  k_out->clear();
  v_out->clear();
  for (size_t i : idx) {
    float k = keys[i];
    if (std::isnan(k)) k = from_bits(0x7FC00000u);
    if (k == 0.0f) k = 0.0f;
    k_out->push_back(k);
    v_out->push_back(values[i]);
  }
}

// Mixture: ties from a small pool, negatives, +-0, +-inf, NaNs with several payloads and both signs,
// denormals, the float extremes, and plain random scores.
inline std::vector<float> mixed_keys(size_t n, uint32_t seed) {
  const float specials[] = {0.0f,
                            -0.0f,
                            kInf,
                            -kInf,
                            from_bits(0x7FC00000u),  // canonical quiet NaN
                            from_bits(0xFFC00000u),  // negative quiet NaN
                            from_bits(0x7F800001u),  // signalling NaN
                            from_bits(0x7FFFFFFFu),  // NaN, all payload bits
                            from_bits(0xFFFFFFFFu),  // negative NaN, all payload bits
                            from_bits(0x00000001u),  // smallest denormal
                            from_bits(0x80000001u),  // its negative
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max(),
                            1.0f,
                            -1.0f,
                            0.5f};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1000.0f, 1000.0f);
  std::vector<float> k(n);
  for (auto& v : k) {
    uint32_t r = rng() % 8;
    if (r == 0)
      v = specials[rng() % (sizeof specials / sizeof specials[0])];
    else if (r < 3)
      v = static_cast<float>(static_cast<int>(rng() % 21) - 10);  // ties
    else
      v = d(rng);
  }
  return k;
}

}  // namespace islkd::test
