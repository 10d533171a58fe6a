// Winograd F(2x2, 3x3) forward convolution on nChw8c / nChw16c activations, for inference (a frozen teacher, a snapshot
// scoring the training set). oneDNN 2.6 has no Winograd on AVX2, and its direct 3x3 kernels already run at
// 70-85% of this machine's FMA peak, so fewer multiplications is the only way left to speed them up:
// F(2x2, 3x3) computes each 2x2 output tile from a 4x4 input tile with 16 multiply-adds per (channel in, channel
// out) instead of 36 (2.25x fewer).
//
//   V[xi][t][c] = (B^T d_{t,c} B)[xi]        input tiles, transformed (xi = 4x4 position, t = tile, c = channel)
//   U[xi][c][k] = (G g_{k,c} G^T)[xi]        filters, transformed
//   M[xi]       = V[xi] * U[xi]              16 GEMMs [T x C] * [C x K] (one batched oneDNN matmul)
//   y tile      = A^T M_{t,k} A  (+ bias, + residual, ReLU)
//
// with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
// A^T = [1 1 1 0; 0 1 -1 -1]. Channels are the innermost dimension of V and M, so a tile's L channels of one
// nChw<L>c block (L = 8 or 16, a template parameter) are one vector in both transforms. The transforms are exact up to float rounding (coefficients
// 0, +-1, +-0.5); the results match the direct convolution to ~1e-6 relative.
#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/conv2d_winograd.h"

namespace islkd::cpu {

namespace {

struct Batched {
  dnnl::matmul prim;
  dnnl::memory::desc src, wei, dst, scratch;
};

dnnl::engine& wino_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One batched matmul per (T, C, K, threads): 16 x [T x C] * [C x K].
Batched& batched_gemm(int64_t T, int64_t C, int64_t K) {
  using Key = std::array<int64_t, 4>;
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<Batched>> cache;
  const Key key{T, C, K, num_threads()};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  using dnnl::memory;
  auto b = std::make_unique<Batched>();
  b->src = memory::desc({16, T, C}, memory::data_type::f32, memory::format_tag::abc);
  b->wei = memory::desc({16, C, K}, memory::data_type::f32, memory::format_tag::abc);
  b->dst = memory::desc({16, T, K}, memory::data_type::f32, memory::format_tag::abc);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(b->src, b->wei, b->dst), attr, wino_engine());
  b->prim = dnnl::matmul(pd);
  b->scratch = pd.scratchpad_desc();
  return *cache.emplace(key, std::move(b)).first->second;
}

// Per-thread buffers (V, M, U, matmul scratchpad), grown to the largest request and reused.
struct WinoArena {
  std::array<std::pair<float*, size_t>, 4> bufs{};
  ~WinoArena() {
    for (auto& b : bufs) std::free(b.first);
  }
  float* get(int slot, size_t floats) {
    auto& b = bufs[static_cast<size_t>(slot)];
    if (b.second < floats) {
      std::free(b.first);
      b.second = (floats + 1023) / 1024 * 1024;
      b.first = static_cast<float*>(std::aligned_alloc(64, b.second * sizeof(float)));
      ISLKD_CHECK(b.first, "conv2d_winograd: out of host memory allocating ", b.second * sizeof(float), " bytes");
    }
    return b.first;
  }
};

WinoArena& wino_arena() {
  thread_local WinoArena a;
  return a;
}

}  // namespace

