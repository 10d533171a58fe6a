// 2-D convolution through cuDNN's v7-style API: forward, backward data, backward filter and bias gradient.
// Per convolution shape a plan keeps the descriptors and the algorithm chosen for each direction (asked once
// from cuDNN's heuristics, cudnnGet*Algorithm_v7), so the steady state makes no descriptor or heuristic call.
// By default only algorithms cuDNN reports deterministic are taken (set_deterministic_algorithms); the setting is
// part of the plan's key, so switching it never reuses a choice made under the other.
// Workspaces come from the caching allocator and are returned right after the call (stream-ordered reuse).
// Bias + ReLU together, with or without a residual added before the ReLU, run inside cuDNN
// (cudnnConvolutionBiasActivationForward, z = the residual: no extra pass over y; a frozen teacher with folded BN
// has one per conv, the residual at each block's end); otherwise bias / residual / ReLU are one extra elementwise
// pass (8-12 B/element),
// bias_relu_kernel below (cuDNN's fused call with an identity activation takes one algorithm only). Math: strict FP32 by
// default (CUDNN_FMA_MATH on the convolution descriptor, as PyTorch with allow_tf32=False), cuDNN's default math
// (TF32 tensor cores on sm_80+) under set_tf32_allowed(true); the setting is part of the plan's key too.
#include <array>
#include <atomic>
#include <climits>
#include <map>
#include <memory>
#include <mutex>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/vendor.h"

namespace islkd::cuda {
namespace {

constexpr int kThreads = 256;
// Algorithms needing more workspace than this are skipped (the next heuristic choice is taken).
constexpr size_t kMaxWorkspaceBytes = size_t(512) << 20;

// y[n, k, :] (+)= bias[k] (+ residual), then ReLU; plane = H*W.
__global__ void bias_relu_kernel(float* y, const float* bias, const float* residual, int64_t K, int64_t plane,
                                 int64_t n, bool relu) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = y[i];
    if (bias != nullptr) v += bias[(i / plane) % K];
    if (residual != nullptr) v += residual[i];
    if (relu) v = v > 0.0f ? v : 0.0f;
    y[i] = v;
  }
}

cudnnHandle_t cudnn() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t t = nullptr;
    ISLKD_CUDNN_CHECK(cudnnCreate(&t));
    ISLKD_CUDNN_CHECK(cudnnSetStream(t, compute_stream()));
    return t;
  }();
  return h;
}

struct Plan {
  std::mutex mu;  // guards the lazily chosen algorithms below
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnActivationDescriptor_t relu = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool has_fwd = false, has_bwd_data = false, has_bwd_filter = false;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;
};

int to_int(int64_t v, const char* what) {
  ISLKD_CHECK(v >= 0 && v <= INT_MAX, "conv2d (cuDNN): ", what, " = ", v, " does not fit cuDNN's int dimensions");
  return static_cast<int>(v);
}

std::atomic<bool> g_deterministic{true};
std::atomic<bool> g_tf32{false};

Plan& plan_for(const Conv2dShape& s) {
  static std::mutex mu;
  static std::map<std::array<int64_t, 12>, std::unique_ptr<Plan>> plans;
  const bool tf32 = g_tf32;
  const std::array<int64_t, 12> key{s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.stride, s.pad, s.groups,
                                    g_deterministic ? 1 : 0, tf32 ? 1 : 0};
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = plans[key];
  if (slot) return *slot;
  auto p = std::make_unique<Plan>();
  ISLKD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  ISLKD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  ISLKD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->bias));
  ISLKD_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  ISLKD_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  ISLKD_CUDNN_CHECK(cudnnCreateActivationDescriptor(&p->relu));
  ISLKD_CUDNN_CHECK(cudnnSetActivationDescriptor(p->relu, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
  ISLKD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(s.N, "N"),
                                               to_int(s.C, "C"), to_int(s.H, "H"), to_int(s.W, "W")));
  ISLKD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(s.N, "N"),
                                               to_int(s.K, "K"), to_int(s.OH(), "OH"), to_int(s.OW(), "OW")));
  ISLKD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, to_int(s.K, "K"), 1, 1));
  ISLKD_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(s.K, "K"),
                                               to_int(s.C / s.groups, "C/groups"), to_int(s.R, "R"),
                                               to_int(s.S, "S")));
  ISLKD_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, to_int(s.pad, "pad"), to_int(s.pad, "pad"),
                                                    to_int(s.stride, "stride"), to_int(s.stride, "stride"), 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  ISLKD_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->conv, to_int(s.groups, "groups")));
  ISLKD_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  slot = std::move(p);
  return *slot;
}

// The first heuristic choice that works, fits the workspace limit and, unless nondeterministic algorithms are
// allowed, is deterministic.
template <typename Perf>
int pick(const Perf* perf, int n, const char* direction) {
  const bool deterministic = g_deterministic;
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspaceBytes &&
        (!deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
      return i;
  ISLKD_FAIL("conv2d (cuDNN): no ", deterministic ? "deterministic " : "", direction,
             " algorithm for this shape within ", kMaxWorkspaceBytes >> 20, " MiB of workspace",
             deterministic ? " (--nondeterministic allows the others)" : "");
}

void ensure_fwd(Plan& p) {
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.has_fwd) return;
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int n = 0;
  ISLKD_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), p.x, p.w, p.conv, p.y,
                                                           CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
  p.fwd = perf[pick(perf, n, "forward")].algo;
  ISLKD_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn(), p.x, p.w, p.conv, p.y, p.fwd, &p.fwd_ws));
  p.has_fwd = true;
}

