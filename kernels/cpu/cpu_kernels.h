// The CPU backend's kernel API: raw pointers to contiguous float32 (or int32/uint32) memory plus shape structs.
// Every function here has a twin of the same name and signature in kernels/cuda/cuda_kernels.h.
// Backward functions overwrite their outputs (=) unless the name says accumulate.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/common/loss_params.h"
#include "kernels/common/sgd_params.h"
#include "kernels/common/shapes.h"

namespace islkd {
class BatchNormSync;  // kernels/common/batch_norm_sync.h
}  // namespace islkd

namespace islkd::cpu {

// ---- threads -------------------------------------------------------------------------------------
void set_num_threads(int n);  // OpenMP + oneDNN thread count (0 = leave default / OMP_NUM_THREADS)
int num_threads();

// ---- elementwise ---------------------------------------------------------------------------------
void fill(float* y, float value, int64_t n);
void copy(const float* x, float* y, int64_t n);
void add(const float* a, const float* b, float* y, int64_t n);     // y = a + b
void accumulate(const float* x, float* y, int64_t n);              // y += x
void scale(const float* x, float s, float* y, int64_t n);          // y = s * x
void relu_forward(const float* x, float* y, int64_t n);
void relu_backward(const float* y, const float* dy, float* dx, int64_t n);  // uses the output y (y > 0)
void sum_rows(const float* x, int64_t rows, int64_t cols, float* y);         // y[c] = sum_r x[r, c]

// ---- convolution (oneDNN) --------------------------------------------------------------------------
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias /*nullable*/,
                    float* y, bool fuse_relu = false);
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                             float* dbias /*nullable*/);

// ---- blocked activations for inference (a frozen model's forward keeps oneDNN's layout between layers) ------
// Opaque: the oneDNN memory layout of an N x C x H x W activation, as a convolution primitive prefers it.
struct BlockedLayout;
// The layout conv2d_forward_blocked writes for this shape (shared, the same object for every call).
std::shared_ptr<const BlockedLayout> conv2d_forward_blocked_layout(const Conv2dShape& s, bool bias, bool fuse_relu);
size_t blocked_bytes(const BlockedLayout& l);  // buffer size (channel padding included)
bool same_blocked_layout(const BlockedLayout& a, const BlockedLayout& b);
// conv2d_forward (groups == 1) reading x in layout x_layout (null = plain NCHW) and leaving y in
// conv2d_forward_blocked_layout(s, bias != null, fuse_relu): no reorder of the activations when consecutive
// convolutions agree on the layout. residual (nullable, in y's layout): y = relu?(conv + bias + residual) in the
// same call (oneDNN's binary-add post-op) instead of a separate add and ReLU.
void conv2d_forward_blocked(const Conv2dShape& s, const BlockedLayout* x_layout, const float* x, const float* w,
                            const float* bias /*nullable*/, float* y, bool fuse_relu,
                            const float* residual = nullptr);
void blocked_to_plain(const BlockedLayout& l, const float* src, float* dst);  // dst: plain NCHW
void plain_to_blocked(const BlockedLayout& l, const float* src, float* dst);  // src: plain NCHW

// ---- channel-blocked activations nChw<B>c (CPU only; no CUDA twin) ----------------------------------
// oneDNN's nChw<B>c ([N][C/B][H][W][B]) is the layout its direct convolutions compute in: B = 8 with jit:avx2,
// 16 with jit:avx512_core. Training and the blocked inference keep activations of convolutions with channel counts
// divisible by B in it, so no reorder runs around each convolution; batch norm, ReLU and add read it directly
// (batch_norm_*_blocked below, elementwise ops as is). B is the same for the whole process:
//   activation_block()         B: ISLKD_CPU_CHANNEL_BLOCK (8 or 16) when set, else native_activation_block(),
//                              else 8. Read once; an unsupported forced value is an islkd::Error naming the layout.
//   native_activation_block()  the block of the destination oneDNN's forward-training convolution picks on this
//                              machine (read from its primitive descriptor; 0 when neither 8 nor 16).
int64_t activation_block();
int64_t native_activation_block();
std::string activation_layout_name();              // "nChw16c", ...
std::string onednn_isa();  // the instruction set oneDNN dispatches to here (avx2, avx512_core, ...; ONEDNN_MAX_CPU_ISA caps it)
int64_t parse_channel_block(const char* value);    // ISLKD_CPU_CHANNEL_BLOCK's parser: 0 when unset; throws
std::shared_ptr<const BlockedLayout> activation_layout(int64_t N, int64_t C, int64_t H, int64_t W);  // C % B == 0
int64_t channel_block(const BlockedLayout& l);  // 8 / 16 when l is nChw8c / nChw16c (C % block == 0), else 0
// groups == 1, K % B == 0; y / dy are nChw<B>c; x (and dx) are nChw<B>c when x_blk (C % B == 0), else plain NCHW.
// A forced B that the machine's jit kernels do not compute in is reordered at the convolution's boundary.
void conv2d_forward_cb(const Conv2dShape& s, bool x_blk, const float* x, const float* w,
                       const float* bias /*nullable*/, float* y);
void conv2d_backward_data_cb(const Conv2dShape& s, const float* dy, const float* w, bool dx_blk, float* dx);
void conv2d_backward_weights_cb(const Conv2dShape& s, bool x_blk, const float* x, const float* dy, float* dw,
                                float* dbias /*nullable*/);
// oneDNN's implementation name (jit:avx2, jit:avx512_core, ref:any, ...) behind a call, for tests and benchmarks:
// the training plan of conv2d_*_cb (pass 0 forward, 1 backward-data, 2 backward-weights; without bias), and the
// inference plan of conv2d_forward_blocked.
std::string conv2d_cb_impl(const Conv2dShape& s, int pass, bool x_blk);
std::string conv2d_forward_blocked_impl(const Conv2dShape& s, bool bias, bool fuse_relu, bool residual);