namespace {

// L: the lanes of a channel block (nChw<L>c), one vector of the transforms.
template <int L>
void winograd_blocked(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                      const float* residual, bool relu, float* y) {
  const int64_t N = s.N, C = s.C, K = s.K, H = s.H, W = s.W;
  const int64_t TH = (H + 1) / 2, TW = (W + 1) / 2, T = N * TH * TW, CB = C / L, KB = K / L;
  // Tiles are processed in chunks whose transformed tiles (V and M) fit in the cache together: without chunking
  // the transforms stream 16x the activation through memory and the layers with many tiles lose to the direct
  // kernel (measured: 64 channels at 32x32, batch 64, 42 ms vs 28 ms).
  const int64_t chunk = std::max<int64_t>(64, std::min<int64_t>(T, kWinogradChunkBytes / (16 * (C + K) * 4)));
  WinoArena& arena = wino_arena();
  float* V = arena.get(0, static_cast<size_t>(16 * chunk * C));
  float* M = arena.get(1, static_cast<size_t>(16 * chunk * K));
  float* U = arena.get(2, static_cast<size_t>(16 * C * K));

  // Filters: U[xi][c][k] = G g G^T.
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t c = 0; c < C; ++c) {
      const float* g = w + (k * C + c) * 9;
      float t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      for (int i = 0; i < 4; ++i) {
        const float u[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                            t[i][2]};
        for (int j = 0; j < 4; ++j) U[((i * 4 + j) * C + c) * K + k] = u[j];
      }
    }
  }

  dnnl::engine& e = wino_engine();
  thread_local dnnl::stream strm(wino_engine());
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t tc = std::min(chunk, T - t0);
    // Input tiles of this chunk: V[xi][t - t0][c] = B^T d B, the L channels of a block side by side.
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t t = t0; t < t0 + tc; ++t) {
      for (int64_t cb = 0; cb < CB; ++cb) {
        const int64_t n = t / (TH * TW), th = t / TW % TH, tw = t % TW;
        const float* plane = x + (n * CB + cb) * H * W * L;
        float d[4][4][L];
        for (int i = 0; i < 4; ++i) {
          const int64_t h = 2 * th - 1 + i;
          for (int j = 0; j < 4; ++j) {
            const int64_t ww = 2 * tw - 1 + j;
            const bool in = h >= 0 && h < H && ww >= 0 && ww < W;
            const float* p = in ? plane + (h * W + ww) * L : plane;
#pragma omp simd
            for (int l = 0; l < L; ++l) d[i][j][l] = in ? p[l] : 0.0f;
          }
        }
        float r[4][4][L];  // B^T d
        for (int j = 0; j < 4; ++j)
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            r[0][j][l] = d[0][j][l] - d[2][j][l];
            r[1][j][l] = d[1][j][l] + d[2][j][l];
            r[2][j][l] = d[2][j][l] - d[1][j][l];
            r[3][j][l] = d[1][j][l] - d[3][j][l];
          }
        for (int i = 0; i < 4; ++i) {
          float* v0 = V + ((i * 4 + 0) * tc + (t - t0)) * C + cb * L;
          float* v1 = V + ((i * 4 + 1) * tc + (t - t0)) * C + cb * L;
          float* v2 = V + ((i * 4 + 2) * tc + (t - t0)) * C + cb * L;
          float* v3 = V + ((i * 4 + 3) * tc + (t - t0)) * C + cb * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            v0[l] = r[i][0][l] - r[i][2][l];
            v1[l] = r[i][1][l] + r[i][2][l];
            v2[l] = r[i][2][l] - r[i][1][l];
            v3[l] = r[i][1][l] - r[i][3][l];
          }
        }
      }
    }

    // The 16 GEMMs of the chunk.
    try {
      Batched& b = batched_gemm(tc, C, K);
      float* scratch = arena.get(3, b.scratch.get_size() / sizeof(float) + 1);
      b.prim.execute(strm, {{DNNL_ARG_SRC, dnnl::memory(b.src, e, V)},
                            {DNNL_ARG_WEIGHTS, dnnl::memory(b.wei, e, U)},
                            {DNNL_ARG_DST, dnnl::memory(b.dst, e, M)},
                            {DNNL_ARG_SCRATCHPAD, dnnl::memory(b.scratch, e, scratch)}});
      strm.wait();
    } catch (const dnnl::error& err) {
      ISLKD_FAIL("conv2d_winograd: oneDNN matmul failed for ", tc, " tiles, C ", C, ", K ", K, ": ", err.what());
    }

    // Output tiles of this chunk: y = A^T m A (+ bias, + residual, ReLU).
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t t = t0; t < t0 + tc; ++t) {
      for (int64_t kb = 0; kb < KB; ++kb) {
        const int64_t n = t / (TH * TW), th = t / TW % TH, tw = t % TW;
        float bv[L];
        for (int l = 0; l < L; ++l) bv[l] = bias ? bias[kb * L + l] : 0.0f;
        const size_t plane = static_cast<size_t>((n * KB + kb) * H * W * L);
        float m[16][L];
        for (int xi = 0; xi < 16; ++xi) {
          const float* p = M + (xi * tc + (t - t0)) * K + kb * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) m[xi][l] = p[l];
        }
        float r[2][4][L];  // A^T m
        for (int j = 0; j < 4; ++j)
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            r[0][j][l] = m[j][l] + m[4 + j][l] + m[8 + j][l];
            r[1][j][l] = m[4 + j][l] - m[8 + j][l] - m[12 + j][l];
          }
        for (int i = 0; i < 2; ++i) {
          const int64_t h = 2 * th + i;
          if (h >= H) break;
          float o[2][L];
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            o[0][l] = r[i][0][l] + r[i][1][l] + r[i][2][l] + bv[l];
            o[1][l] = r[i][1][l] - r[i][2][l] - r[i][3][l] + bv[l];
          }
          for (int j = 0; j < 2; ++j) {
            const int64_t ww = 2 * tw + j;
            if (ww >= W) break;
            const size_t at = plane + static_cast<size_t>((h * W + ww) * L);
            const float* res = residual ? residual + at : nullptr;
            float* q = y + at;
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              const float v = o[j][l] + (res ? res[l] : 0.0f);
              q[l] = relu ? (v > 0.0f ? v : 0.0f) : v;
            }
          }
        }
      }
    }
  }
}

}  // namespace

bool winograd_applicable(const Conv2dShape& s) {
  if (const char* e = std::getenv("ISLKD_WINOGRAD"); e && e[0] == '0') return false;
  return s.groups == 1 && s.R == 3 && s.S == 3 && s.stride == 1 && s.pad == 1 && s.C % 16 == 0 &&
         s.K % 16 == 0 && s.C >= kWinogradMinChannels && s.K >= kWinogradMinChannels;
}

void conv2d_forward_winograd_blocked(const Conv2dShape& s, int64_t block, const float* x, const float* w,
                                     const float* bias, const float* residual, bool relu, float* y) {
  ISLKD_CHECK(block == 8 || block == 16, "conv2d_forward_winograd_blocked: no kernel for the layout nChw", block,
              "c (supported: nChw8c, nChw16c)");
  ISLKD_CHECK(s.groups == 1 && s.R == 3 && s.S == 3 && s.stride == 1 && s.pad == 1 && s.C % block == 0 &&
                  s.K % block == 0,
              "conv2d_forward_winograd_blocked: needs a 3x3, stride 1, pad 1 convolution with channels divisible by ",
              block);
  if (block == 16)
    winograd_blocked<16>(s, x, w, bias, residual, relu, y);
  else
    winograd_blocked<8>(s, x, w, bias, residual, relu, y);
}

}  // namespace islkd::cpu
