// libFuzzer target: the ImageFolder decoder (PNG, JPEG, BMP through stb_image, header read first) on arbitrary
// bytes must either return an image of the size its header claims or throw islkd::Error; never crash, never
// allocate for a claimed size over the pixel limit.
#include <cstdint>

#include "data/formats.h"
#include "kernels/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace islkd::data;
  ImageLimits limits;
  limits.max_pixels = int64_t(1) << 16;  // keep decodes cheap; the limit check itself is under test
  try {
    RgbImage img = decode_image_rgb(data, size, "fuzz.png", limits);
    if (img.w <= 0 || img.h <= 0 || int64_t(img.w) * img.h > limits.max_pixels ||
        img.rgb.size() != size_t(img.w) * size_t(img.h) * 3)
      __builtin_trap();
    // The same bytes with a fixed expected size: either that size or an error.
    RgbImage again = decode_image_rgb(data, size, "fuzz.png", limits, img.w, img.h);
    if (again.rgb != img.rgb) __builtin_trap();
  } catch (const islkd::Error&) {
  }
  return 0;
}
