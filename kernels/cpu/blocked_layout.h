// The CPU backend's blocked activation layout: a oneDNN memory descriptor (nChw8c / nChw16c as the convolution's
// plan returns it, never assumed) with its channel block read once. cpu_kernels.h hands it out as an opaque type;
// the kernels that look inside (the convolutions, the reorders) include this header.
#pragma once
#include <dnnl.hpp>

#include <cstdint>

namespace islkd::cpu {

// oneDNN's tag of the dense nChw<B>c layout (B = 8 or 16).
inline dnnl::memory::format_tag block_tag(int64_t B) {
  return B == 16 ? dnnl::memory::format_tag::nChw16c : dnnl::memory::format_tag::nChw8c;
}

// The channel block of a dense nChw8c / nChw16c descriptor (channels a multiple of the block), else 0.
inline int64_t block_of(const dnnl::memory::desc& d) {
  const dnnl::memory::dims dims = d.dims();
  if (dims.size() != 4) return 0;
  for (int64_t B : {int64_t(16), int64_t(8)})
    if (dims[1] % B == 0 && d == dnnl::memory::desc(dims, dnnl::memory::data_type::f32, block_tag(B))) return B;
  return 0;
}

struct BlockedLayout {
  explicit BlockedLayout(const dnnl::memory::desc& d) : md(d), block(block_of(d)) {}
  dnnl::memory::desc md;
  int64_t block;  // 8 / 16 when md is nChw8c / nChw16c (no channel padding), else 0: decided once, read on every op
};

}  // namespace islkd::cpu
