// Image decoding for the ImageFolder reader (PNG, JPEG, BMP through stb_image, compiled in format_stb_image.cpp),
// from memory: the header is read first and an image is refused by its claimed size before its pixels exist.
#define STBI_NO_STDIO
#include <stb/stb_image.h>

#include <memory>

#include "data/formats.h"
#include "kernels/common/error.h"

namespace islkd::data {

RgbImage decode_image_rgb(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits,
                          int expect_w, int expect_h) {
  ISLKD_CHECK(size <= static_cast<size_t>(INT32_MAX), name, ": image file of ", size, " bytes is too large");
  const int n_bytes = static_cast<int>(size);
  int w = 0, h = 0, n = 0;
  ISLKD_CHECK(stbi_info_from_memory(data, n_bytes, &w, &h, &n), name, ": cannot decode image (",
              stbi_failure_reason() ? stbi_failure_reason() : "unknown format", ")");
  ISLKD_CHECK(w > 0 && h > 0, name, ": image is ", w, "x", h, " (empty)");  // stb accepts a BMP of height 0
  ISLKD_CHECK(static_cast<int64_t>(w) * h <= limits.max_pixels, name, ": image is ", w, "x", h,
              ", over the limit of ", limits.max_pixels, " pixels");
  ISLKD_CHECK(expect_w <= 0 || (w == expect_w && h == expect_h), name, ": image is ", w, "x", h,
              ", the dataset's images are ", expect_w, "x", expect_h);
  int dw = 0, dh = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(data, n_bytes, &dw, &dh, &n, 3),
                                               stbi_image_free);
  ISLKD_CHECK(px, name, ": cannot decode image (", stbi_failure_reason() ? stbi_failure_reason() : "unknown", ")");
  ISLKD_CHECK(dw == w && dh == h, name, ": decoded size ", dw, "x", dh, " differs from the header's ", w, "x", h);
  RgbImage img;
  img.w = w;
  img.h = h;
  img.rgb.assign(px.get(), px.get() + static_cast<size_t>(w) * h * 3);
  return img;
}

ImageInfo read_image_info(const uint8_t* data, size_t size, const std::string& name) {
  ISLKD_CHECK(size <= static_cast<size_t>(INT32_MAX), name, ": image file of ", size, " bytes is too large");
  ImageInfo info;
  ISLKD_CHECK(stbi_info_from_memory(data, static_cast<int>(size), &info.w, &info.h, &info.channels), name,
              ": cannot decode image (", stbi_failure_reason() ? stbi_failure_reason() : "unknown format", ")");
  ISLKD_CHECK(info.w > 0 && info.h > 0, name, ": image is ", info.w, "x", info.h, " (empty)");
  return info;
}

}  // namespace islkd::data
