// The CUDA backend's API: device management, the caching allocator, the two streams, and every op of
// kernels/cpu/cpu_kernels.h with the same name and signature, taking device pointers and running on the
// compute stream. Built twice: by nvcc against the real runtime/cuBLAS/cuDNN (target islkd_cuda), and by the
// host compiler under the CUDA execution emulator + shim (target islkd_cuda_emu, used by the tests).
// This header is plain C++: the engine includes it without any CUDA header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/loss_params.h"
#include "kernels/common/sgd_params.h"
#include "kernels/common/shapes.h"

namespace islkd {
class BatchNormSync;  // kernels/common/batch_norm_sync.h
}  // namespace islkd

namespace islkd::cuda {

// ---- device ----------------------------------------------------------------------------------------
// True when a driver and at least one device exist; otherwise false with the reason in *why. Never throws.
bool device_available(std::string* why);
// True when this build runs kernels under the CPU emulator (tests), false for the real GPU build.
bool is_emulated();
void set_device(int ordinal);
void synchronize();  // waits for the compute and copy streams

// ---- the communication stream (data-parallel gradients: docs/distributed.md) ----------------------------------
// A third stream for collectives on device buffers (NCCL). comm_stream_after_compute() makes it wait for the work
// queued on the compute stream so far and returns it (a cudaStream_t; void* here, this header has no CUDA types);
// compute_waits_for_comm_stream() makes the compute stream wait for what is queued on the comm stream so far.
// Neither waits on the host.
void* comm_stream_after_compute();
void compute_waits_for_comm_stream();

// ---- convolution algorithm choice --------------------------------------------------------------------
// On (the default): only cuDNN algorithms that cuDNN reports deterministic are used, so the same GPU model and
// driver give the same bits run after run. Off (`--nondeterministic`): cuDNN's heuristic first choice whatever its
// determinism (some backward algorithms accumulate with atomics). Process-wide, read when a shape's algorithms are
// first chosen; plans are kept per setting.
void set_deterministic_algorithms(bool on);
bool deterministic_algorithms();
struct ConvAlgorithms {
  int forward = -1, backward_data = -1, backward_filter = -1;  // cudnnConvolution*Algo_t values
};
// The algorithms conv2d_* use for this shape under the current setting (choosing them if not yet chosen).
ConvAlgorithms conv2d_algorithms(const Conv2dShape& s);

// ---- math mode ---------------------------------------------------------------------------------------
// Off (the default): strict FP32 in cuDNN convolutions (CUDNN_FMA_MATH) and cuBLAS GEMMs (CUBLAS_DEFAULT_MATH),
// so results stay within FP32 rounding of the CPU backend. On: TF32 tensor cores allowed on sm_80+ (PyTorch's
// `allow_tf32`), ~10 mantissa bits per product. Process-wide, read when a convolution plan is made (plans are
// kept per setting) and before each GEMM.
void set_tf32_allowed(bool on);
bool tf32_allowed();

// ---- counters ----------------------------------------------------------------------------------------
// What the backend asked of the runtime since the process started (relaxed atomics: exact once the threads that
// queue work are quiet). A copy is pinned when its host side lies in a pinned_host_malloc block.
struct Counters {
  uint64_t kernel_launches = 0;  // custom kernels (ISLKD_LAUNCH)
  uint64_t cudnn_calls = 0;      // convolution work calls (forward, backward data / filter / bias)
  uint64_t cublas_calls = 0;     // GEMMs
  uint64_t host_syncs = 0;       // stream or device synchronisations the host waits on
  uint64_t h2d_pageable = 0, h2d_pinned = 0, d2h_pageable = 0, d2h_pinned = 0, d2d = 0;  // copies
  uint64_t h2d_bytes = 0, d2h_bytes = 0, d2d_bytes = 0;
  uint64_t cuda_mallocs = 0, cuda_malloc_bytes = 0;  // made by the caching allocator (cache misses)
};
Counters counters();
// b - a, field by field.
Counters counters_delta(const Counters& a, const Counters& b);

// ---- memory (caching allocator: no cudaMalloc/cudaFree in the steady state) -------------------------
void* device_malloc(size_t bytes);
void device_free(void* p);
size_t allocator_peak_bytes();
size_t allocator_in_use_bytes();
void allocator_release_cached();  // returns cached blocks to the driver
void* pinned_host_malloc(size_t bytes);
void pinned_host_free(void* p);
void memcpy_h2d(void* dst, const void* src, size_t bytes);  // synchronous with the compute stream
void memcpy_d2h(void* dst, const void* src, size_t bytes);
void memcpy_d2d(void* dst, const void* src, size_t bytes);
// Prefetch: copies on the copy stream and records an event; the compute stream waits for it before the
// next op that uses dst (call wait_prefetch before using the batch).
void memcpy_h2d_prefetch(void* dst, const void* src_pinned, size_t bytes);
void wait_prefetch();
// Host bytes (pageable is fine; the caller may reuse src at once) to dst with no pageable copy and no host wait:
// staged in one of a few pinned buffers, copied on the copy stream after the compute stream's queued work; the
// compute stream waits for the copy before its next op. For small per-step uploads (teacher logits, SGD tables).
void memcpy_h2d_staged(void* dst, const void* src, size_t bytes);

// ---- elementwise ---------------------------------------------------------------------------------
void fill(float* y, float value, int64_t n);
void copy(const float* x, float* y, int64_t n);
void add(const float* a, const float* b, float* y, int64_t n);     // y = a + b
void accumulate(const float* x, float* y, int64_t n);              // y += x
void scale(const float* x, float s, float* y, int64_t n);          // y = s * x
void scale_by_device_scalar(const float* x, const float* s, float* y, int64_t n);  // y = s[0] * x, s on the device
void relu_forward(const float* x, float* y, int64_t n);
void relu_backward(const float* y, const float* dy, float* dx, int64_t n);  // uses the output y (y > 0)
void sum_rows(const float* x, int64_t rows, int64_t cols, float* y);         // y[c] = sum_r x[r, c]

// ---- convolution (oneDNN) --------------------------------------------------------------------------
// residual (nullable, y's shape) is added before the ReLU: y = relu(conv(x, w) + bias + residual).
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias /*nullable*/,
                    float* y, bool fuse_relu = false, const float* residual = nullptr);
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                             float* dbias /*nullable*/);

