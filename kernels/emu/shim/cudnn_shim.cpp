// The cuDNN v7-style subset kernels/cuda/conv2d.cu calls: handle, 4-d NCHW float descriptors, 2-d convolution
// descriptors (cross-correlation, symmetric padding, square stride, no dilation, groups), algorithm queries,
// workspace queries and forward / backward-data / backward-filter / backward-bias with alpha/beta blending,
// computed by kernels/cpu (cpu::conv2d_*). Anything outside that subset returns CUDNN_STATUS_NOT_SUPPORTED.
#undef CUDNN_WARN_DEPRECATED  // the v7 API is what we serve
#include <cudnn.h>

#include <cstring>
#include <mutex>
#include <set>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/emu/shim/shim_internal.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  bool set = false;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  bool set = false;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnActivationStruct {
  bool set = false;
  cudnnActivationMode_t mode = CUDNN_ACTIVATION_RELU;
};
struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, u = 1, v = 1, groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

using islkd_cuda_shim::detail::counters;
using islkd_cuda_shim::detail::explain;
using islkd_cuda_shim::detail::is_device_range;

std::mutex mu;
std::set<const void*>& objects() {  // every live handle and descriptor, for validation
  static auto* s = new std::set<const void*>;
  return *s;
}
template <typename T>
T* create() {
  T* p = new T;
  std::lock_guard<std::mutex> lock(mu);
  objects().insert(p);
  return p;
}
template <typename T>
cudnnStatus_t destroy(T* p) {
  if (p == nullptr) return CUDNN_STATUS_SUCCESS;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (objects().erase(p) == 0) return CUDNN_STATUS_BAD_PARAM;
  }
  delete p;
  return CUDNN_STATUS_SUCCESS;
}
bool live(const void* p) {
  std::lock_guard<std::mutex> lock(mu);
  return p != nullptr && objects().count(p) != 0;
}

size_t bytes(const cudnnTensorStruct* t) { return size_t(t->n) * t->c * t->h * t->w * 4; }
size_t bytes(const cudnnFilterStruct* f) { return size_t(f->k) * f->c * f->h * f->w * 4; }

