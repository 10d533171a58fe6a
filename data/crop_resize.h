// Images of any size to a fixed S x S input, as torchvision's ImageNet recipes do it on PIL images: evaluation is
// Resize(round(S / 0.875)) on the shorter side + CenterCrop(S); training is RandomResizedCrop(S, scale (0.08, 1),
// ratio (3/4, 4/3)). The resampling is Pillow's bilinear filter, bit for bit (see crop_resize.cpp for why not stb).
#pragma once
#include <cstdint>

namespace islkd::data {

struct CropBox {
  int x = 0, y = 0, w = 0, h = 0;  // left, top, width, height in pixels
};

// torchvision RandomResizedCrop.get_params for a width x height image: up to 10 tries of a random area fraction in
// [0.08, 1] and a log-uniform aspect ratio in [3/4, 4/3], the first whose box fits wins, at a uniform position;
// otherwise the centred fallback (the whole image, or its centre clamped to the ratio bounds). Every draw is
// random_bits(seed, epoch, index, stream) with streams 16.. (Transform uses 1..5), so the crop is a pure function
// of (seed, epoch, index). *fallback (when given) says whether the fallback was taken.
CropBox random_resized_crop_box(int width, int height, uint64_t seed, int64_t epoch, int64_t index,
                                bool* fallback = nullptr);

// torchvision Resize(round(size / 0.875)) (shorter side; the longer one int(new_short * long / short)) followed
// by CenterCrop(size): the resized image's size and the size x size window kept from it.
struct ResizeAndWindow {
  int resized_w = 0, resized_h = 0;
  CropBox window;
};
ResizeAndWindow center_crop_after_resize(int width, int height, int size);
int eval_resize_size(int size);  // round(size / 0.875): 256 for 224, 37 for 32, 27 for 24

// Pillow's Image.resize((out_w, out_h), BILINEAR) of the w x h interleaved RGB image at rgb (row stride
// `stride` bytes), written only for the `window` of the out_w x out_h result, as planar CHW uint8 of
// window.w x window.h. Pass the full window for a plain resize; point rgb at a crop's corner for crop-then-resize.
void resize_bilinear_pil(const uint8_t* rgb, int stride, int w, int h, int out_w, int out_h, const CropBox& window,
                         uint8_t* chw);

}  // namespace islkd::data