// ---- batch norm (NCHW, per-channel over N*H*W) --------------------------------------------------------
// Training: normalises with batch statistics, saves mean and 1/sqrt(var+eps) for backward, and updates the
// running statistics with momentum (running = (1-m)*running + m*batch, running_var uses the unbiased variance).
// sync (--sync-bn, kernels/common/batch_norm_sync.h): statistics of every replica's batch together; in the backward
// dx from every replica's sums (dgamma, dbeta stay this replica's). Null: this batch alone.
void batch_norm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                              const float* beta, float* running_mean, float* running_var, float momentum,
                              float eps, float* y, float* save_mean, float* save_invstd,
                              BatchNormSync* sync = nullptr);
void batch_norm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, float eps,
                             float* y);
void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx, float* dgamma,
                         float* dbeta, BatchNormSync* sync = nullptr);

// ---- pooling ---------------------------------------------------------------------------------------
// Max pool: padding counts as -inf; argmax index (within the input plane) saved for backward.
void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax);
void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx);
// Average pool: PyTorch default count_include_pad=true.
void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y);
void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx);
// Global average pool: N*C planes of HW -> N*C values.
void global_avg_pool_forward(int64_t NC, int64_t HW, const float* x, float* y);
void global_avg_pool_backward(int64_t NC, int64_t HW, const float* dy, float* dx);

// ---- linear / GEMM ----------------------------------------------------------------------------------
// y[M,N] = x[M,K] * w[N,K]^T + b[N]
void linear_forward(int64_t M, int64_t K, int64_t N, const float* x, const float* w, const float* b, float* y);
// dx[M,K] = dy[M,N] * w[N,K]; dw[N,K] = dy^T x; db[N] = sum_m dy  (dx, dw, db each nullable)
void linear_backward(int64_t M, int64_t K, int64_t N, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);

// ---- channel ops (concat / split / shuffle) ----------------------------------------------------------
// Copies channels [src_c0, src_c0+nc) of src (N x src_C x HW) into channels [dst_c0, ...) of dst (N x dst_C x HW).
void channel_copy(int64_t N, int64_t HW, const float* src, int64_t src_C, int64_t src_c0, float* dst,
                  int64_t dst_C, int64_t dst_c0, int64_t nc);
// y[n, j*G + g] = x[n, g*(C/G) + j]  (ShuffleNet's channel shuffle); inverse=true undoes it (the backward).
void channel_shuffle(int64_t N, int64_t C, int64_t HW, int64_t groups, const float* x, float* y, bool inverse);

// ---- softmax / cross-entropy -------------------------------------------------------------------------
void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y);
// Mean cross-entropy over the batch from logits; writes per-row loss (nullable) and returns the mean.
// dlogits (nullable) = (softmax - onehot) / rows.
float cross_entropy_forward_backward(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                     float* row_loss, float* dlogits);

// ---- distillation (issue 4) ----------------------------------------------------------------------------
// One pass over teacher and student logits: returns mean total loss; writes per-instance loss (nullable),
// dL/dstudent (nullable, already divided by rows), and optional mean KD and CE parts. The return value and
// *mean_kd / *mean_ce are host values (nullable). Labels outside [0, cols) throw islkd::Error naming the row.
float kd_loss_forward_backward(int64_t rows, int64_t cols, const float* student, const float* teacher,
                               const int32_t* labels, const KDLossParams& p, float* row_loss,
                               float* dstudent, float* mean_kd, float* mean_ce);
