// Fused multi-tensor SGD step on CUDA (weight decay, momentum with dampening, Nesterov, PyTorch's first step),
// same semantics and arithmetic order as kernels/cpu/sgd_update.cpp:
//   d = g + wd*p;  buf = first ? d : m*buf + (1-damp)*d;  d = nesterov ? d + m*buf : buf;  p = p - lr*d
// (without momentum, or for a tensor without a buffer: p = p - lr*(g + wd*p)).
//
// Work split: ONE launch for all parameters. The host cuts every tensor into chunks of at most kChunkElems
// elements and uploads a table of {param, grad, buf, n} descriptors (a few KiB for a ResNet); block b updates
// chunk b with a block-stride loop. A model has dozens of small tensors (BN scales, biases): one launch per tensor
// would cost more in launch overhead than the whole update.
// Napkin math: 12 bytes read + 8 written per element with momentum (8 + 4 without): memory-bound; a ResNet-20
// (0.27 M parameters) moves ~5 MB per step. Loads are scalar because chunk starts inherit the tensors' offsets,
// which need not be 16-byte aligned.
// The descriptor table changes every step (gradients are new tensors), so it is uploaded every step, through the
// backend's pinned staging (memcpy_h2d_staged: copy stream, events) into a block of the caching allocator, which
// hands blocks out in compute-stream order, so no later op can overwrite it before this kernel has read it.
// Steady state: one small pinned copy, no pageable copy, no cudaMalloc and no host wait.
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"

namespace islkd::cuda {

namespace {

// 256 threads x 32 elements per chunk: big tensors split into many blocks, small ones take one block each.
constexpr int kThreads = 256;
constexpr int64_t kChunkElems = 256 * 32;

struct SGDChunk {
  float* param;
  const float* grad;
  float* buf;  // null: plain SGD for this chunk
  int64_t n;
};

__global__ void sgd_update_kernel(const SGDChunk* __restrict__ chunks, float lr, float wd, float m, float keep,
                                  bool nesterov, bool first) {
  const SGDChunk ch = chunks[blockIdx.x];
  if (ch.buf == nullptr) {
    for (int64_t i = threadIdx.x; i < ch.n; i += blockDim.x) {
      float d = ch.grad[i];
      if (wd != 0.0f) d = d + wd * ch.param[i];
      ch.param[i] = ch.param[i] - lr * d;
    }
  } else {
    for (int64_t i = threadIdx.x; i < ch.n; i += blockDim.x) {
      float d = ch.grad[i];
      if (wd != 0.0f) d = d + wd * ch.param[i];
      const float b = first ? d : m * ch.buf[i] + keep * d;
      ch.buf[i] = b;
      d = nesterov ? d + m * b : b;
      ch.param[i] = ch.param[i] - lr * d;
    }
  }
}

}  // namespace

void sgd_update(const std::vector<SGDTensor>& tensors, const SGDParams& p) {
  const bool momentum = p.momentum != 0.0f;
  std::vector<SGDChunk> chunks;
  for (const SGDTensor& t : tensors) {
    ISLKD_CHECK(t.n >= 0, "sgd_update: negative element count ", t.n);
    for (int64_t off = 0; off < t.n; off += kChunkElems) {
      const int64_t n = t.n - off < kChunkElems ? t.n - off : kChunkElems;
      float* buf = momentum && t.momentum_buf ? t.momentum_buf + off : nullptr;
      chunks.push_back(SGDChunk{t.param + off, t.grad + off, buf, n});
    }
  }
  if (chunks.empty()) return;
  ISLKD_CHECK(chunks.size() <= 0x7fffffffu, "sgd_update: too many parameter chunks (", chunks.size(), ")");
  const int64_t count = static_cast<int64_t>(chunks.size());
  detail::DeviceTemp<SGDChunk> table(count);
  memcpy_h2d_staged(table.get(), chunks.data(), chunks.size() * sizeof(SGDChunk));
  ISLKD_LAUNCH(sgd_update_kernel, dim3(static_cast<unsigned>(count)), dim3(kThreads), 0, compute_stream(),
               table.get(), p.lr, p.weight_decay, p.momentum, 1.0f - p.dampening, p.nesterov, p.first_step);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
