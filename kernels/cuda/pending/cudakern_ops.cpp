// TEMPORARY: throwing placeholders for the CUDA ops whose .cu files are being written on branch cudakern
// (batch norm, pooling, softmax / cross-entropy, channel ops, SGD, KD loss, difficulty scores, radix sort).
// Weak symbols in a library linked after the backend: a real kernels/cuda/<op>.cu definition always wins.
// Delete this directory once every op has landed.
#include "kernels/common/error.h"
#include "kernels/cuda/cuda_kernels.h"

#define ISLKD_PENDING __attribute__((weak))

namespace islkd::cuda {

[[noreturn]] static void pending(const char* op) {
  ISLKD_FAIL("CUDA op ", op, " is not in this build yet (its kernel lands with branch cudakern); use --device cpu");
}

ISLKD_PENDING void batch_norm_forward_train(int64_t, int64_t, int64_t, const float*, const float*, const float*,
                                            float*, float*, float, float, float*, float*, float*) {
  pending("batch_norm_forward_train");
}
ISLKD_PENDING void batch_norm_forward_eval(int64_t, int64_t, int64_t, const float*, const float*, const float*,
                                           const float*, const float*, float, float*) {
  pending("batch_norm_forward_eval");
}
ISLKD_PENDING void batch_norm_backward(int64_t, int64_t, int64_t, const float*, const float*, const float*,
                                       const float*, const float*, float*, float*, float*) {
  pending("batch_norm_backward");
}
ISLKD_PENDING void max_pool2d_forward(const Pool2dShape&, const float*, float*, int32_t*) {
  pending("max_pool2d_forward");
}
ISLKD_PENDING void max_pool2d_backward(const Pool2dShape&, const float*, const int32_t*, float*) {
  pending("max_pool2d_backward");
}
ISLKD_PENDING void avg_pool2d_forward(const Pool2dShape&, const float*, float*) { pending("avg_pool2d_forward"); }
ISLKD_PENDING void avg_pool2d_backward(const Pool2dShape&, const float*, float*) { pending("avg_pool2d_backward"); }
ISLKD_PENDING void global_avg_pool_forward(int64_t, int64_t, const float*, float*) {
  pending("global_avg_pool_forward");
}
ISLKD_PENDING void global_avg_pool_backward(int64_t, int64_t, const float*, float*) {
  pending("global_avg_pool_backward");
}
ISLKD_PENDING void channel_copy(int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t, int64_t, int64_t) {
  pending("channel_copy");
}
ISLKD_PENDING void channel_shuffle(int64_t, int64_t, int64_t, int64_t, const float*, float*, bool) {
  pending("channel_shuffle");
}
ISLKD_PENDING void softmax_forward(int64_t, int64_t, const float*, float*) { pending("softmax_forward"); }
ISLKD_PENDING float cross_entropy_forward_backward(int64_t, int64_t, const float*, const int32_t*, float*, float*) {
  pending("cross_entropy_forward_backward");
}
ISLKD_PENDING float kd_loss_forward_backward(int64_t, int64_t, const float*, const float*, const int32_t*,
                                             const KDLossParams&, float*, float*, float*, float*) {
  pending("kd_loss_forward_backward");
}
ISLKD_PENDING void difficulty_scores(int64_t, int64_t, const float*, const float*, const int32_t*, DifficultyMeasure,
                                     const KDLossParams&, float*) {
  pending("difficulty_scores");
}
ISLKD_PENDING void radix_sort_pairs(int64_t, const float*, const uint32_t*, float*, uint32_t*) {
  pending("radix_sort_pairs");
}
ISLKD_PENDING void sgd_update(const std::vector<SGDTensor>&, const SGDParams&) { pending("sgd_update"); }

}  // namespace islkd::cuda
