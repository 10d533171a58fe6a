// Microbenchmarks of every CPU kernel (islkd::cpu) and of the oneDNN convolution calls at the layer shapes of
// resnet20 (batch 128) and resnet8x4 (batch 64) on 32x32 inputs. Each benchmark reports time plus achieved GB/s
// (memory-bound kernels: bytes the kernel must move at least once) or GFLOP/s (convolutions, linear), and the same
// as a percentage of this machine's peak, which a small probe measures once at start: an FMA loop on every thread
// for FLOP/s, a STREAM triad for bandwidth.
//
// Smoke (CI): kernels_bench --benchmark_min_time=0.01 --benchmark_filter=<pattern>.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "bench/conv_bench_shape.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/cpu_kernels.h"

using namespace islkd;

namespace {

double g_peak_flops = 1.0;  // FLOP/s, all threads
double g_peak_bytes = 1.0;  // bytes/s, all threads

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Peak FMA throughput: 10 independent 8-wide accumulator chains per thread hide the FMA latency (4-5 cycles at 2
// issues per cycle needs >= 8-10 chains). 2 FLOPs per lane per FMA.
__attribute__((target("avx2,fma"))) double fma_loop(int64_t iters) {
  __m256 acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_ps(1.0f + 1e-3f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 10; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

double probe_peak_flops() {
  const int64_t iters = 20'000'000;
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    double sink = 0.0;
    const double t0 = now_s();
#pragma omp parallel reduction(+ : sink)
    sink += fma_loop(iters);
    const double t = now_s() - t0;
    benchmark::DoNotOptimize(sink);
    best = std::max(best, 2.0 * 8 * 10 * double(iters) * omp_get_max_threads() / t);
  }
  return best;
}

// STREAM triad a = b + s*c over 3 arrays of 32 MiB each (far beyond the caches); counts 3 x 4 bytes per element.
double probe_peak_bandwidth() {
  const int64_t n = int64_t(1) << 23;
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_s();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    const double t = now_s() - t0;
    benchmark::DoNotOptimize(a.data());
    best = std::max(best, 12.0 * double(n) / t);
  }
  return best;
}

std::vector<float> randn(int64_t n, uint64_t seed = 1) {
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(s >> 40) / double(1ull << 24) * 2.0 - 1.0);
  }
  return v;
}

// Counters: the rate and its share of the probed peak. The loop is timed here (wall clock, as UseRealTime) so the
// counters are plain numbers rather than Google Benchmark's "/s" rates.
class Rate {
 public:
  Rate() : t0_(now_s()) {}
  void bytes(benchmark::State& st, double per_iter) { set(st, per_iter, "GB/s", "%peakBW", g_peak_bytes); }
  void flops(benchmark::State& st, double per_iter) { set(st, per_iter, "GFLOP/s", "%peakFLOP", g_peak_flops); }

 private:
  void set(benchmark::State& st, double per_iter, const char* name, const char* pct, double peak) {
    const double rate = per_iter * double(st.iterations()) / (now_s() - t0_);
    st.counters[name] = rate / 1e9;
    st.counters[pct] = 100.0 * rate / peak;
  }
  double t0_;
};

// Activation sizes of the models' elementwise work: resnet20 layer1 at batch 128 (128x16x32x32 = 2M floats) and
// resnet8x4 layer1 at batch 64 (64x64x32x32 = 4M floats).
const int64_t kActs[] = {128 * 16 * 32 * 32, 64 * 64 * 32 * 32};

