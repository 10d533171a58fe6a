// The op API: every differentiable operation of the engine, one name each. An op checks shapes and devices
// at its boundary (messages name the op and both shapes), dispatches on the tensor's device to
// kernels/cpu or kernels/cuda, and records its backward on the autograd tape when an input requires grad.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "kernels/common/batch_norm_sync.h"
#include "kernels/common/loss_params.h"
#include "kernels/common/shapes.h"

namespace islkd::ops {

// ---- activation layout (CPU training) ----
// On: CPU convolutions with channel counts divisible by the activation block B (groups 1) leave their outputs in
// oneDNN's nChw<B>c blocked layout also in training (B = 8 on AVX2, 16 on AVX-512: what oneDNN's convolution picks
// on the machine; ISLKD_CPU_CHANNEL_BLOCK=8|16 forces one, see kernels/cpu/cpu_kernels.h), and batch norm, ReLU and add keep it, so no reorder runs around each
// convolution (forward, backward-data, backward-weights). Other ops convert at their boundary (differentiably).
// Off (the default): training activations are plain NCHW. Process-wide; train, train_kd and the benchmarks
// switch it on.
void set_cpu_blocked_activations(bool on);
bool cpu_blocked_activations();

// ---- elementwise ----
Tensor relu(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);  // same shape
Tensor scale(const Tensor& x, float s);

// ---- shape ----
Tensor reshape(const Tensor& x, const Shape& shape);  // shares storage; gradient reshaped back
Tensor flatten(const Tensor& x);                      // N x (rest)
Tensor concat(const std::vector<Tensor>& xs);         // along channels (dim 1) of NCHW / NC tensors
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& channels);  // along dim 1
Tensor channel_shuffle(const Tensor& x, int64_t groups);

// ---- layers ----
// x: N x C x H x W, w: K x C/groups x R x S, bias: K or undefined. fuse_relu only without autograd (inference).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride, int64_t pad,
              int64_t groups = 1, bool fuse_relu = false);
// Inference only (no autograd; an input that requires grad under grad mode is an error): on the CPU the output
// stays in oneDNN's blocked layout (Layout::DnnlBlocked; to_plain() converts, ops convert at their boundary, relu
// and add work on it directly), so a frozen model's consecutive convolutions skip the reorders. Grouped
// convolutions and CUDA tensors give conv2d's plain output. A defined residual (the output's shape, any layout) is
// added before the ReLU: relu?(conv(x) + bias + residual), fused into the convolution on the CPU (a ResNet
// block's shortcut), a separate add elsewhere.
Tensor conv2d_inference(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride, int64_t pad,
                        int64_t groups = 1, bool fuse_relu = false, const Tensor& residual = Tensor());
// Training mode normalises with batch statistics and updates running_mean / running_var in place. fuse_relu gives
// relu(batch_norm2d(x)), in one pass forward and backward on nChw<B>c activations (ops::relu after it elsewhere).
// sync (training only; --sync-bn, kernels/common/batch_norm_sync.h): the batch statistics are those of every
// replica's batch together (running statistics updated with them, unbiased with the global count), and the backward's
// dx is the global batch's (its two per-channel sums combined over the replicas); dgamma and dbeta stay this replica's,
// for the gradient all-reduce to average like every other parameter's. Every replica must run the same BN layers in
// the same order. With one replica: the same bits as without.
Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f,
                    bool fuse_relu = false, const std::shared_ptr<BatchNormSync>& sync = nullptr);
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad = 0);
Tensor global_avg_pool(const Tensor& x);  // N x C x H x W -> N x C
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);  // x: M x K, w: N x K, bias: N or undefined

// ---- losses / probabilities ----
Tensor softmax(const Tensor& x);  // rows of an M x C tensor; forward only (no autograd)
// Mean cross-entropy over the batch from logits (M x C) and int32 labels (M). Scalar output.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);

// Fused Hinton KD loss: alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE(student, label), mean over rows.
// The teacher is treated as constant. Labels int32 (M); a label outside [0, C) is an islkd::Error naming the row.
struct KDLossOutput {
  Tensor loss;      // shape [1], differentiable w.r.t. student
  Tensor row_loss;  // M, no grad
  // Host values on the CPU. On CUDA nothing is read back (no host sync in the step): they are NaN and `parts`
  // holds them on the device ([2]: mean KD, mean CE); a label out of range makes the loss NaN there.
  float mean_kd = 0.0f, mean_ce = 0.0f;
  Tensor parts;
};
KDLossOutput kd_loss(const Tensor& student, const Tensor& teacher, const Tensor& labels, const KDLossParams& p);
// Decoupled KD (Zhao et al. 2022; mdistiller's DKD) fused with cross-entropy in one kernel (kernels/*/dkd_loss.*):
//   loss = mean over rows of ce_weight * CE + warmup * (alpha * TCKD + beta * NCKD)
// TCKD: T^2 * binary KL between the teacher's and student's target / non-target masses at temperature T;
// NCKD: T^2 * KL between their distributions over the non-target classes. Defaults are mdistiller's
// (configs/cifar100/dkd: DKD.CE_WEIGHT 1.0, ALPHA 1.0, BETA 8.0, T 4.0, WARMUP 20); `warmup` is the loss-weight
// warm-up factor min(epoch / 20, 1) of the current epoch (engine/distill/dkd.h), 1 after the warm-up. The teacher is
// a constant; labels int32 as kd_loss.
struct DKDLossParams {
  float temperature = 4.0f, alpha = 1.0f, beta = 8.0f, ce_weight = 1.0f, warmup = 1.0f;
};
struct DKDLossOutput {
  Tensor loss;      // shape [1], differentiable w.r.t. student
  Tensor row_loss;  // M, no grad
  // [3] = mean TCKD, mean NCKD, mean CE (unweighted), on the loss's device (CUDA: no host sync; NaN when a label is
  // out of range there, an islkd::Error on the CPU).
  Tensor parts;
};
DKDLossOutput dkd_loss(const Tensor& student, const Tensor& teacher, const Tensor& labels, const DKDLossParams& p);

