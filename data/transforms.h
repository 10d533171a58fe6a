// Augmentation and normalisation of one instance: uint8 CHW in, float32 CHW out. Every random choice is a pure
// function of (seed, epoch, instance index), so a resumed run, or a different worker count, sees the same images.
#pragma once
#include <cstdint>
#include <vector>

namespace islkd::data {

class Dataset;

// Counter-based randomness: splitmix64's finaliser over a combination of the keys.
uint64_t splitmix64(uint64_t x);
uint64_t random_bits(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream);

struct TransformConfig {
  int crop_padding = 0;  // random crop of the original size from the image zero-padded by this much; 0 = off
  bool dataset_crop = false;  // the crop is the dataset's own (Dataset::read_train_crop); crop_padding is then 0
  bool hflip = false;    // horizontal flip with probability 1/2
  int cutout = 0;        // side of a square set to 0 after normalisation (DeVries & Taylor 2017); 0 = off
  std::vector<float> mean, std;  // per channel, on the 0..1 scale
};

// The choices for one instance (exposed so tests can check them and their determinism).
struct AugmentChoice {
  int dy = 0, dx = 0;  // crop offset in the padded image, 0..2*padding
  bool flip = false;
  int cut_y = 0, cut_x = 0;  // cutout centre
};

class Transform {
 public:
  Transform(TransformConfig config, int channels, int height, int width);
  AugmentChoice choose(uint64_t seed, int64_t epoch, int64_t index) const;
  // dst[c][y][x] = (crop/flip(src)[c][y][x] / 255 - mean[c]) / std[c], then cutout.
  void apply(const uint8_t* src, float* dst, uint64_t seed, int64_t epoch, int64_t index) const;
  void apply(const uint8_t* src, float* dst, const AugmentChoice& choice) const;
  const TransformConfig& config() const { return config_; }

 private:
  TransformConfig config_;
  int c_, h_, w_;
  std::vector<float> scale_, shift_;  // v * scale + shift == (v / 255 - mean) / std
};

// The usual recipes: training = crop (padding height/8: 4 for 32x32, 3 for 28x28; or the dataset's own crop when it
// has one, e.g. RandomResizedCrop) + flip when the dataset allows it + normalisation (+ cutout when asked);
// evaluation = normalisation only (of what Dataset::read gives: for ImageFolder with a size, resize + centre crop).
TransformConfig train_transform(const Dataset& ds, int cutout = 0);
TransformConfig eval_transform(const Dataset& ds);

}  // namespace islkd::data
