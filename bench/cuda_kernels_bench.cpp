// Microbenchmarks of the CUDA backend's kernels (islkd::cuda) on a real GPU: the memory-bound ops in GB/s and the
// cuDNN convolutions at resnet20 / resnet8x4 layer shapes in GFLOP/s, each next to the device's peak read with
// cudaDeviceGetAttribute (CUDA 13 dropped cudaDeviceProp::clockRate and memoryClockRate). Timed with CUDA events
// around each call after a device synchronize. Without a GPU it prints one line saying it skips, and exits 0.
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "bench/conv_bench_shape.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda {
cudaStream_t compute_stream();  // kernels/cuda/cuda_common.cuh: the stream every op runs on
}  // namespace islkd::cuda

using namespace islkd;

namespace {

double g_peak_flops = 1.0, g_peak_bytes = 1.0;

int attr(cudaDeviceAttr a, int dev) {
  int v = 0;
  cudaDeviceGetAttribute(&v, a, dev);
  return v;
}

// FP32 lanes per SM: 64 on sm_60/sm_70/sm_80 (A100, V100), 128 on sm_61, sm_75 (64), 86/89/90+ (128).
int fp32_lanes_per_sm(int major, int minor) {
  if (major == 7 || (major == 8 && minor == 0) || (major == 6 && minor == 0)) return 64;
  return 128;
}

void read_peaks() {
  int dev = 0;
  cudaGetDevice(&dev);
  const double clock_khz = attr(cudaDevAttrClockRate, dev), sms = attr(cudaDevAttrMultiProcessorCount, dev);
  const double mem_khz = attr(cudaDevAttrMemoryClockRate, dev), bus_bits = attr(cudaDevAttrGlobalMemoryBusWidth, dev);
  const int major = attr(cudaDevAttrComputeCapabilityMajor, dev), minor = attr(cudaDevAttrComputeCapabilityMinor, dev);
  g_peak_flops = 2.0 * sms * fp32_lanes_per_sm(major, minor) * clock_khz * 1e3;
  g_peak_bytes = 2.0 * mem_khz * 1e3 * bus_bits / 8.0;  // DDR: two transfers per clock
  std::printf("device peak (attributes, sm_%d%d, %d SMs): %.0f GFLOP/s fp32, %.0f GB/s\n", major, minor, int(sms),
              g_peak_flops / 1e9, g_peak_bytes / 1e9);
}

// Device buffer of n floats, filled with a small pattern.
struct DeviceBuffer {
  explicit DeviceBuffer(size_t n, float base = 0.25f) : n(n) {
    p = static_cast<float*>(cuda::device_malloc(n * sizeof(float)));
    std::vector<float> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = base * static_cast<float>(int(i % 17) - 8);
    cuda::memcpy_h2d(p, h.data(), n * sizeof(float));
  }
  ~DeviceBuffer() { cuda::device_free(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* p;
  size_t n;
};

// Times fn with events recorded on the stream its kernels run on (the backend's compute stream, non-blocking:
// events on the legacy default stream would not be ordered with them), with no host sync inside the timed region;
// the host waits for the end event after it. Sets manual time and the rate counters (per_iter in bytes or FLOPs).
template <typename F>
void run(benchmark::State& st, F&& fn, double per_iter, bool flops) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  const cudaStream_t s = cuda::compute_stream();
  cuda::synchronize();  // setup work (fills, uploads) stays out of the first iteration
  double total = 0.0;
  for (auto _ : st) {
    cudaEventRecord(a, s);
    fn();
    cudaEventRecord(b, s);
    cudaEventSynchronize(b);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, a, b);
    st.SetIterationTime(ms / 1e3);
    total += ms / 1e3;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  const double rate = per_iter * double(st.iterations()) / total;
  st.counters[flops ? "GFLOP/s" : "GB/s"] = rate / 1e9;
  st.counters[flops ? "%peakFLOP" : "%peakBW"] = 100.0 * rate / (flops ? g_peak_flops : g_peak_bytes);
}

const int64_t kAct = 128 * 16 * 32 * 32;

void BM_cuda_relu_forward(benchmark::State& st) {
  DeviceBuffer x(kAct), y(kAct);
  run(st, [&] { cuda::relu_forward(x.p, y.p, kAct); }, 8.0 * kAct, false);
}
void BM_cuda_add(benchmark::State& st) {
  DeviceBuffer a(kAct), b(kAct), y(kAct);
  run(st, [&] { cuda::add(a.p, b.p, y.p, kAct); }, 12.0 * kAct, false);
}
void BM_cuda_batch_norm_forward_train(benchmark::State& st) {
  const int64_t N = 128, C = 16, HW = 1024;
  DeviceBuffer x(N * C * HW), y(N * C * HW), g(C, 0.1f), b(C), rm(C), rv(C, 0.1f), sm(C), si(C);
  run(st, [&] {
    cuda::batch_norm_forward_train(N, C, HW, x.p, g.p, b.p, rm.p, rv.p, 0.1f, 1e-5f, y.p, sm.p, si.p);
  }, 8.0 * N * C * HW, false);
}
void BM_cuda_batch_norm_backward(benchmark::State& st) {
  const int64_t N = 128, C = 16, HW = 1024;
  DeviceBuffer x(N * C * HW), dy(N * C * HW), dx(N * C * HW), g(C, 0.1f), sm(C), si(C, 0.1f), dg(C), db(C);
  run(st, [&] { cuda::batch_norm_backward(N, C, HW, x.p, dy.p, g.p, sm.p, si.p, dx.p, dg.p, db.p); },
      12.0 * N * C * HW, false);
}
void BM_cuda_kd_loss(benchmark::State& st) {
  const int64_t R = st.range(0), C = st.range(1);
  DeviceBuffer s(R * C), t(R * C, 0.3f), rl(R), ds(R * C);
  std::vector<int32_t> lh(R);
  for (int64_t i = 0; i < R; ++i) lh[i] = int32_t(i % C);
  auto* lab = static_cast<int32_t*>(cuda::device_malloc(R * sizeof(int32_t)));
  cuda::memcpy_h2d(lab, lh.data(), R * sizeof(int32_t));
  KDLossParams p;
  run(st, [&] { cuda::kd_loss_forward_backward(R, C, s.p, t.p, lab, p, rl.p, ds.p, nullptr, nullptr); },
      12.0 * R * C, false);
  cuda::device_free(lab);
}
void BM_cuda_difficulty_scores(benchmark::State& st) {
  const int64_t R = 50000, C = 100;
  DeviceBuffer s(R * C), t(R * C, 0.3f), sc(R);
  std::vector<int32_t> lh(R);
  for (int64_t i = 0; i < R; ++i) lh[i] = int32_t(i % C);
  auto* lab = static_cast<int32_t*>(cuda::device_malloc(R * sizeof(int32_t)));
  cuda::memcpy_h2d(lab, lh.data(), R * sizeof(int32_t));
  KDLossParams p;
  run(st, [&] { cuda::difficulty_scores(R, C, s.p, t.p, lab, DifficultyMeasure::Loss, p, sc.p); }, 8.0 * R * C,
      false);
  cuda::device_free(lab);
}
void BM_cuda_radix_sort_pairs(benchmark::State& st) {
  const int64_t n = st.range(0);
  DeviceBuffer k(n), ko(n);
  std::vector<uint32_t> vh(n);
  std::iota(vh.begin(), vh.end(), 0u);
  auto* v = static_cast<uint32_t*>(cuda::device_malloc(n * 4));
  auto* vo = static_cast<uint32_t*>(cuda::device_malloc(n * 4));
  cuda::memcpy_h2d(v, vh.data(), n * 4);
  run(st, [&] { cuda::radix_sort_pairs(n, k.p, v, ko.p, vo); }, 64.0 * n, false);
  cuda::device_free(v);
  cuda::device_free(vo);
}
void BM_cuda_sgd_update(benchmark::State& st) {
  const int64_t n = st.range(0);
  DeviceBuffer p(n), g(n), m(n);
  SGDParams sp;
  std::vector<SGDTensor> ts{{p.p, g.p, m.p, n}};
  run(st, [&] { cuda::sgd_update(ts, sp); }, 20.0 * n, false);
}
using islkd::bench::conv_flops;
using islkd::bench::conv_shape;
void BM_cuda_conv2d_forward(benchmark::State& st) {
  const auto s = conv_shape(st);
  DeviceBuffer x(s.N * s.C * s.H * s.W), w(s.K * s.C * s.R * s.S, 0.01f), y(s.N * s.K * s.OH() * s.OW());
  run(st, [&] { cuda::conv2d_forward(s, x.p, w.p, nullptr, y.p); }, conv_flops(s), true);
}
void BM_cuda_conv2d_backward_data(benchmark::State& st) {
  const auto s = conv_shape(st);
  DeviceBuffer dy(s.N * s.K * s.OH() * s.OW()), w(s.K * s.C * s.R * s.S, 0.01f), dx(s.N * s.C * s.H * s.W);
  run(st, [&] { cuda::conv2d_backward_data(s, dy.p, w.p, dx.p); }, conv_flops(s), true);
}
void BM_cuda_conv2d_backward_weights(benchmark::State& st) {
  const auto s = conv_shape(st);
  DeviceBuffer x(s.N * s.C * s.H * s.W), dy(s.N * s.K * s.OH() * s.OW()), dw(s.K * s.C * s.R * s.S);
  run(st, [&] { cuda::conv2d_backward_weights(s, x.p, dy.p, dw.p, nullptr); }, conv_flops(s), true);
}

#define CUDA_CONV_SHAPES                                                                                          \
  ->ArgNames({"N", "C", "H", "K", "k", "s"})                                                                       \
      ->Args({128, 16, 32, 16, 3, 1})                                                                              \
      ->Args({128, 32, 16, 32, 3, 1})                                                                              \
      ->Args({128, 64, 8, 64, 3, 1})                                                                               \
      ->Args({64, 64, 32, 64, 3, 1})                                                                               \
      ->Args({64, 128, 16, 128, 3, 1})                                                                             \
      ->Args({64, 256, 8, 256, 3, 1})                                                                              \
      ->UseManualTime()

}  // namespace

int main(int argc, char** argv) {
  std::string why;
  if (!cuda::device_available(&why)) {
    std::printf("cuda_kernels_bench: no CUDA device (%s); skipping\n", why.c_str());
    return 0;
  }
  BENCHMARK(BM_cuda_relu_forward)->UseManualTime();
  BENCHMARK(BM_cuda_add)->UseManualTime();
  BENCHMARK(BM_cuda_batch_norm_forward_train)->UseManualTime();
  BENCHMARK(BM_cuda_batch_norm_backward)->UseManualTime();
  BENCHMARK(BM_cuda_kd_loss)->Args({128, 100})->Args({50000, 100})->UseManualTime();
  BENCHMARK(BM_cuda_difficulty_scores)->UseManualTime();
  BENCHMARK(BM_cuda_radix_sort_pairs)->Arg(50000)->Arg(1 << 20)->UseManualTime();
  BENCHMARK(BM_cuda_sgd_update)->Arg(278324)->Arg(1233540)->UseManualTime();
  BENCHMARK(BM_cuda_conv2d_forward) CUDA_CONV_SHAPES;
  BENCHMARK(BM_cuda_conv2d_backward_data) CUDA_CONV_SHAPES;
  BENCHMARK(BM_cuda_conv2d_backward_weights) CUDA_CONV_SHAPES;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  read_peaks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
