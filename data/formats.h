// Parsers for the binary dataset formats (IDX, CIFAR binary, MATLAB level-5 MAT for SVHN), from memory.
// They depend on nothing but islkd::Error and zlib, so the fuzzers (tests/fuzz) build them without the engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/regular_file.h"

namespace islkd::data {

// Decoded images of one file (or split): n instances of c x h x w uint8 pixels, CHW per instance, back to back.
struct RawImages {
  int64_t n = 0;
  int c = 0, h = 0, w = 0;
  std::vector<uint8_t> pixels;  // n * c * h * w
  std::vector<int32_t> labels;  // n
  int64_t instance_bytes() const { return static_cast<int64_t>(c) * h * w; }
};

// Whole file into memory (read_regular_file: a regular file of at most max_bytes, checked before allocating);
// Error naming the file when it cannot be opened or read, is not a regular file or is too large.
std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes = kMaxDataFileBytes);

// Deflate expands at most 1032:1 (RFC 1951: one 258-byte match per ~2 bits), so an inflated size claimed beyond
// 1032 x the compressed size is a lie, refused before anything is allocated for it.
constexpr size_t kMaxDeflateRatio = 1032;

// True when the bytes start with the gzip magic (1f 8b).
bool is_gzip(const uint8_t* data, size_t size);
// Inflates a gzip or zlib stream; refuses to produce more than max_out bytes (so a corrupt or hostile length
// cannot exhaust memory). `name` names the file in errors.
std::vector<uint8_t> inflate_all(const uint8_t* data, size_t size, size_t max_out, const std::string& name);
// The first min(n, total) inflated bytes of a gzip or zlib stream (a header read before sizing the rest): stops
// after n bytes without an error; corrupt data before that is an error naming the file.
std::vector<uint8_t> inflate_prefix(const uint8_t* data, size_t size, size_t n, const std::string& name);

// ---- IDX (MNIST, Fashion-MNIST): magic 00 00 08 <ndim>, ndim big-endian uint32 sizes, then the ubytes -----
// Either file may be gzip-compressed (detected by its magic). Images: ndim 3 (N, H, W); labels: ndim 1 (N),
// each < num_classes. Names are used in errors only.
struct IdxLimits {
  size_t max_inflated_bytes = size_t(1) << 32;
};
RawImages parse_idx(const uint8_t* images, size_t images_size, const std::string& images_name,
                    const uint8_t* labels, size_t labels_size, const std::string& labels_name, int num_classes,
                    const IdxLimits& limits = {});
// One IDX file on its own (the fuzz entry point and the building block of parse_idx): returns the dims and
// sets *payload/*payload_size to the (inflated, owned by `storage`) data part.
std::vector<uint32_t> parse_idx_header(const uint8_t* data, size_t size, const std::string& name,
                                       std::vector<uint8_t>& storage, const uint8_t** payload,
                                       size_t* payload_size, const IdxLimits& limits = {});

// ---- CIFAR binary: records of label byte(s) + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major 32x32) ----
// CIFAR-10: label_bytes 1, label_index 0, num_classes 10. CIFAR-100: label_bytes 2 (coarse, fine);
// label_index 1 for fine (100 classes) or 0 for coarse (20 classes). Appends to `out` (3 x 32 x 32).
void parse_cifar(const uint8_t* data, size_t size, const std::string& name, int label_bytes, int label_index,
                 int num_classes, RawImages& out);

// ---- SVHN cropped digits: MATLAB level-5 MAT with X (32x32x3xN uint8) and y (Nx1, any numeric class, 1..10,
// 10 meaning digit 0). miCOMPRESSED (zlib) elements are inflated; other variables are skipped.
struct MatLimits {
  size_t max_inflated_bytes = size_t(1) << 34;
};
RawImages parse_svhn_mat(const uint8_t* data, size_t size, const std::string& name, const MatLimits& limits = {});

// ---- Images (ImageFolder / CINIC-10): PNG, JPEG or BMP decoded to interleaved RGB -------------------------------
// The header is read first: an image over max_pixels, or (expect_w > 0) of another size than expect_w x expect_h,
// is refused before its pixels are allocated (a 746 KB PNG can claim 16000 x 16000 = 768 MB of RGB).
struct ImageLimits {
  int64_t max_pixels = int64_t(4096) * 4096;  // 48 MiB of RGB per image (and per loader worker)
};
struct RgbImage {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;  // h * w * 3, row-major, interleaved
};
RgbImage decode_image_rgb(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits = {},
                          int expect_w = 0, int expect_h = 0);
// The header only (stbi_info, no pixels decoded): the size and the channel count stored in the file (1 grey,
// 2 grey + alpha, 3 RGB, 4 RGBA). Error naming `name` when it is not a PNG/JPEG/BMP or claims an empty size.
struct ImageInfo {
  int w = 0, h = 0, channels = 0;
};
ImageInfo read_image_info(const uint8_t* data, size_t size, const std::string& name);

}  // namespace islkd::data