// ---- elementwise ----
void BM_relu_forward(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto x = randn(n), y = std::vector<float>(n);
  Rate rate;
  for (auto _ : st) cpu::relu_forward(x.data(), y.data(), n);
  rate.bytes(st, 8.0 * n);
}
void BM_relu_backward(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto y = randn(n), dy = randn(n, 2), dx = std::vector<float>(n);
  Rate rate;
  for (auto _ : st) cpu::relu_backward(y.data(), dy.data(), dx.data(), n);
  rate.bytes(st, 12.0 * n);
}
void BM_add(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto a = randn(n), b = randn(n, 2), y = std::vector<float>(n);
  Rate rate;
  for (auto _ : st) cpu::add(a.data(), b.data(), y.data(), n);
  rate.bytes(st, 12.0 * n);
}
void BM_accumulate(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto x = randn(n), y = randn(n, 2);
  Rate rate;
  for (auto _ : st) cpu::accumulate(x.data(), y.data(), n);
  rate.bytes(st, 12.0 * n);
}
BENCHMARK(BM_relu_forward)->Arg(kActs[0])->Arg(kActs[1])->UseRealTime();
BENCHMARK(BM_relu_backward)->Arg(kActs[0])->Arg(kActs[1])->UseRealTime();
BENCHMARK(BM_add)->Arg(kActs[0])->Arg(kActs[1])->UseRealTime();
BENCHMARK(BM_accumulate)->Arg(kActs[0])->Arg(kActs[1])->UseRealTime();

// ---- batch norm: args N, C, HW ----
void BM_batch_norm_forward_train(benchmark::State& st) {
  const int64_t N = st.range(0), C = st.range(1), HW = st.range(2), n = N * C * HW;
  auto x = randn(n), y = std::vector<float>(n), g = std::vector<float>(C, 1.0f), b = std::vector<float>(C, 0.0f);
  std::vector<float> rm(C, 0.0f), rv(C, 1.0f), sm(C), si(C);
  Rate rate;
  for (auto _ : st)
    cpu::batch_norm_forward_train(N, C, HW, x.data(), g.data(), b.data(), rm.data(), rv.data(), 0.1f, 1e-5f,
                                  y.data(), sm.data(), si.data());
  rate.bytes(st, 8.0 * n);  // at least: read x once, write y once (statistics need a second read from cache)
}
void BM_batch_norm_forward_eval(benchmark::State& st) {
  const int64_t N = st.range(0), C = st.range(1), HW = st.range(2), n = N * C * HW;
  auto x = randn(n), y = std::vector<float>(n), g = std::vector<float>(C, 1.0f), b = std::vector<float>(C, 0.0f);
  std::vector<float> rm(C, 0.0f), rv(C, 1.0f);
  Rate rate;
  for (auto _ : st)
    cpu::batch_norm_forward_eval(N, C, HW, x.data(), g.data(), b.data(), rm.data(), rv.data(), 1e-5f, y.data());
  rate.bytes(st, 8.0 * n);
}
void BM_batch_norm_backward(benchmark::State& st) {
  const int64_t N = st.range(0), C = st.range(1), HW = st.range(2), n = N * C * HW;
  auto x = randn(n), dy = randn(n, 2), dx = std::vector<float>(n), g = std::vector<float>(C, 1.0f);
  std::vector<float> sm(C, 0.0f), si(C, 1.0f), dg(C), db(C);
  Rate rate;
  for (auto _ : st)
    cpu::batch_norm_backward(N, C, HW, x.data(), dy.data(), g.data(), sm.data(), si.data(), dx.data(), dg.data(),
                             db.data());
  rate.bytes(st, 12.0 * n);
}
#define BN_SHAPES ->Args({128, 16, 1024})->Args({128, 64, 64})->Args({64, 64, 1024})->Args({64, 256, 64})->UseRealTime()
BENCHMARK(BM_batch_norm_forward_train) BN_SHAPES;
BENCHMARK(BM_batch_norm_forward_eval) BN_SHAPES;
BENCHMARK(BM_batch_norm_backward) BN_SHAPES;