// ---- feature distillation ----
// Attention transfer (Zagoruyko & Komodakis; RepDistiller's distiller_zoo/AT.py with p = 2) for one feature pair of
// equal N, H, W (channels may differ): at(f) = normalize(mean_c f^2 viewed N x HW) (L2 per sample, eps 1e-12),
// loss = mean over N*HW of (at(student) - at(teacher))^2. Shape [1]; gradient w.r.t. student only.
Tensor at_loss(const Tensor& student, const Tensor& teacher);
// Mean squared error over all elements (torch's nn.MSELoss(), RepDistiller's HintLoss); same shapes. Shape [1];
// differentiable w.r.t. both inputs.
Tensor mse_loss(const Tensor& a, const Tensor& b);

// ---- relational distillation (kernels/*/relational_losses.*) ----
// Over a batch of features flattened per instance (student N x ..., teacher N x ...; sizes may differ, N equal).
// Shape [1]; gradient w.r.t. the student only (the teacher is a constant).
// Similarity preserving (Tung & Mori; RepDistiller's distiller_zoo/SP.py similarity_loss): the batch's Gram matrices
// f f^T, rows L2-normalised (F.normalize), loss = sum of squared differences / N^2.
Tensor sp_loss(const Tensor& student, const Tensor& teacher);
// Probabilistic knowledge transfer (Passalis & Tefas; RepDistiller's distiller_zoo/PKT.py cosine_similarity_loss,
// eps 1e-7): cosine similarities mapped to [0, 1] and normalised per row into conditional distributions, loss =
// mean over N^2 of Qt log((Qt + eps) / (Qs + eps)).
Tensor pkt_loss(const Tensor& student, const Tensor& teacher);
// Relational KD (Park et al.; RepDistiller's distiller_zoo/RKD.py RKDLoss): w_d * smooth_l1 between the batch's
// pairwise distances (pdist, eps 1e-12, each divided by its mean over the off-diagonal) + w_a * smooth_l1 between the
// cosines of the angles of every triple (F.normalize'd differences), means over N^2 and N^3. A batch of 1: 0.
Tensor rkd_loss(const Tensor& student, const Tensor& teacher, float w_d, float w_a);

// VID's Gaussian negative log-likelihood (Ahn et al.; RepDistiller's distiller_zoo/VID.py VIDLoss after its
// regressor): pred (the regressor's output) and target N x C x H x W, log_scale [C]; v_c = softplus(log_scale_c) +
// eps, loss = mean of 0.5 ((pred - target)^2 / v_c + log v_c). Shape [1]; differentiable w.r.t. pred and log_scale
// (the target is a constant).
Tensor vid_loss(const Tensor& pred, const Tensor& target, const Tensor& log_scale, float eps);

// CRD's contrast of anchors against a memory bank (Tian et al.; RepDistiller's crd/memory.py ContrastMemory scores
// and crd/criterion.py ContrastLoss for one side, kernels/*/crd_loss.*). embed: B x D, an Embed's linear output, L2
// normalised inside (Embed's Normalize, fused: v = embed / |embed|); memory: N x D (a constant here); idx: int32
// B x (K+1) rows of memory, the positive first. Scores P_bk = exp(<memory[idx_bk], v_b> / T) / Z; z is a [1] tensor
// on the memory's device holding Z: while negative (the run's first batch) it is set to mean(exp(score / T)) * N
// in place, then it stays. Returns ContrastLoss ([1]: NCE with noise 1 / N, eps 1e-7), differentiable w.r.t. embed;
// the gradient is formed in the forward sweep, so crd_memory_update may change the bank before backward runs. The
// gathered rows are read by index, never materialised (B x (K+1) x D).
Tensor crd_contrast_loss(const Tensor& embed, const Tensor& memory, const Tensor& idx, float temperature,
                         const Tensor& z);
// ContrastMemory's update, in place, no grad: memory[y_b] = normalize(momentum * memory[y_b] + (1 - momentum) *
// embed_b / |embed_b|). y: int32 [B], the batch's instances; a row whose y is -1 is skipped, so the rows written are
// distinct (objective crd passes -1 for all but the last row of an instance repeated within a batch).
void crd_memory_update(const Tensor& memory, const Tensor& embed, const Tensor& y, float momentum);

// Per-instance difficulty (lower = easier) from a frozen snapshot's and the teacher's logits. No grad. The teacher
// may be undefined for DifficultyMeasure::CE and ::Confidence.
Tensor difficulty_scores(const Tensor& snapshot, const Tensor& teacher, const Tensor& labels, DifficultyMeasure m,
                         const KDLossParams& p);
// Stable ascending sort of scores (-0 == +0, NaN last) carrying values; returns (sorted keys, sorted values).
// keys: 1-D float32 on any device; values on the host. Output keys are canonical (-0 -> +0, one NaN bit pattern).
std::pair<Tensor, std::vector<uint32_t>> radix_sort_pairs(const Tensor& keys, const std::vector<uint32_t>& values);

}  // namespace islkd::ops
