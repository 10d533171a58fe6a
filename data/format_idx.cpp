// IDX reader (MNIST, Fashion-MNIST): the format of Yann LeCun's MNIST page, raw or gzip-compressed.
#include "data/formats.h"
#include "kernels/common/error.h"

namespace islkd::data {

static uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::vector<uint32_t> parse_idx_header(const uint8_t* data, size_t size, const std::string& name,
                                       std::vector<uint8_t>& storage, const uint8_t** payload,
                                       size_t* payload_size, const IdxLimits& limits) {
  if (is_gzip(data, size)) {
    // The header says how many bytes the file must inflate to: read it first and inflate no more than that (plus
    // one byte, to see trailing data), so a small hostile file cannot make us allocate up to the general limit.
    std::vector<uint8_t> head = inflate_prefix(data, size, 4 + 4 * 4, name);
    const int nd = head.size() >= 4 ? head[3] : 0;
    if (head.size() >= 4 && head[0] == 0 && head[1] == 0 && nd >= 1 && nd <= 4 &&
        head.size() >= 4 + 4 * size_t(nd)) {
      uint64_t claimed = 4 + 4 * uint64_t(nd), count = 1;
      bool overflow = false;
      for (int d = 0; d < nd; ++d)
        overflow |= __builtin_mul_overflow(count, uint64_t(be32(head.data() + 4 + 4 * d)), &count);
      overflow |= __builtin_add_overflow(claimed, count, &claimed);
      ISLKD_CHECK(!overflow && claimed <= limits.max_inflated_bytes, name, ": the IDX header (offset 4) describes ",
                  overflow ? std::string("more than 2^64") : std::to_string(claimed), " bytes, more than the limit of ",
                  limits.max_inflated_bytes, " bytes");
      ISLKD_CHECK(claimed <= kMaxDeflateRatio * uint64_t(size), name, ": the IDX header (offset 4) describes ",
                  claimed, " bytes, more than ", size, " compressed bytes can hold (deflate expands at most ",
                  kMaxDeflateRatio, ":1); corrupt or hostile file");
      storage = inflate_prefix(data, size, static_cast<size_t>(claimed) + 1, name);
      ISLKD_CHECK(storage.size() <= claimed, name, ": the compressed data inflates to more than the ", claimed,
                  " bytes its IDX header describes");
    } else {
      storage = std::move(head);  // not a valid IDX header: the checks below say what is wrong with it
    }
    data = storage.data();
    size = storage.size();
  }
  ISLKD_CHECK(size >= 4, name, ": truncated IDX file (", size, " bytes, the header needs at least 4)");
  ISLKD_CHECK(data[0] == 0 && data[1] == 0, name, ": not an IDX file (magic bytes at offset 0 are ", int(data[0]),
              " ", int(data[1]), ", expected 0 0)");
  ISLKD_CHECK(data[2] == 0x08, name, ": IDX element type 0x", std::hex, int(data[2]), std::dec,
              " at offset 2 is not unsigned byte (0x08), the only type MNIST-style datasets use");
  const int ndim = data[3];
  ISLKD_CHECK(ndim >= 1 && ndim <= 4, name, ": IDX dimension count ", ndim, " at offset 3 (expected 1..4)");
  const size_t header = 4 + 4 * size_t(ndim);
  ISLKD_CHECK(size >= header, name, ": truncated IDX header (", size, " bytes, ", ndim, " dimensions need ",
              header, ")");
  std::vector<uint32_t> dims(ndim);
  uint64_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    dims[d] = be32(data + 4 + 4 * d);
    ISLKD_CHECK(!__builtin_mul_overflow(count, uint64_t(dims[d]), &count) && count <= size, name,
                ": IDX dimensions at offset 4 describe more data than the file holds (", size - header,
                " bytes after the header)");
  }
  ISLKD_CHECK(size - header == count, name, ": IDX size mismatch: dimensions at offset 4 describe ", count,
              " bytes of data, the file has ", size - header, " after the ", header, "-byte header");
  *payload = data + header;
  *payload_size = size - header;
  return dims;
}

RawImages parse_idx(const uint8_t* images, size_t images_size, const std::string& images_name,
                    const uint8_t* labels, size_t labels_size, const std::string& labels_name, int num_classes,
                    const IdxLimits& limits) {
  std::vector<uint8_t> img_store, lab_store;
  const uint8_t *img, *lab;
  size_t img_n, lab_n;
  auto idims = parse_idx_header(images, images_size, images_name, img_store, &img, &img_n, limits);
  auto ldims = parse_idx_header(labels, labels_size, labels_name, lab_store, &lab, &lab_n, limits);
  ISLKD_CHECK(idims.size() == 3, images_name, ": an IDX image file has 3 dimensions (N, H, W), this one has ",
              idims.size());
  ISLKD_CHECK(ldims.size() == 1, labels_name, ": an IDX label file has 1 dimension (N), this one has ",
              ldims.size());
  ISLKD_CHECK(idims[1] > 0 && idims[2] > 0 && idims[1] <= 4096 && idims[2] <= 4096, images_name,
              ": implausible image size ", idims[1], "x", idims[2], " in the header at offset 8");
  ISLKD_CHECK(idims[0] == ldims[0], "image count ", idims[0], " in ", images_name, " does not match label count ",
              ldims[0], " in ", labels_name);
  RawImages out;
  out.n = idims[0];
  out.c = 1;
  out.h = static_cast<int>(idims[1]);
  out.w = static_cast<int>(idims[2]);
  out.pixels.assign(img, img + img_n);
  out.labels.resize(lab_n);
  for (size_t i = 0; i < lab_n; ++i) {
    ISLKD_CHECK(lab[i] < num_classes, labels_name, ": label ", int(lab[i]), " of entry ", i, " (offset ", 8 + i,
                ") is out of range for ", num_classes, " classes");
    out.labels[i] = lab[i];
  }
  return out;
}

}  // namespace islkd::data