// ---- pooling: N, C, H (square), kernel=stride ----
Pool2dShape pool_shape(benchmark::State& st) {
  Pool2dShape s;
  s.N = st.range(0), s.C = st.range(1), s.H = s.W = st.range(2), s.kernel = s.stride = st.range(3);
  return s;
}
void BM_max_pool2d_forward(benchmark::State& st) {
  const auto s = pool_shape(st);
  auto x = randn(s.N * s.C * s.H * s.W);
  std::vector<float> y(s.N * s.C * s.OH() * s.OW());
  std::vector<int32_t> am(y.size());
  Rate rate;
  for (auto _ : st) cpu::max_pool2d_forward(s, x.data(), y.data(), am.data());
  rate.bytes(st, 4.0 * x.size() + 8.0 * y.size());
}
void BM_max_pool2d_backward(benchmark::State& st) {
  const auto s = pool_shape(st);
  std::vector<float> x = randn(s.N * s.C * s.H * s.W), dx(x.size());
  std::vector<float> y(s.N * s.C * s.OH() * s.OW()), dy = randn(int64_t(y.size()), 3);
  std::vector<int32_t> am(y.size());
  cpu::max_pool2d_forward(s, x.data(), y.data(), am.data());
  Rate rate;
  for (auto _ : st) cpu::max_pool2d_backward(s, dy.data(), am.data(), dx.data());
  rate.bytes(st, 4.0 * dx.size() + 8.0 * dy.size());
}
void BM_avg_pool2d_forward(benchmark::State& st) {
  const auto s = pool_shape(st);
  auto x = randn(s.N * s.C * s.H * s.W);
  std::vector<float> y(s.N * s.C * s.OH() * s.OW());
  Rate rate;
  for (auto _ : st) cpu::avg_pool2d_forward(s, x.data(), y.data());
  rate.bytes(st, 4.0 * x.size() + 4.0 * y.size());
}
void BM_avg_pool2d_backward(benchmark::State& st) {
  const auto s = pool_shape(st);
  std::vector<float> dx(s.N * s.C * s.H * s.W), dy = randn(s.N * s.C * s.OH() * s.OW());
  Rate rate;
  for (auto _ : st) cpu::avg_pool2d_backward(s, dy.data(), dx.data());
  rate.bytes(st, 4.0 * dx.size() + 4.0 * dy.size());
}
// avg 8x8 on the final 8x8 map is RepDistiller's head (resnet20: 128x64, resnet8x4: 64x256); max 2x2 is VGG's.
BENCHMARK(BM_max_pool2d_forward)->Args({128, 64, 32, 2})->UseRealTime();
BENCHMARK(BM_max_pool2d_backward)->Args({128, 64, 32, 2})->UseRealTime();
BENCHMARK(BM_avg_pool2d_forward)->Args({128, 64, 8, 8})->Args({64, 256, 8, 8})->UseRealTime();
BENCHMARK(BM_avg_pool2d_backward)->Args({128, 64, 8, 8})->Args({64, 256, 8, 8})->UseRealTime();

void BM_global_avg_pool_forward(benchmark::State& st) {
  const int64_t NC = st.range(0), HW = st.range(1);
  auto x = randn(NC * HW);
  std::vector<float> y(NC);
  Rate rate;
  for (auto _ : st) cpu::global_avg_pool_forward(NC, HW, x.data(), y.data());
  rate.bytes(st, 4.0 * NC * HW);
}
void BM_global_avg_pool_backward(benchmark::State& st) {
  const int64_t NC = st.range(0), HW = st.range(1);
  auto dy = randn(NC);
  std::vector<float> dx(NC * HW);
  Rate rate;
  for (auto _ : st) cpu::global_avg_pool_backward(NC, HW, dy.data(), dx.data());
  rate.bytes(st, 4.0 * NC * HW);
}
BENCHMARK(BM_global_avg_pool_forward)->Args({128 * 64, 64})->Args({64 * 256, 64})->UseRealTime();
BENCHMARK(BM_global_avg_pool_backward)->Args({128 * 64, 64})->Args({64 * 256, 64})->UseRealTime();

