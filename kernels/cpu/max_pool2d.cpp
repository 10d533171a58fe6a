// CPU max pooling (square window, NCHW). Padding counts as -inf; the forward saves, per output, the index of the
// maximum within its input plane (first maximum wins, a NaN wins and propagates, as in PyTorch), and the
// backward scatters dy there. Work split: one OpenMP iteration per (n, c) plane, so the backward's += into
// overlapping windows never races. Forward reads each input about (k/stride)^2 times from cache and writes 8 bytes
// per output (value + argmax); backward writes the input plane once and reads 8 bytes per output.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  const int64_t OH = s.OH(), OW = s.OW(), HW = s.H * s.W, OHW = OH * OW;
#pragma omp parallel for schedule(static) if (s.N * s.C * OHW * s.kernel * s.kernel > (1 << 15))
  for (int64_t p = 0; p < s.N * s.C; ++p) {
    const float* xp = x + p * HW;
    float* yp = y + p * OHW;
    int32_t* ap = argmax + p * OHW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * s.stride - s.pad, 0);
      const int64_t h1 = std::min<int64_t>(oh * s.stride - s.pad + s.kernel, s.H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * s.stride - s.pad, 0);
        const int64_t w1 = std::min<int64_t>(ow * s.stride - s.pad + s.kernel, s.W);
        float best = -std::numeric_limits<float>::infinity();
        int64_t best_i = h0 * s.W + w0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            const float v = xp[h * s.W + w];
            if (v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              best_i = h * s.W + w;
            }
          }
        yp[oh * OW + ow] = best;
        ap[oh * OW + ow] = static_cast<int32_t>(best_i);
      }
    }
  }
}

void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t HW = s.H * s.W, OHW = s.OH() * s.OW();
#pragma omp parallel for schedule(static) if (s.N * s.C * HW > (1 << 15))
  for (int64_t p = 0; p < s.N * s.C; ++p) {
    float* dp = dx + p * HW;
    std::memset(dp, 0, static_cast<size_t>(HW) * sizeof(float));
    const float* gp = dy + p * OHW;
    const int32_t* ap = argmax + p * OHW;
    for (int64_t o = 0; o < OHW; ++o) dp[ap[o]] += gp[o];
  }
}

}  // namespace islkd::cpu
