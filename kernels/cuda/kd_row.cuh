// The per-row statistics shared by the fused KD loss (kd_loss.cu) and the difficulty scores
// (difficulty_scores.cu), so an instance's `loss` score is computed exactly as its training loss. The CUDA twin of
// kernels/cpu/kd_row.h; see kd_loss.cu for the derivation. Include after cuda_common.cuh and reduce.cuh.
#pragma once

namespace islkd::cuda::detail {

// Block-uniform statistics of one row, relative to the row maxima ms (student) and mt (teacher):
//   zsT = sum exp((s-ms)/T), zs = sum exp(s-ms), ztT = sum exp((t-mt)/T),
//   w   = sum exp((t-mt)/T) * ((t-mt)/T - (s-ms)/T)          (the p_t-weighted log-ratio sum, unnormalised)
// so KL(p_t^T || p_s^T) = w/ztT - log ztT + log zsT. Without a teacher, ztT and w are 0.
struct KDRowStats {
  float ms, mt, zsT, zs, ztT, w;
};

// Computes KDRowStats for a row of C logits with one pass over memory: each thread keeps online (running-max)
// partial sums over its strided elements and rescales them when a maximum grows (for w the shift of both maxima
// enters: w' = f * (w + ztT * ((mt - mt') - (ms - ms')) / T) with f = exp((mt - mt')/T)); the block then takes
// the maxima, rescales every thread's partials to them and adds them with fixed trees. Every exponent is <= 0.
// When stage_s / stage_t are non-null, each thread also stores the logits it read there (element c at index c),
// so a later sweep by the same thread over the same elements reads shared memory instead of global memory.
// Every thread of the block must call it (block reductions: 12 barriers). blockDim.x a multiple of 32.
// skip >= 0 leaves that element out of the statistics (still staged): DKD's non-target statistics. When no element
// is left (C = 1), the maxima are -inf and the sums 0.
template <bool kTeacher>
__device__ KDRowStats kd_row_stats(int64_t C, const float* __restrict__ s, const float* __restrict__ t,
                                   float invT, float* stage_s, float* stage_t, float* scratch, int64_t skip = -1) {
  float ms = -INFINITY, mt = -INFINITY, zsT = 0.0f, zs = 0.0f, ztT = 0.0f, w = 0.0f;
  bool any = false;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float sv = s[c];
    const float tv = kTeacher ? t[c] : 0.0f;
    if (stage_s) stage_s[c] = sv;
    if (kTeacher && stage_t) stage_t[c] = tv;
    if (c == skip) continue;
    if (!any) {
      ms = sv;
      mt = tv;
      any = true;
    } else if (sv > ms || tv > mt) {
      const float nms = fmaxf(ms, sv), nmt = fmaxf(mt, tv);
      const float fsT = expf((ms - nms) * invT), fs = expf(ms - nms);
      zsT *= fsT;
      zs *= fs;
      if (kTeacher) {
        const float ft = expf((mt - nmt) * invT);
        w = ft * (w + ztT * (((mt - nmt) - (ms - nms)) * invT));
        ztT *= ft;
      }
      ms = nms;
      mt = nmt;
    }
    const float a = (sv - ms) * invT;
    zsT += expf(a);
    zs += expf(sv - ms);
    if (kTeacher) {
      const float b = (tv - mt) * invT;
      const float eb = expf(b);
      ztT += eb;
      w += eb * (b - a);
    }
  }
  KDRowStats r;
  r.ms = block_max(ms, scratch);
  r.mt = kTeacher ? block_max(mt, scratch) : 0.0f;
  if (any) {
    zsT *= expf((ms - r.ms) * invT);
    zs *= expf(ms - r.ms);
    if (kTeacher) {
      const float ft = expf((mt - r.mt) * invT);
      w = ft * (w + ztT * (((mt - r.mt) - (ms - r.ms)) * invT));
      ztT *= ft;
    }
  }
  r.zsT = block_sum(zsT, scratch);
  r.zs = block_sum(zs, scratch);
  r.ztT = kTeacher ? block_sum(ztT, scratch) : 0.0f;
  r.w = kTeacher ? block_sum(w, scratch) : 0.0f;
  return r;
}

// T^2 * KL(p_t^T || p_s^T) from the statistics.
__device__ __forceinline__ float kd_from_stats(const KDRowStats& r, float T) {
  return T * T * (r.w / r.ztT - logf(r.ztT) + logf(r.zsT));
}

// log softmax(s)[y] from the statistics and the label's logit.
__device__ __forceinline__ float log_p_label(const KDRowStats& r, float s_y) { return (s_y - r.ms) - logf(r.zs); }

// Threads per row: one warp for C <= 32 up to 256 for C >= 256 (a multiple of 32, no idle warps on small C).
inline int kd_row_threads(int64_t C) {
  int64_t t = (C + 31) / 32 * 32;
  return static_cast<int>(t < 256 ? t : 256);
}

}  // namespace islkd::cuda::detail