// The same pass without a host wait (rows >= 1): the mean total loss goes to loss[0] and the mean KD and CE parts to
// parts[0..1] (nullable), all on the device. A label outside [0, cols) makes them NaN instead of throwing (nothing
// is read back to check it): the training step's loss, read every --log-every steps, then reports it.
void kd_loss_forward_backward_on_device(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                        const int32_t* labels, const KDLossParams& p, float* row_loss,
                                        float* dstudent, float* loss, float* parts);
// scores[r] per DifficultyMeasure (lower = easier); teacher may be null for CE and Confidence.
void difficulty_scores(int64_t rows, int64_t cols, const float* snapshot, const float* teacher,
                       const int32_t* labels, DifficultyMeasure m, const KDLossParams& p, float* scores);
// Stable ascending sort of float scores carrying uint32 values (instance indices): -0 -> +0, NaN last.
void radix_sort_pairs(int64_t n, const float* keys_in, const uint32_t* values_in, float* keys_out,
                      uint32_t* values_out);

// ---- training tallies (kernels/cuda/tally.cu) --------------------------------------------------------
// acc[0] += loss[0] * rows, acc[1] += rows whose argmax (first maximum) equals the label, acc[2] += rows; all on
// the device (acc: 3 doubles, loss: 1 float), so the host reads them only when it logs.
void tally_add(int64_t rows, int64_t cols, const float* logits, const int32_t* labels, const float* loss,
               double* acc);

// ---- decoupled and feature distillation (issue 14) -------------------------------------------------------
// Decoupled KD (mdistiller's dkd_loss) fused with cross-entropy, one pass: returns the mean of
//   ce_weight * CE + alpha * TCKD + beta * NCKD   (see dkd_loss.cpp; the DKD warm-up factor is folded into alpha
// and beta by the caller); writes per-instance loss (nullable), dL/dstudent (nullable, already divided by rows) and
// parts[0..2] = mean TCKD, NCKD, CE (nullable). Labels outside [0, cols) throw islkd::Error naming the row.
float dkd_loss_forward_backward(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                const int32_t* labels, float temperature, float alpha, float beta, float ce_weight,
                                float* row_loss, float* dstudent, float* parts);
// The same without a host wait (rows >= 1): the mean total to loss[0], the parts to parts[0..2] (nullable), on the
// device; a label out of range makes them NaN instead of throwing.
void dkd_loss_forward_backward_on_device(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                         const int32_t* labels, float temperature, float alpha, float beta,
                                         float ce_weight, float* row_loss, float* dstudent, float* loss,
                                         float* parts);

// Attention transfer (p = 2) of one feature pair (student N x Cs x HW, teacher N x Ct x HW; see
// kernels/cpu/feature_losses.cpp): the loss to loss[0] on the device, dL/dstudent (nullable) alongside.
void at_loss_forward_backward(int64_t N, int64_t Cs, int64_t Ct, int64_t HW, const float* student,
                              const float* teacher, float* dstudent, float* loss);
// Mean squared error over n elements to loss[0] on the device; da (nullable) = 2 (a - b) / n.
void mse_loss_forward_backward(int64_t n, const float* a, const float* b, float* da, float* loss);

// Relational losses (SP, PKT, RKD) over a batch of flattened features (student N x Ds, teacher N x Dt; see
// kernels/cpu/relational_losses.cpp): the loss to loss[0] on the device, dL/dstudent (nullable) alongside.
void sp_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                              float* dstudent, float* loss);
void pkt_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                               float* dstudent, float* loss);
// Relational KD (distance weight w_d, angle weight w_a); N x N x D floats of device temporaries (the unit differences).
void rkd_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                               float w_d, float w_a, float* dstudent, float* loss);

// VID's Gaussian negative log-likelihood (see kernels/cpu/vid_loss.cpp): the loss to loss[0] on the device,
// dL/dpred and dL/dlog_scale (each nullable) alongside.
void vid_loss_forward_backward(int64_t N, int64_t C, int64_t HW, const float* pred, const float* target,
                               const float* log_scale, float eps, float* dpred, float* dlog_scale, float* loss);

// CRD's contrast against a memory bank and the bank's update (see kernels/cpu/crd_loss.cpp): z is a [1] device
// value (set to mean(exp(score / T)) * N on the device when negative), the loss to loss[0] on the device, dL/du
// (nullable) alongside. No host sync; indices are not range-checked here (the op's caller builds them).
void crd_contrast_forward_backward(int64_t B, int64_t K1, int64_t D, int64_t N, const float* u, const float* memory,
                                   const int32_t* idx, float T, float* z, float* du, float* loss);
void crd_memory_update(int64_t B, int64_t D, int64_t N, float* memory, const float* u, const int32_t* y,
                       float momentum);

// ---- optimizer ---------------------------------------------------------------------------------------
void sgd_update(const std::vector<SGDTensor>& tensors, const SGDParams& p);

}  // namespace islkd::cuda