// ---- batch norm (NCHW, per-channel over N*H*W) --------------------------------------------------------
// Training: normalises with batch statistics, saves mean and 1/sqrt(var+eps) for backward, and updates the
// running statistics with momentum (running = (1-m)*running + m*batch, running_var uses the unbiased variance).
void batch_norm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                              const float* beta, float* running_mean, float* running_var, float momentum,
                              float eps, float* y, float* save_mean, float* save_invstd);
void batch_norm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, float eps,
                             float* y);
void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx, float* dgamma,
                         float* dbeta);

// The same three on channel-blocked activations [N][C/B][HW][B] (B = 8 or 16: nChw<B>c; B = 1 is plain NCHW);
// C % B == 0. relu (B = 8 or 16): y = max(0, BN(x)) in the same pass; the backward of that fused op passes its output as
// relu_y and uses dy only where relu_y > 0 (no separate ReLU pass forward or backward).
// sync (--sync-bn, kernels/common/batch_norm_sync.h): the statistics of every replica's batch together, and in the
// backward dx from every replica's two sums (dgamma, dbeta stay this replica's); null: this batch alone.
void batch_norm_forward_train_blocked(int64_t N, int64_t C, int64_t HW, int64_t B, const float* x,
                                      const float* gamma, const float* beta, float* running_mean,
                                      float* running_var, float momentum, float eps, float* y, float* save_mean,
                                      float* save_invstd, bool relu = false, BatchNormSync* sync = nullptr);
void batch_norm_forward_eval_blocked(int64_t N, int64_t C, int64_t HW, int64_t B, const float* x,
                                     const float* gamma, const float* beta, const float* running_mean,
                                     const float* running_var, float eps, float* y, bool relu = false);
void batch_norm_backward_blocked(int64_t N, int64_t C, int64_t HW, int64_t B, const float* x, const float* dy,
                                 const float* gamma, const float* save_mean, const float* save_invstd, float* dx,
                                 float* dgamma, float* dbeta, const float* relu_y = nullptr,
                                 BatchNormSync* sync = nullptr);

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
// scores[r] per DifficultyMeasure (lower = easier); teacher may be null for CE and Confidence.
void difficulty_scores(int64_t rows, int64_t cols, const float* snapshot, const float* teacher,
                       const int32_t* labels, DifficultyMeasure m, const KDLossParams& p, float* scores);
// Stable ascending sort of float scores carrying uint32 values (instance indices): -0 -> +0, NaN last.
void radix_sort_pairs(int64_t n, const float* keys_in, const uint32_t* values_in, float* keys_out,
                      uint32_t* values_out);

// ---- decoupled and feature distillation (issue 14) -------------------------------------------------------
// Decoupled KD (mdistiller's dkd_loss) fused with cross-entropy, one pass: returns the mean of
//   ce_weight * CE + alpha * TCKD + beta * NCKD   (see dkd_loss.cpp; the DKD warm-up factor is folded into alpha
// and beta by the caller); writes per-instance loss (nullable), dL/dstudent (nullable, already divided by rows) and
// parts[0..2] = mean TCKD, NCKD, CE (nullable). Labels outside [0, cols) throw islkd::Error naming the row.
float dkd_loss_forward_backward(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                const int32_t* labels, float temperature, float alpha, float beta, float ce_weight,
                                float* row_loss, float* dstudent, float* parts);

// Attention transfer (p = 2) of one feature pair (student N x Cs x HW, teacher N x Ct x HW; see
// feature_losses.cpp): returns the loss, writes dL/dstudent (nullable).
float at_loss_forward_backward(int64_t N, int64_t Cs, int64_t Ct, int64_t HW, const float* student,
                               const float* teacher, float* dstudent);
// Mean squared error over n elements; da (nullable) = 2 (a - b) / n.
float mse_loss_forward_backward(int64_t n, const float* a, const float* b, float* da);

// Relational losses over a batch of flattened features (student N x Ds, teacher N x Dt; see
// relational_losses.cpp): similarity preserving (SP), probabilistic knowledge transfer (PKT) and relational KD (RKD). Return the loss,
// write dL/dstudent (nullable).
float sp_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                               float* dstudent);
float pkt_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                                float* dstudent);
// Relational KD (distance weight w_d, angle weight w_a).
float rkd_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                                float w_d, float w_a, float* dstudent);

// VID's Gaussian negative log-likelihood (pred, target N x C x HW; per-channel variance softplus(log_scale) + eps; see
// vid_loss.cpp): returns the loss, writes dL/dpred and dL/dlog_scale (each nullable).
float vid_loss_forward_backward(int64_t N, int64_t C, int64_t HW, const float* pred, const float* target,
                                const float* log_scale, float eps, float* dpred, float* dlog_scale);

// CRD's contrast of anchors u (B x D, L2-normalised inside) against a memory bank (N x D) at index rows idx (B x K1:
// the positive, then K1 - 1 negatives; see crd_loss.cpp): returns the NCE loss, sets *z = mean(exp(score / T)) * N
// when *z < 0 (the first batch), writes dL/du (nullable). The bank's momentum update of rows y (distinct) from u.
float crd_contrast_forward_backward(int64_t B, int64_t K1, int64_t D, int64_t N, const float* u, const float* memory,
                                    const int32_t* idx, float T, float* z, float* du);
void crd_memory_update(int64_t B, int64_t D, int64_t N, float* memory, const float* u, const int32_t* y,
                       float momentum);

// ---- optimizer ---------------------------------------------------------------------------------------
void sgd_update(const std::vector<SGDTensor>& tensors, const SGDParams& p);

}  // namespace islkd::cpu
