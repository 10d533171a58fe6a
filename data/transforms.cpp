// Crop with zero padding, flip, normalisation and cutout fused into one pass over the output pixels.
#include "data/transforms.h"

#include <algorithm>

#include "data/dataset.h"
#include "kernels/common/error.h"

namespace islkd::data {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t random_bits(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream) {
  // Each key goes through the mixer before the next is added, so (epoch, index) pairs never collide by a sum.
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(epoch));
  h = splitmix64(h ^ static_cast<uint64_t>(index));
  return splitmix64(h ^ stream);
}

static int uniform_int(uint64_t bits, int n) {  // 0..n-1, n small: the modulo bias is below 2^-50
  return static_cast<int>(bits % static_cast<uint64_t>(n));
}

Transform::Transform(TransformConfig config, int channels, int height, int width)
    : config_(std::move(config)), c_(channels), h_(height), w_(width) {
  ISLKD_CHECK(c_ > 0 && h_ > 0 && w_ > 0, "Transform: bad image shape ", c_, "x", h_, "x", w_);
  ISLKD_CHECK(config_.mean.size() == static_cast<size_t>(c_) && config_.std.size() == static_cast<size_t>(c_),
              "Transform: normalisation has ", config_.mean.size(), " means and ", config_.std.size(),
              " stds for ", c_, " channels");
  ISLKD_CHECK(config_.crop_padding >= 0 && config_.cutout >= 0, "Transform: negative padding or cutout size");
  for (int c = 0; c < c_; ++c) {
    ISLKD_CHECK(config_.std[c] > 0, "Transform: std of channel ", c, " is ", config_.std[c]);
    scale_.push_back(1.0f / (255.0f * config_.std[c]));
    shift_.push_back(-config_.mean[c] / config_.std[c]);
  }
}

AugmentChoice Transform::choose(uint64_t seed, int64_t epoch, int64_t index) const {
  AugmentChoice a;
  const int p = config_.crop_padding;
  if (p > 0) {
    a.dy = uniform_int(random_bits(seed, epoch, index, 1), 2 * p + 1);
    a.dx = uniform_int(random_bits(seed, epoch, index, 2), 2 * p + 1);
  } else {
    a.dy = a.dx = 0;
  }
  if (config_.hflip) a.flip = (random_bits(seed, epoch, index, 3) >> 63) != 0;
  if (config_.cutout > 0) {
    a.cut_y = uniform_int(random_bits(seed, epoch, index, 4), h_);
    a.cut_x = uniform_int(random_bits(seed, epoch, index, 5), w_);
  }
  return a;
}

void Transform::apply(const uint8_t* src, float* dst, uint64_t seed, int64_t epoch, int64_t index) const {
  apply(src, dst, choose(seed, epoch, index));
}

void Transform::apply(const uint8_t* src, float* dst, const AugmentChoice& a) const {
  const int p = config_.crop_padding;
  for (int c = 0; c < c_; ++c) {
    const uint8_t* s = src + static_cast<int64_t>(c) * h_ * w_;
    float* d = dst + static_cast<int64_t>(c) * h_ * w_;
    const float scale = scale_[c], pad_value = shift_[c];  // zero padding normalises to -mean/std
    for (int y = 0; y < h_; ++y) {
      const int sy = y + a.dy - p;
      float* drow = d + static_cast<int64_t>(y) * w_;
      if (sy < 0 || sy >= h_) {
        std::fill(drow, drow + w_, pad_value);
        continue;
      }
      const uint8_t* srow = s + static_cast<int64_t>(sy) * w_;
      for (int x = 0; x < w_; ++x) {
        // Crop first, then flip the cropped image (torchvision's RandomCrop -> RandomHorizontalFlip).
        const int sx = (a.flip ? w_ - 1 - x : x) + a.dx - p;
        drow[x] = (sx < 0 || sx >= w_) ? pad_value : srow[sx] * scale + pad_value;
      }
    }
  }
  if (config_.cutout > 0) {
    const int half = config_.cutout / 2;
    const int y0 = std::max(0, a.cut_y - half), y1 = std::min(h_, a.cut_y - half + config_.cutout);
    const int x0 = std::max(0, a.cut_x - half), x1 = std::min(w_, a.cut_x - half + config_.cutout);
    for (int c = 0; c < c_; ++c)
      for (int y = y0; y < y1; ++y)
        std::fill(dst + (static_cast<int64_t>(c) * h_ + y) * w_ + x0,
                  dst + (static_cast<int64_t>(c) * h_ + y) * w_ + x1, 0.0f);
  }
}

TransformConfig train_transform(const Dataset& ds, int cutout) {
  TransformConfig t;
  t.crop_padding = std::max(1, ds.height() / 8);  // 4 for 32x32 (the CIFAR recipe), 3 for 28x28
  if (ds.has_train_crop()) {  // RandomResizedCrop replaces the padded crop (torchvision's ImageNet recipe)
    t.crop_padding = 0;
    t.dataset_crop = true;
  }
  t.hflip = ds.hflip_makes_sense();
  t.cutout = cutout;
  t.mean = ds.normalization().mean;
  t.std = ds.normalization().std;
  return t;
}

TransformConfig eval_transform(const Dataset& ds) {
  TransformConfig t;
  t.mean = ds.normalization().mean;
  t.std = ds.normalization().std;
  return t;
}

}  // namespace islkd::data
