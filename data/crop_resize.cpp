// Crop boxes of torchvision's ImageNet recipes, and Pillow's bilinear resampling re-implemented exactly.
// Why not stb_image_resize (libstb-dev ships it): its triangle filter accumulates in float and treats the borders
// by clamping or reflecting pixels, where Pillow truncates the kernel at the border and renormalises it, and rounds
// to 8 bits between its horizontal and vertical passes with 22-bit fixed-point weights. The two differ by several
// grey levels along the borders. torchvision's ImageFolder pipeline resizes PIL images, so matching Pillow bit for
// bit means a model trained or evaluated in PyTorch sees the same pixels here, and the test can demand equality
// instead of a tolerance. The algorithm (support scaled by the downscale factor, i.e. antialiased, as
// PIL.Image.resize does) is Pillow's src/libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc.
#include "data/crop_resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "data/transforms.h"
#include "kernels/common/error.h"

namespace islkd::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images

double uniform01(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }
int uniform_below(uint64_t bits, int n) { return static_cast<int>(bits % static_cast<uint64_t>(n)); }

// One axis of the resampling: for output i, the first source pixel bounds[i].first, the count bounds[i].second,
// and the fixed-point weights at k[i * ksize ...].
struct AxisCoeffs {
  int ksize = 0;
  std::vector<std::pair<int, int>> bounds;
  std::vector<int32_t> k;
};

AxisCoeffs axis_coeffs(int in_size, int out_size) {
  AxisCoeffs a;
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // bilinear's support is 1
  a.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.bounds.resize(static_cast<size_t>(out_size));
  a.k.assign(static_cast<size_t>(out_size) * a.ksize, 0);
  std::vector<double> w(static_cast<size_t>(a.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double t = std::fabs((x + xmin - center + 0.5) * ss);
      w[static_cast<size_t>(x)] = t < 1.0 ? 1.0 - t : 0.0;
      ww += w[static_cast<size_t>(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[static_cast<size_t>(x)] / ww : w[static_cast<size_t>(x)];
      a.k[static_cast<size_t>(xx) * a.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    a.bounds[static_cast<size_t>(xx)] = {xmin, xmax};
  }
  return a;
}

inline uint8_t clip8(int64_t v) {
  return static_cast<uint8_t>(std::clamp<int64_t>(v >> kPrecisionBits, 0, 255));  // arithmetic shift, as Pillow
}

}  // namespace

CropBox random_resized_crop_box(int width, int height, uint64_t seed, int64_t epoch, int64_t index, bool* fallback) {
  ISLKD_CHECK(width > 0 && height > 0, "random_resized_crop_box: empty image ", width, "x", height);
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  if (fallback) *fallback = false;
  for (uint64_t attempt = 0; attempt < 10; ++attempt) {
    const uint64_t s = 16 + 4 * attempt;
    const double target = area * (0.08 + (1.0 - 0.08) * uniform01(random_bits(seed, epoch, index, s)));
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * uniform01(random_bits(seed, epoch, index, s + 1)));
    // Python's round() is round-half-even, as nearbyint in the default rounding mode.
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target / ratio)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      CropBox b;
      b.w = w, b.h = h;
      b.y = uniform_below(random_bits(seed, epoch, index, s + 2), height - h + 1);
      b.x = uniform_below(random_bits(seed, epoch, index, s + 3), width - w + 1);
      return b;
    }
  }
  if (fallback) *fallback = true;
  CropBox b;
  const double in_ratio = static_cast<double>(width) / height;
  if (in_ratio < 3.0 / 4.0) {
    b.w = width;
    b.h = static_cast<int>(std::nearbyint(width / (3.0 / 4.0)));
  } else if (in_ratio > 4.0 / 3.0) {
    b.h = height;
    b.w = static_cast<int>(std::nearbyint(height * (4.0 / 3.0)));
  } else {
    b.w = width, b.h = height;
  }
  b.y = (height - b.h) / 2;
  b.x = (width - b.w) / 2;
  return b;
}

int eval_resize_size(int size) { return static_cast<int>(std::nearbyint(size / 0.875)); }

ResizeAndWindow center_crop_after_resize(int width, int height, int size) {
  ISLKD_CHECK(width > 0 && height > 0 && size > 0, "center_crop_after_resize: bad sizes ", width, "x", height,
              " -> ", size);
  const int r = eval_resize_size(size);
  const int shorter = std::min(width, height), longer = std::max(width, height);
  const int new_long = static_cast<int>(static_cast<double>(static_cast<int64_t>(r) * longer) / shorter);
  ResizeAndWindow o;
  o.resized_w = width <= height ? r : new_long;
  o.resized_h = width <= height ? new_long : r;
  o.window.w = o.window.h = size;
  o.window.y = static_cast<int>(std::nearbyint((o.resized_h - size) / 2.0));
  o.window.x = static_cast<int>(std::nearbyint((o.resized_w - size) / 2.0));
  return o;
}