// ---- linear (the fc head): M, K, N ----
void BM_linear_forward(benchmark::State& st) {
  const int64_t M = st.range(0), K = st.range(1), N = st.range(2);
  auto x = randn(M * K), w = randn(N * K, 2), b = randn(N, 3);
  std::vector<float> y(M * N);
  Rate rate;
  for (auto _ : st) cpu::linear_forward(M, K, N, x.data(), w.data(), b.data(), y.data());
  rate.flops(st, 2.0 * M * K * N);
}
void BM_linear_backward(benchmark::State& st) {
  const int64_t M = st.range(0), K = st.range(1), N = st.range(2);
  auto x = randn(M * K), w = randn(N * K, 2), dy = randn(M * N, 3);
  std::vector<float> dx(M * K), dw(N * K), db(N);
  Rate rate;
  for (auto _ : st) cpu::linear_backward(M, K, N, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  rate.flops(st, 4.0 * M * K * N);
}
BENCHMARK(BM_linear_forward)->Args({128, 64, 100})->Args({64, 256, 100})->UseRealTime();
BENCHMARK(BM_linear_backward)->Args({128, 64, 100})->Args({64, 256, 100})->UseRealTime();

// ---- channel ops (ShuffleNet): N, C, HW ----
void BM_channel_copy(benchmark::State& st) {
  const int64_t N = st.range(0), C = st.range(1), HW = st.range(2);
  auto src = randn(N * C * HW);
  std::vector<float> dst(N * 2 * C * HW);
  Rate rate;
  for (auto _ : st) cpu::channel_copy(N, HW, src.data(), C, 0, dst.data(), 2 * C, C, C);
  rate.bytes(st, 8.0 * N * C * HW);
}
void BM_channel_shuffle(benchmark::State& st) {
  const int64_t N = st.range(0), C = st.range(1), HW = st.range(2);
  auto x = randn(N * C * HW);
  std::vector<float> y(x.size());
  Rate rate;
  for (auto _ : st) cpu::channel_shuffle(N, C, HW, 2, x.data(), y.data(), false);
  rate.bytes(st, 8.0 * N * C * HW);
}
BENCHMARK(BM_channel_copy)->Args({64, 116, 256})->UseRealTime();
BENCHMARK(BM_channel_shuffle)->Args({64, 232, 256})->UseRealTime();

// ---- softmax / CE / KD loss / difficulty scores: rows, cols ----
void BM_softmax_forward(benchmark::State& st) {
  const int64_t R = st.range(0), C = st.range(1);
  auto x = randn(R * C);
  std::vector<float> y(x.size());
  Rate rate;
  for (auto _ : st) cpu::softmax_forward(R, C, x.data(), y.data());
  rate.bytes(st, 8.0 * R * C);
}
std::vector<int32_t> labels(int64_t R, int64_t C) {
  std::vector<int32_t> y(R);
  for (int64_t i = 0; i < R; ++i) y[i] = static_cast<int32_t>((i * 7919) % C);
  return y;
}
void BM_cross_entropy(benchmark::State& st) {
  const int64_t R = st.range(0), C = st.range(1);
  auto x = randn(R * C);
  auto y = labels(R, C);
  std::vector<float> rl(R), dl(x.size());
  Rate rate;
  for (auto _ : st) benchmark::DoNotOptimize(cpu::cross_entropy_forward_backward(R, C, x.data(), y.data(), rl.data(), dl.data()));
  rate.bytes(st, 8.0 * R * C);
}
void BM_kd_loss(benchmark::State& st) {
  const int64_t R = st.range(0), C = st.range(1);
  auto s = randn(R * C, 1), t = randn(R * C, 2);
  auto y = labels(R, C);
  std::vector<float> rl(R), ds(s.size());
  KDLossParams p;
  Rate rate;
  for (auto _ : st)
    benchmark::DoNotOptimize(
        cpu::kd_loss_forward_backward(R, C, s.data(), t.data(), y.data(), p, rl.data(), ds.data(), nullptr, nullptr));
  rate.bytes(st, 12.0 * R * C);  // read s and t, write dL/ds
}
void BM_difficulty_scores(benchmark::State& st) {
  const int64_t R = st.range(0), C = st.range(1);
  auto s = randn(R * C, 1), t = randn(R * C, 2);
  auto y = labels(R, C);
  std::vector<float> sc(R);
  KDLossParams p;
  Rate rate;
  for (auto _ : st)
    cpu::difficulty_scores(R, C, s.data(), t.data(), y.data(), DifficultyMeasure::Loss, p, sc.data());
  rate.bytes(st, 8.0 * R * C);
}
BENCHMARK(BM_softmax_forward)->Args({128, 100})->Args({50000, 100})->UseRealTime();
BENCHMARK(BM_cross_entropy)->Args({128, 100})->Args({50000, 100})->UseRealTime();
BENCHMARK(BM_kd_loss)->Args({128, 100})->Args({64, 100})->Args({50000, 100})->Args({256, 1000})->UseRealTime();
BENCHMARK(BM_difficulty_scores)->Args({50000, 100})->Args({50000, 1000})->UseRealTime();

// ---- radix sort: n keys ----
void BM_radix_sort_pairs(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto k = randn(n, 5);
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  std::vector<float> ko(n);
  std::vector<uint32_t> vo(n);
  Rate rate;
  for (auto _ : st) cpu::radix_sort_pairs(n, k.data(), v.data(), ko.data(), vo.data());
  // 4 passes of 8 bits, each reads and writes key+value (the histogram pass reads keys once more).
  rate.bytes(st, 4.0 * 16.0 * n);
}
BENCHMARK(BM_radix_sort_pairs)->Arg(50000)->Arg(1 << 20)->UseRealTime();

// ---- SGD update: total parameters (resnet20 ~ 0.28M, resnet8x4 ~ 1.2M, one tensor) ----
void BM_sgd_update(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto p = randn(n, 1), g = randn(n, 2), m = randn(n, 3);
  SGDParams sp;
  sp.lr = 0.05f;
  std::vector<SGDTensor> ts{{p.data(), g.data(), m.data(), n}};
  Rate rate;
  for (auto _ : st) cpu::sgd_update(ts, sp);
  rate.bytes(st, 20.0 * n);  // read p, g, m; write p, m
}
BENCHMARK(BM_sgd_update)->Arg(278324)->Arg(1233540)->UseRealTime();

// ---- oneDNN convolutions at the models' layer shapes ----
// Args: N, C, H (square), K, kernel, stride. pad = kernel / 2.
using islkd::bench::conv_flops;
using islkd::bench::conv_shape;

void BM_conv2d_forward(benchmark::State& st) {
  const auto s = conv_shape(st);
  auto x = randn(s.N * s.C * s.H * s.W), w = randn(s.K * s.C * s.R * s.S, 2);
  std::vector<float> y(s.N * s.K * s.OH() * s.OW());
  Rate rate;
  for (auto _ : st) cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y.data());
  rate.flops(st, conv_flops(s));
}
void BM_conv2d_backward_data(benchmark::State& st) {
  const auto s = conv_shape(st);
  auto dy = randn(s.N * s.K * s.OH() * s.OW()), w = randn(s.K * s.C * s.R * s.S, 2);
  std::vector<float> dx(s.N * s.C * s.H * s.W);
  Rate rate;
  for (auto _ : st) cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
  rate.flops(st, conv_flops(s));
}
void BM_conv2d_backward_weights(benchmark::State& st) {
  const auto s = conv_shape(st);
  auto x = randn(s.N * s.C * s.H * s.W), dy = randn(s.N * s.K * s.OH() * s.OW(), 2);
  std::vector<float> dw(s.K * s.C * s.R * s.S);
  Rate rate;
  for (auto _ : st) cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), nullptr);
  rate.flops(st, conv_flops(s));
}
// resnet20 at batch 128, then resnet8x4 at batch 64: every distinct conv shape of each model.
#define CONV_SHAPES                                                                                              \
  ->ArgNames({"N", "C", "H", "K", "k", "s"})                                                                     \
      ->Args({128, 3, 32, 16, 3, 1})                                                                             \
      ->Args({128, 16, 32, 16, 3, 1})                                                                            \
      ->Args({128, 16, 32, 32, 3, 2})                                                                            \
      ->Args({128, 32, 16, 32, 3, 1})                                                                            \
      ->Args({128, 16, 32, 32, 1, 2})                                                                            \
      ->Args({128, 32, 16, 64, 3, 2})                                                                            \
      ->Args({128, 64, 8, 64, 3, 1})                                                                             \
      ->Args({128, 32, 16, 64, 1, 2})                                                                            \
      ->Args({64, 3, 32, 32, 3, 1})                                                                              \
      ->Args({64, 32, 32, 64, 3, 1})                                                                             \
      ->Args({64, 64, 32, 64, 3, 1})                                                                             \
      ->Args({64, 32, 32, 64, 1, 1})                                                                             \
      ->Args({64, 64, 32, 128, 3, 2})                                                                            \
      ->Args({64, 128, 16, 128, 3, 1})                                                                           \
      ->Args({64, 64, 32, 128, 1, 2})                                                                            \
      ->Args({64, 128, 16, 256, 3, 2})                                                                           \
      ->Args({64, 256, 8, 256, 3, 1})                                                                            \
      ->Args({64, 128, 16, 256, 1, 2})                                                                           \
      ->UseRealTime()
