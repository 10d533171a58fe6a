// Placeholder CUDA backend for builds without one: every device call fails with a clear message.
// (Replaced by the real backend islkd_cuda / the emulated islkd_cuda_emu once kernels/cuda/*.cu exist.)
#include "kernels/common/error.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda {

[[noreturn]] static void unavailable() { ISLKD_FAIL("this build has no CUDA backend; use --device cpu"); }

bool device_available(std::string* why) {
  if (why) *why = "this build has no CUDA backend";
  return false;
}
bool is_emulated() { return false; }
void* device_malloc(size_t) { unavailable(); }
void device_free(void*) {}
void memcpy_h2d(void*, const void*, size_t) { unavailable(); }
void memcpy_d2h(void*, const void*, size_t) { unavailable(); }
void memcpy_d2d(void*, const void*, size_t) { unavailable(); }
void fill(float*, float, int64_t) { unavailable(); }
void accumulate(const float*, float*, int64_t) { unavailable(); }
void add(const float*, const float*, float*, int64_t) { unavailable(); }
void scale(const float*, float, float*, int64_t) { unavailable(); }
void relu_forward(const float*, float*, int64_t) { unavailable(); }
void relu_backward(const float*, const float*, float*, int64_t) { unavailable(); }
void sgd_update(const std::vector<SGDTensor>&, const SGDParams&) { unavailable(); }

}  // namespace islkd::cuda