void resize_bilinear_pil(const uint8_t* rgb, int stride, int w, int h, int out_w, int out_h, const CropBox& window,
                         uint8_t* chw) {
  ISLKD_CHECK(w > 0 && h > 0 && out_w > 0 && out_h > 0 && window.x >= 0 && window.y >= 0 && window.w > 0 &&
                  window.h > 0 && window.x + window.w <= out_w && window.y + window.h <= out_h,
              "resize_bilinear_pil: bad sizes ", w, "x", h, " -> ", out_w, "x", out_h, " window ", window.w, "x",
              window.h, "+", window.x, "+", window.y);
  const bool horizontal = out_w != w, vertical = out_h != h;  // Pillow skips an axis whose size is unchanged
  AxisCoeffs cy = vertical ? axis_coeffs(h, out_h) : AxisCoeffs{};
  // The source rows the window's output rows read.
  int row0 = window.y, row1 = window.y + window.h;
  if (vertical) {
    row0 = cy.bounds[static_cast<size_t>(window.y)].first;
    row1 = 0;
    for (int yy = window.y; yy < window.y + window.h; ++yy)
      row1 = std::max(row1, cy.bounds[static_cast<size_t>(yy)].first + cy.bounds[static_cast<size_t>(yy)].second);
  }
  // Horizontal pass over those rows, for the window's columns only: tmp is (row1 - row0) x window.w x 3.
  const int tw = window.w, th = row1 - row0;
  std::vector<uint8_t> tmp(static_cast<size_t>(tw) * th * 3);
  if (horizontal) {
    AxisCoeffs cx = axis_coeffs(w, out_w);
    for (int y = 0; y < th; ++y) {
      const uint8_t* src = rgb + static_cast<int64_t>(row0 + y) * stride;
      uint8_t* dst = tmp.data() + static_cast<size_t>(y) * tw * 3;
      for (int xx = 0; xx < tw; ++xx) {
        const auto [xmin, n] = cx.bounds[static_cast<size_t>(window.x + xx)];
        const int32_t* k = cx.k.data() + static_cast<size_t>(window.x + xx) * cx.ksize;
        int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < n; ++x) {
          const uint8_t* p = src + (xmin + x) * 3;
          s0 += p[0] * static_cast<int64_t>(k[x]);
          s1 += p[1] * static_cast<int64_t>(k[x]);
          s2 += p[2] * static_cast<int64_t>(k[x]);
        }
        dst[xx * 3 + 0] = clip8(s0), dst[xx * 3 + 1] = clip8(s1), dst[xx * 3 + 2] = clip8(s2);
      }
    }
  } else {
    for (int y = 0; y < th; ++y)
      std::copy_n(rgb + static_cast<int64_t>(row0 + y) * stride + window.x * 3, tw * 3,
                  tmp.data() + static_cast<size_t>(y) * tw * 3);
  }
  // Vertical pass, written planar.
  const int64_t plane = static_cast<int64_t>(window.w) * window.h;
  for (int yy = 0; yy < window.h; ++yy) {
    for (int xx = 0; xx < tw; ++xx) {
      const int64_t o = static_cast<int64_t>(yy) * tw + xx;
      if (!vertical) {
        const uint8_t* p = tmp.data() + (static_cast<size_t>(yy) * tw + xx) * 3;
        chw[o] = p[0], chw[plane + o] = p[1], chw[2 * plane + o] = p[2];
        continue;
      }
      const auto [ymin, n] = cy.bounds[static_cast<size_t>(window.y + yy)];
      const int32_t* k = cy.k.data() + static_cast<size_t>(window.y + yy) * cy.ksize;
      int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int y = 0; y < n; ++y) {
        const uint8_t* p = tmp.data() + (static_cast<size_t>(ymin + y - row0) * tw + xx) * 3;
        s0 += p[0] * static_cast<int64_t>(k[y]);
        s1 += p[1] * static_cast<int64_t>(k[y]);
        s2 += p[2] * static_cast<int64_t>(k[y]);
      }
      chw[o] = clip8(s0), chw[plane + o] = clip8(s1), chw[2 * plane + o] = clip8(s2);
    }
  }
}

}  // namespace islkd::data