void ensure_bwd_data(Plan& p) {
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.has_bwd_data) return;
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int n = 0;
  ISLKD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), p.w, p.y, p.conv, p.x,
                                                                CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
  p.bwd_data = perf[pick(perf, n, "backward-data")].algo;
  ISLKD_CUDNN_CHECK(
      cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn(), p.w, p.y, p.conv, p.x, p.bwd_data, &p.bwd_data_ws));
  p.has_bwd_data = true;
}

void ensure_bwd_filter(Plan& p) {
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.has_bwd_filter) return;
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int n = 0;
  ISLKD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn(), p.x, p.y, p.conv, p.w,
                                                                  CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf));
  p.bwd_filter = perf[pick(perf, n, "backward-filter")].algo;
  ISLKD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn(), p.x, p.y, p.conv, p.w, p.bwd_filter,
                                                                   &p.bwd_filter_ws));
  p.has_bwd_filter = true;
}

// A workspace from the caching allocator for the duration of one call.
class Workspace {
 public:
  explicit Workspace(size_t bytes) : bytes_(bytes), p_(bytes ? device_malloc(bytes) : nullptr) {}
  ~Workspace() { device_free(p_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
  void* p_;
};

bool empty(const Conv2dShape& s) { return s.N == 0 || s.K == 0 || s.OH() <= 0 || s.OW() <= 0; }

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                    bool fuse_relu, const float* residual) {
  if (empty(s)) return;
  Plan& p = plan_for(s);
  ensure_fwd(p);
  Workspace ws(p.fwd_ws);
  const float one = 1.0f, zero = 0.0f;
  detail::count_cudnn_call();
  if (bias != nullptr && fuse_relu) {  // y = relu(conv + alpha2 * z + bias): z the residual, or unread (alpha2 = 0)
    ISLKD_CUDNN_CHECK(cudnnConvolutionBiasActivationForward(cudnn(), &one, p.x, x, p.w, w, p.conv, p.fwd, ws.get(),
                                                            ws.bytes(), residual ? &one : &zero, p.y,
                                                            residual ? residual : y, p.bias, bias, p.relu, p.y, y));
    return;
  }
  ISLKD_CUDNN_CHECK(cudnnConvolutionForward(cudnn(), &one, p.x, x, p.w, w, p.conv, p.fwd, ws.get(), ws.bytes(),
                                            &zero, p.y, y));
  if (bias != nullptr || fuse_relu || residual != nullptr) {
    const int64_t n = s.N * s.K * s.OH() * s.OW();
    ISLKD_LAUNCH(bias_relu_kernel, elementwise_blocks(n, kThreads), kThreads, 0, compute_stream(), y, bias, residual,
                 s.K, s.OH() * s.OW(), n, fuse_relu);
    ISLKD_CUDA_CHECK_LAUNCH();
  }
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  if (s.N == 0 || s.C == 0 || s.H == 0 || s.W == 0) return;
  if (empty(s)) {
    fill(dx, 0.0f, s.N * s.C * s.H * s.W);
    return;
  }
  Plan& p = plan_for(s);
  ensure_bwd_data(p);
  Workspace ws(p.bwd_data_ws);
  const float one = 1.0f, zero = 0.0f;
  detail::count_cudnn_call();
  ISLKD_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn(), &one, p.w, w, p.y, dy, p.conv, p.bwd_data, ws.get(),
                                                 ws.bytes(), &zero, p.x, dx));
}

void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  if (empty(s)) {
    fill(dw, 0.0f, s.K * (s.C / s.groups) * s.R * s.S);
    if (dbias) fill(dbias, 0.0f, s.K);
    return;
  }
  Plan& p = plan_for(s);
  ensure_bwd_filter(p);
  const float one = 1.0f, zero = 0.0f;
  {
    Workspace ws(p.bwd_filter_ws);
    detail::count_cudnn_call();
    ISLKD_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn(), &one, p.x, x, p.y, dy, p.conv, p.bwd_filter, ws.get(),
                                                     ws.bytes(), &zero, p.w, dw));
  }
  if (dbias != nullptr) {
    detail::count_cudnn_call();
    ISLKD_CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn(), &one, p.y, dy, &zero, p.bias, dbias));
  }
}

void set_deterministic_algorithms(bool on) { g_deterministic = on; }
bool deterministic_algorithms() { return g_deterministic; }
void set_tf32_allowed(bool on) { g_tf32 = on; }
bool tf32_allowed() { return g_tf32; }

ConvAlgorithms conv2d_algorithms(const Conv2dShape& s) {
  Plan& p = plan_for(s);
  ensure_fwd(p);
  ensure_bwd_data(p);
  ensure_bwd_filter(p);
  ConvAlgorithms a;
  a.forward = static_cast<int>(p.fwd);
  a.backward_data = static_cast<int>(p.bwd_data);
  a.backward_filter = static_cast<int>(p.bwd_filter);
  return a;
}

}  // namespace islkd::cuda