BENCHMARK(BM_conv2d_forward) CONV_SHAPES;
BENCHMARK(BM_conv2d_backward_data) CONV_SHAPES;
BENCHMARK(BM_conv2d_backward_weights) CONV_SHAPES;

// 3x3 stride-1 forward on nChw<B>c activations (B = cpu::activation_block()): oneDNN's direct kernel (no reorder
// at the native block: the layout it computes in)
// against our Winograd F(2x2, 3x3) (kernels/cpu/conv2d_winograd.cpp). GFLOP/s counts the direct convolution's
// FLOPs for both, so the rates compare times. These decide kWinogradMinChannels.
void BM_conv2d_forward_blocked_direct(benchmark::State& st) {
  const auto s = conv_shape(st);
  auto x = randn(s.N * s.C * s.H * s.W), w = randn(s.K * s.C * s.R * s.S, 2);
  std::vector<float> y(s.N * s.K * s.OH() * s.OW());
  Rate rate;
  for (auto _ : st) cpu::conv2d_forward_cb(s, true, x.data(), w.data(), nullptr, y.data());
  rate.flops(st, conv_flops(s));
}
void BM_conv2d_forward_winograd(benchmark::State& st) {
  const auto s = conv_shape(st);
  auto x = randn(s.N * s.C * s.H * s.W), w = randn(s.K * s.C * s.R * s.S, 2);
  std::vector<float> y(s.N * s.K * s.OH() * s.OW());
  Rate rate;
  for (auto _ : st) cpu::conv2d_forward_winograd_blocked(s, cpu::activation_block(), x.data(), w.data(), nullptr, nullptr, false, y.data());
  rate.flops(st, conv_flops(s));
}
#define WINOGRAD_SHAPES                                                                                          \
  ->ArgNames({"N", "C", "H", "K", "k", "s"})                                                                     \
      ->Args({128, 16, 32, 16, 3, 1})                                                                            \
      ->Args({128, 32, 16, 32, 3, 1})                                                                            \
      ->Args({128, 64, 8, 64, 3, 1})                                                                             \
      ->Args({64, 32, 32, 32, 3, 1})                                                                             \
      ->Args({64, 64, 32, 64, 3, 1})                                                                             \
      ->Args({64, 64, 16, 64, 3, 1})                                                                             \
      ->Args({64, 128, 16, 128, 3, 1})                                                                           \
      ->Args({64, 128, 8, 128, 3, 1})                                                                            \
      ->Args({64, 256, 8, 256, 3, 1})                                                                            \
      ->UseRealTime()
BENCHMARK(BM_conv2d_forward_blocked_direct) WINOGRAD_SHAPES;
BENCHMARK(BM_conv2d_forward_winograd) WINOGRAD_SHAPES;

}  // namespace

int main(int argc, char** argv) {
  // Thread count: OMP_NUM_THREADS when set, otherwise 2 (the machine the targets are stated for).
  if (!std::getenv("OMP_NUM_THREADS")) cpu::set_num_threads(2);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  g_peak_flops = probe_peak_flops();
  g_peak_bytes = probe_peak_bandwidth();
  std::printf("peak (probed, %d threads): %.1f GFLOP/s fp32 FMA, %.1f GB/s STREAM triad\n", cpu::num_threads(),
              g_peak_flops / 1e9, g_peak_bytes / 1e9);
  std::fflush(stdout);
  benchmark::AddCustomContext("peak_gflops", std::to_string(g_peak_flops / 1e9));
  benchmark::AddCustomContext("peak_gbps", std::to_string(g_peak_bytes / 1e9));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
