// CPU average pooling (square window, NCHW) with PyTorch's defaults: count_include_pad=true, ceil_mode=false,
// so every window divides by kernel*kernel even where it overlaps the padding. One OpenMP iteration per (n, c)
// plane; the backward spreads dy/(k*k) over the window's in-bounds inputs with += inside its own plane.
// Memory-bound: 4 bytes read per input element (windows overlap in cache), 4 bytes written per output.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  const int64_t OH = s.OH(), OW = s.OW(), HW = s.H * s.W, OHW = OH * OW;
  const float inv = 1.0f / static_cast<float>(s.kernel * s.kernel);
#pragma omp parallel for schedule(static) if (s.N * s.C * OHW * s.kernel * s.kernel > (1 << 15))
  for (int64_t p = 0; p < s.N * s.C; ++p) {
    const float* xp = x + p * HW;
    float* yp = y + p * OHW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * s.stride - s.pad, 0);
      const int64_t h1 = std::min<int64_t>(oh * s.stride - s.pad + s.kernel, s.H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * s.stride - s.pad, 0);
        const int64_t w1 = std::min<int64_t>(ow * s.stride - s.pad + s.kernel, s.W);
        float sum = 0.0f;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) sum += xp[h * s.W + w];
        yp[oh * OW + ow] = sum * inv;
      }
    }
  }
}

void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx) {
  const int64_t OH = s.OH(), OW = s.OW(), HW = s.H * s.W, OHW = OH * OW;
  const float inv = 1.0f / static_cast<float>(s.kernel * s.kernel);
#pragma omp parallel for schedule(static) if (s.N * s.C * OHW * s.kernel * s.kernel > (1 << 15))
  for (int64_t p = 0; p < s.N * s.C; ++p) {
    float* dp = dx + p * HW;
    std::memset(dp, 0, static_cast<size_t>(HW) * sizeof(float));
    const float* gp = dy + p * OHW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * s.stride - s.pad, 0);
      const int64_t h1 = std::min<int64_t>(oh * s.stride - s.pad + s.kernel, s.H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * s.stride - s.pad, 0);
        const int64_t w1 = std::min<int64_t>(ow * s.stride - s.pad + s.kernel, s.W);
        const float g = gp[oh * OW + ow] * inv;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) dp[h * s.W + w] += g;
      }
    }
  }
}

}  // namespace islkd::cpu