// Checks the descriptors of one convolution and builds the CPU backend's shape. x: input, w: filter, y: output.
cudnnStatus_t conv_shape(const char* call, cudnnHandle_t h, const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                         const cudnnConvolutionStruct* cd, const cudnnTensorStruct* y, islkd::Conv2dShape* s) {
  if (!live(h) || !live(x) || !live(w) || !live(cd) || !live(y) || !x->set || !w->set || !cd->set || !y->set) {
    explain(call, "a handle or descriptor is not created or not set");
    return CUDNN_STATUS_BAD_PARAM;
  }
  if (cd->pad_h != cd->pad_w || cd->u != cd->v || w->h < 1 || w->w < 1) {
    explain(call, "the shim serves equal padding and stride in both directions only");
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  islkd::Conv2dShape c;
  c.N = x->n, c.C = x->c, c.H = x->h, c.W = x->w;
  c.K = w->k, c.R = w->h, c.S = w->w;
  c.stride = cd->u, c.pad = cd->pad_h, c.groups = cd->groups;
  if (c.C % c.groups != 0 || c.K % c.groups != 0 || w->c * c.groups != c.C || x->h + 2 * cd->pad_h < w->h ||
      x->w + 2 * cd->pad_w < w->w || y->n != x->n || y->c != w->k || y->h != c.OH() || y->w != c.OW()) {
    explain(call, "input, filter, convolution and output descriptors do not agree");
    return CUDNN_STATUS_BAD_PARAM;
  }
  *s = c;
  return CUDNN_STATUS_SUCCESS;
}

// out = alpha * result + beta * out; beta == 0 ignores out's old contents.
void blend(float* out, const float* result, size_t n, float alpha, float beta) {
  if (beta == 0.0f)
    for (size_t i = 0; i < n; ++i) out[i] = alpha * result[i];
  else
    for (size_t i = 0; i < n; ++i) out[i] = alpha * result[i] + beta * out[i];
}

// Runs f(dst) into `out` directly when alpha == 1 and beta == 0, else into a scratch buffer and blends.
template <typename F>
void with_blend(float* out, size_t count, const void* alpha, const void* beta, F f) {
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  if (a == 1.0f && b == 0.0f) {
    f(out);
    return;
  }
  std::vector<float> tmp(count);
  f(tmp.data());
  blend(out, tmp.data(), count, a, b);
}

// Like cuDNN's heuristics, the shim ranks several algorithms, and puts a nondeterministic one first (`fast`) before
// the deterministic `algo`, so the backend's selector is tested on the choice that matters on a GPU. The CPU
// backend computes every algorithm the same way (and deterministically).
template <typename Perf, typename Algo>
cudnnStatus_t ranked_algorithms(const char* call, int requested, int* returned, Perf* perf, Algo fast, Algo algo) {
  if (requested < 1 || returned == nullptr || perf == nullptr) {
    explain(call, "requestedAlgoCount < 1 or a null output");
    return CUDNN_STATUS_BAD_PARAM;
  }
  counters().algorithm_queries++;
  const Algo order[2] = {fast, algo};
  const int n = requested < 2 ? requested : 2;
  for (int i = 0; i < n; ++i) {
    std::memset(&perf[i], 0, sizeof(Perf));
    perf[i].algo = order[i];
    perf[i].status = CUDNN_STATUS_SUCCESS;
    perf[i].time = 0.0f;
    perf[i].memory = 0;
    perf[i].determinism = i == 0 ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
    perf[i].mathType = CUDNN_DEFAULT_MATH;
  }
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS_UNKNOWN (not produced by the shim)";
  }
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *handle = create<cudnnContext>();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) { return destroy(handle); }
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  if (!live(handle)) return CUDNN_STATUS_BAD_PARAM;
  handle->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  if (d == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *d = create<cudnnTensorStruct>();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w) {
  if (!live(d) || n < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
  if (format != CUDNN_TENSOR_NCHW || type != CUDNN_DATA_FLOAT) {
    explain("cudnnSetTensor4dDescriptor", "the shim serves NCHW float tensors only");
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  *d = cudnnTensorStruct{true, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  if (d == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *d = create<cudnnFilterStruct>();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  if (!live(d) || k < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
  if (format != CUDNN_TENSOR_NCHW || type != CUDNN_DATA_FLOAT) {
    explain("cudnnSetFilter4dDescriptor", "the shim serves KCRS (NCHW) float filters only");
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  *d = cudnnFilterStruct{true, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  if (d == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *d = create<cudnnConvolutionStruct>();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute_type) {
  if (!live(d) || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1)
    return CUDNN_STATUS_BAD_PARAM;
  if (dilation_h != 1 || dilation_w != 1 || mode != CUDNN_CROSS_CORRELATION || compute_type != CUDNN_DATA_FLOAT) {
    explain("cudnnSetConvolution2dDescriptor", "the shim serves undilated float cross-correlation only");
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  d->set = true;
  d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  if (!live(d) || groups < 1) return CUDNN_STATUS_BAD_PARAM;
  d->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  if (!live(d)) return CUDNN_STATUS_BAD_PARAM;
  if (math != CUDNN_DEFAULT_MATH && math != CUDNN_TENSOR_OP_MATH &&
      math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && math != CUDNN_FMA_MATH) {
    explain("cudnnSetConvolutionMathType", "unknown math type");
    return CUDNN_STATUS_BAD_PARAM;
  }
  d->math = math;  // the CPU backend computes in FP32 whatever the type
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t* d) {
  if (d == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *d = create<cudnnActivationStruct>();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d, cudnnActivationMode_t mode,
                                           cudnnNanPropagation_t, double) {
  if (!live(d)) return CUDNN_STATUS_BAD_PARAM;
  d->set = true;
  d->mode = mode;
  return CUDNN_STATUS_SUCCESS;
}

// ---- algorithms and workspaces: the CPU backend needs no workspace; two ranked algorithms per direction ----------
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t cd,
                                                     const cudnnTensorDescriptor_t y, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnGetConvolutionForwardAlgorithm_v7", h, x, w, cd, y, &s)) return st;
  return ranked_algorithms("cudnnGetConvolutionForwardAlgorithm_v7", requested, returned, perf,
                           CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t cd,
                                                          const cudnnTensorDescriptor_t dx, const int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnGetConvolutionBackwardDataAlgorithm_v7", h, dx, w, cd, dy, &s)) return st;
  return ranked_algorithms("cudnnGetConvolutionBackwardDataAlgorithm_v7", requested, returned, perf,
                           CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t cd,
                                                            const cudnnFilterDescriptor_t dw, const int requested,
                                                            int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnGetConvolutionBackwardFilterAlgorithm_v7", h, x, dw, cd, dy, &s))
    return st;
  return ranked_algorithms("cudnnGetConvolutionBackwardFilterAlgorithm_v7", requested, returned, perf,
                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t cd,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t,
                                                      size_t* size) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnGetConvolutionForwardWorkspaceSize", h, x, w, cd, y, &s)) return st;
  if (size == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *size = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t cd,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t, size_t* size) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnGetConvolutionBackwardDataWorkspaceSize", h, dx, w, cd, dy, &s)) return st;
  if (size == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *size = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t cd,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t, size_t* size) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnGetConvolutionBackwardFilterWorkspaceSize", h, x, dw, cd, dy, &s))
    return st;
  if (size == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *size = 0;
  return CUDNN_STATUS_SUCCESS;
}

// ---- the convolutions --------------------------------------------------------------------------------------
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                      const void* x, const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t, void*,
                                      size_t, const void* beta, const cudnnTensorDescriptor_t yd, void* y) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnConvolutionForward", h, xd, wd, cd, yd, &s)) return st;
  if (!alpha || !beta || !is_device_range(x, bytes(xd)) || !is_device_range(w, bytes(wd)) ||
      !is_device_range(y, bytes(yd))) {
    explain("cudnnConvolutionForward", "null alpha/beta, or x, w, y not device memory of the descriptors' size");
    return CUDNN_STATUS_BAD_PARAM;
  }
  counters().conv_forward++;
  counters().last_conv_math_type = static_cast<int>(cd->math);
  with_blend(static_cast<float*>(y), bytes(yd) / 4, alpha, beta, [&](float* out) {
    islkd::cpu::conv2d_forward(s, static_cast<const float*>(x), static_cast<const float*>(w), nullptr, out, false);
  });
  return CUDNN_STATUS_SUCCESS;
}

// The fused y = act(alpha1 * conv(x, w) + alpha2 * z + bias), served for what conv2d.cu asks: alpha1 = 1,
// alpha2 = 0 (z unused, as cuDNN reads no z then) or 1 (z: a residual of y's shape, may alias y), a 1 x K x 1 x 1
// bias and ReLU.
cudnnStatus_t cudnnConvolutionBiasActivationForward(
    cudnnHandle_t h, const void* alpha1, const cudnnTensorDescriptor_t xd, const void* x,
    const cudnnFilterDescriptor_t wd, const void* w, const cudnnConvolutionDescriptor_t cd,
    cudnnConvolutionFwdAlgo_t, void*, size_t, const void* alpha2, const cudnnTensorDescriptor_t zd, const void* z,
    const cudnnTensorDescriptor_t bd, const void* bias, const cudnnActivationDescriptor_t ad,
    const cudnnTensorDescriptor_t yd, void* y) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnConvolutionBiasActivationForward", h, xd, wd, cd, yd, &s)) return st;
  if (!alpha1 || !alpha2 || !live(zd) || !live(bd) || !bd->set || !live(ad) || !ad->set ||
      !is_device_range(x, bytes(xd)) || !is_device_range(w, bytes(wd)) || !is_device_range(y, bytes(yd)) ||
      !is_device_range(bias, bytes(bd)) || bd->n != 1 || bd->c != yd->c || bd->h != 1 || bd->w != 1) {
    explain("cudnnConvolutionBiasActivationForward", "bad descriptors or pointers");
    return CUDNN_STATUS_BAD_PARAM;
  }
  const float a2 = *static_cast<const float*>(alpha2);
  if (*static_cast<const float*>(alpha1) != 1.0f || (a2 != 0.0f && a2 != 1.0f) || ad->mode != CUDNN_ACTIVATION_RELU) {
    explain("cudnnConvolutionBiasActivationForward", "the shim serves alpha1 = 1, alpha2 = 0 or 1 and ReLU only");
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (a2 != 0.0f && (!zd->set || zd->n != yd->n || zd->c != yd->c || zd->h != yd->h || zd->w != yd->w ||
                     !is_device_range(z, bytes(zd)))) {
    explain("cudnnConvolutionBiasActivationForward", "z is not device memory of y's shape");
    return CUDNN_STATUS_BAD_PARAM;
  }
  counters().conv_forward++;
  counters().last_conv_math_type = static_cast<int>(cd->math);
  const size_t n = bytes(yd) / 4;
  if (a2 == 0.0f) {
    islkd::cpu::conv2d_forward(s, static_cast<const float*>(x), static_cast<const float*>(w),
                               static_cast<const float*>(bias), static_cast<float*>(y), true);
  } else {  // conv + bias first, then + z and ReLU (z may be y itself: it is read before y is written)
    std::vector<float> t(n);
    islkd::cpu::conv2d_forward(s, static_cast<const float*>(x), static_cast<const float*>(w),
                               static_cast<const float*>(bias), t.data(), false);
    const float* zp = static_cast<const float*>(z);
    float* yp = static_cast<float*>(y);
    for (size_t i = 0; i < n; ++i) {
      const float v = t[i] + zp[i];
      yp[i] = v > 0.0f ? v : 0.0f;
    }
  }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t wd,
                                           const void* w, const cudnnTensorDescriptor_t dyd, const void* dy,
                                           const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t,
                                           void*, size_t, const void* beta, const cudnnTensorDescriptor_t dxd,
                                           void* dx) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnConvolutionBackwardData", h, dxd, wd, cd, dyd, &s)) return st;
  if (!alpha || !beta || !is_device_range(dy, bytes(dyd)) || !is_device_range(w, bytes(wd)) ||
      !is_device_range(dx, bytes(dxd))) {
    explain("cudnnConvolutionBackwardData", "null alpha/beta, or w, dy, dx not device memory of the descriptors' size");
    return CUDNN_STATUS_BAD_PARAM;
  }
  counters().conv_backward_data++;
  counters().last_conv_math_type = static_cast<int>(cd->math);
  with_blend(static_cast<float*>(dx), bytes(dxd) / 4, alpha, beta, [&](float* out) {
    islkd::cpu::conv2d_backward_data(s, static_cast<const float*>(dy), static_cast<const float*>(w), out);
  });
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                             const void* x, const cudnnTensorDescriptor_t dyd, const void* dy,
                                             const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdFilterAlgo_t,
                                             void*, size_t, const void* beta, const cudnnFilterDescriptor_t dwd,
                                             void* dw) {
  islkd::Conv2dShape s;
  if (cudnnStatus_t st = conv_shape("cudnnConvolutionBackwardFilter", h, xd, dwd, cd, dyd, &s)) return st;
  if (!alpha || !beta || !is_device_range(x, bytes(xd)) || !is_device_range(dy, bytes(dyd)) ||
      !is_device_range(dw, bytes(dwd))) {
    explain("cudnnConvolutionBackwardFilter", "null alpha/beta, or x, dy, dw not device memory of the descriptors' size");
    return CUDNN_STATUS_BAD_PARAM;
  }
  counters().conv_backward_filter++;
  counters().last_conv_math_type = static_cast<int>(cd->math);
  with_blend(static_cast<float*>(dw), bytes(dwd) / 4, alpha, beta, [&](float* out) {
    islkd::cpu::conv2d_backward_weights(s, static_cast<const float*>(x), static_cast<const float*>(dy), out, nullptr);
  });
  return CUDNN_STATUS_SUCCESS;
}

// db[k] = alpha * sum over n, h, w of dy[n, k, h, w] + beta * db[k]; db is a 1 x K x 1 x 1 tensor.
cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t dyd,
                                           const void* dy, const void* beta, const cudnnTensorDescriptor_t dbd,
                                           void* db) {
  if (!live(h) || !live(dyd) || !live(dbd) || !dyd->set || !dbd->set || !alpha || !beta) return CUDNN_STATUS_BAD_PARAM;
  if (dbd->n != 1 || dbd->c != dyd->c || dbd->h != 1 || dbd->w != 1 || !is_device_range(dy, bytes(dyd)) ||
      !is_device_range(db, bytes(dbd))) {
    explain("cudnnConvolutionBackwardBias", "db must be 1 x K x 1 x 1 for dy N x K x H x W, both device memory");
    return CUDNN_STATUS_BAD_PARAM;
  }
  counters().conv_backward_bias++;
  const int64_t N = dyd->n, K = dyd->c, HW = int64_t(dyd->h) * dyd->w;
  const float* g = static_cast<const float*>(dy);
  std::vector<float> sum(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) {
    double acc = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) acc += g[(n * K + k) * HW + i];
    sum[static_cast<size_t>(k)] = static_cast<float>(acc);
  }
  blend(static_cast<float*>(db), sum.data(), sum.size(), *static_cast<const float*>(alpha),
        *static_cast<const float*>(beta));
  return CUDNN_STATUS_SUCCESS;
}

}  // extern "C"
