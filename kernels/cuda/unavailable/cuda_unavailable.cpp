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
void synchronize() { unavailable(); }
size_t allocator_peak_bytes() { unavailable(); }
void* pinned_host_malloc(size_t) { unavailable(); }
void pinned_host_free(void*) {}
void memcpy_h2d_prefetch(void*, const void*, size_t) { unavailable(); }
void wait_prefetch() { unavailable(); }
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
float kd_loss_forward_backward(int64_t, int64_t, const float*, const float*, const int32_t*, const KDLossParams&,
                               float*, float*, float*, float*) {
  unavailable();
}
void difficulty_scores(int64_t, int64_t, const float*, const float*, const int32_t*, DifficultyMeasure,
                       const KDLossParams&, float*) {
  unavailable();
}
void radix_sort_pairs(int64_t, const float*, const uint32_t*, float*, uint32_t*) { unavailable(); }

// Referenced by the layer ops (engine/ops_conv2d.cpp, ops_batch_norm.cpp, ops_*pool*.cpp, ops_linear.cpp,
// ops_channel.cpp, ops_softmax.cpp, ops_cross_entropy.cpp).
void conv2d_forward(const Conv2dShape&, const float*, const float*, const float*, float*, bool) { unavailable(); }
void conv2d_backward_data(const Conv2dShape&, const float*, const float*, float*) { unavailable(); }
void conv2d_backward_weights(const Conv2dShape&, const float*, const float*, float*, float*) { unavailable(); }
void batch_norm_forward_train(int64_t, int64_t, int64_t, const float*, const float*, const float*, float*, float*,
                              float, float, float*, float*, float*) {
  unavailable();
}
void batch_norm_forward_eval(int64_t, int64_t, int64_t, const float*, const float*, const float*, const float*,
                             const float*, float, float*) {
  unavailable();
}
void batch_norm_backward(int64_t, int64_t, int64_t, const float*, const float*, const float*, const float*,
                         const float*, float*, float*, float*) {
  unavailable();
}
void max_pool2d_forward(const Pool2dShape&, const float*, float*, int32_t*) { unavailable(); }
void max_pool2d_backward(const Pool2dShape&, const float*, const int32_t*, float*) { unavailable(); }
void avg_pool2d_forward(const Pool2dShape&, const float*, float*) { unavailable(); }
void avg_pool2d_backward(const Pool2dShape&, const float*, float*) { unavailable(); }
void global_avg_pool_forward(int64_t, int64_t, const float*, float*) { unavailable(); }
void global_avg_pool_backward(int64_t, int64_t, const float*, float*) { unavailable(); }
void linear_forward(int64_t, int64_t, int64_t, const float*, const float*, const float*, float*) { unavailable(); }
void linear_backward(int64_t, int64_t, int64_t, const float*, const float*, const float*, float*, float*, float*) {
  unavailable();
}
void channel_copy(int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t, int64_t, int64_t) {
  unavailable();
}
void channel_shuffle(int64_t, int64_t, int64_t, int64_t, const float*, float*, bool) { unavailable(); }
void softmax_forward(int64_t, int64_t, const float*, float*) { unavailable(); }
float cross_entropy_forward_backward(int64_t, int64_t, const float*, const int32_t*, float*, float*) {
  unavailable();
}

}  // namespace islkd::cuda
