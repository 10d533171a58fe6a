// conv2d on the CUDA backend (cuDNN v7 API, served by the shim under the emulator) against the CPU backend:
// descriptor setup for strides, padding and groups, bias and fused ReLU, backward data / filter / bias, the
// per-shape algorithm cache and the deterministic-algorithm selector.
#include <cublas_v2.h>
#include <cudnn.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/emu/shim/shim.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::DeviceVec;

namespace {

Conv2dShape shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t stride, int64_t pad,
                  int64_t groups) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = R, s.S = R, s.stride = stride, s.pad = pad, s.groups = groups;
  return s;
}

size_t x_size(const Conv2dShape& s) { return static_cast<size_t>(s.N * s.C * s.H * s.W); }
size_t w_size(const Conv2dShape& s) { return static_cast<size_t>(s.K * (s.C / s.groups) * s.R * s.S); }
size_t y_size(const Conv2dShape& s) { return static_cast<size_t>(s.N * s.K * s.OH() * s.OW()); }

const Conv2dShape kShapes[] = {
    shape(1, 1, 1, 1, 1, 1, 1, 0, 1),     // smallest
    shape(2, 3, 9, 7, 5, 3, 1, 1, 1),     // 3x3 same padding, odd sizes
    shape(3, 4, 11, 11, 6, 3, 2, 1, 1),   // stride 2
    shape(2, 6, 8, 8, 6, 3, 1, 1, 6),     // depthwise
    shape(2, 4, 5, 5, 6, 1, 1, 0, 2),     // grouped 1x1
    shape(1, 3, 33, 31, 7, 5, 2, 2, 1),   // 5x5, stride 2, non-square
};

}  // namespace

TEST(CudaConv2d, ForwardWithBiasAndFusedReluMatchesCpu) {
  for (const Conv2dShape& s : kShapes) {
    const std::vector<float> x = test::random_vector(x_size(s), 1), w = test::random_vector(w_size(s), 2),
                             b = test::random_vector(static_cast<size_t>(s.K), 3);
    DeviceVec<float> dx(x), dw(w), db(b), dy(y_size(s));
    std::vector<float> ref(y_size(s));
    for (int variant = 0; variant < 3; ++variant) {  // no bias; bias; bias + ReLU
      const bool bias = variant > 0, relu = variant == 2;
      cuda::conv2d_forward(s, dx.get(), dw.get(), bias ? db.get() : nullptr, dy.get(), relu);
      cpu::conv2d_forward(s, x.data(), w.data(), bias ? b.data() : nullptr, ref.data(), relu);
      EXPECT_TRUE(test::all_close(dy.host(), ref, 1e-5f, 1e-5f))
          << "N" << s.N << " C" << s.C << " H" << s.H << " K" << s.K << " R" << s.R << " stride " << s.stride
          << " groups " << s.groups << " variant " << variant;
    }
  }
}

TEST(CudaConv2d, BackwardDataWeightsAndBiasMatchCpu) {
  for (const Conv2dShape& s : kShapes) {
    const std::vector<float> x = test::random_vector(x_size(s), 4), w = test::random_vector(w_size(s), 5),
                             dy = test::random_vector(y_size(s), 6);
    DeviceVec<float> d_x(x), d_w(w), d_dy(dy), d_dx(x_size(s)), d_dw(w_size(s)), d_db(static_cast<size_t>(s.K));
    std::vector<float> dx(x_size(s)), dw(w_size(s)), db(static_cast<size_t>(s.K));
    cuda::conv2d_backward_data(s, d_dy.get(), d_w.get(), d_dx.get());
    cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
    EXPECT_TRUE(test::all_close(d_dx.host(), dx, 1e-5f, 1e-5f)) << "dx, K" << s.K << " groups " << s.groups;
    cuda::conv2d_backward_weights(s, d_x.get(), d_dy.get(), d_dw.get(), d_db.get());
    cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), db.data());
    EXPECT_TRUE(test::all_close(d_dw.host(), dw, 1e-4f, 1e-5f)) << "dw, K" << s.K << " groups " << s.groups;
    EXPECT_TRUE(test::all_close(d_db.host(), db, 1e-4f, 1e-5f)) << "db, K" << s.K << " groups " << s.groups;
    cuda::conv2d_backward_weights(s, d_x.get(), d_dy.get(), d_dw.get(), nullptr);  // bias gradient optional
    EXPECT_TRUE(test::all_close(d_dw.host(), dw, 1e-4f, 1e-5f));
  }
}

TEST(CudaConv2d, AlgorithmIsChosenOncePerShapeAndDirection) {
  const Conv2dShape s = shape(2, 3, 10, 10, 4, 3, 1, 1, 1);
  DeviceVec<float> x(x_size(s)), w(w_size(s)), y(y_size(s)), dx(x_size(s)), dw(w_size(s));
  cuda::fill(x.get(), 0.5f, static_cast<int64_t>(x_size(s)));
  cuda::fill(w.get(), 0.25f, static_cast<int64_t>(w_size(s)));
  cuda::conv2d_forward(s, x.get(), w.get(), nullptr, y.get());
  cuda::conv2d_backward_data(s, y.get(), w.get(), dx.get());
  cuda::conv2d_backward_weights(s, x.get(), y.get(), dw.get(), nullptr);
  const cuda::Counters c0 = cuda::counters();
#if ISLKD_TEST_EMULATED
  const auto first = islkd_cuda_shim::stats();
#endif
  for (int i = 0; i < 3; ++i) {
    cuda::conv2d_forward(s, x.get(), w.get(), nullptr, y.get());
    cuda::conv2d_backward_data(s, y.get(), w.get(), dx.get());
    cuda::conv2d_backward_weights(s, x.get(), y.get(), dw.get(), nullptr);
  }
  const cuda::Counters d = cuda::counters_delta(c0, cuda::counters());
  EXPECT_EQ(d.cudnn_calls, 9u);  // three directions, three times, and nothing else
  EXPECT_EQ(d.kernel_launches, 0u);  // no bias, no ReLU: no extra pass
  EXPECT_EQ(d.cuda_mallocs, 0u);
#if ISLKD_TEST_EMULATED
  const auto later = islkd_cuda_shim::stats();
  EXPECT_EQ(later.algorithm_queries, first.algorithm_queries);
  EXPECT_EQ(later.conv_forward - first.conv_forward, 3u);
  EXPECT_EQ(later.conv_backward_data - first.conv_backward_data, 3u);
  EXPECT_EQ(later.conv_backward_filter - first.conv_backward_filter, 3u);
  // A new shape asks again.
  const Conv2dShape t = shape(2, 3, 12, 12, 4, 3, 1, 1, 1);
  DeviceVec<float> x2(x_size(t)), y2(y_size(t));
  cuda::fill(x2.get(), 1.0f, static_cast<int64_t>(x_size(t)));
  cuda::conv2d_forward(t, x2.get(), w.get(), nullptr, y2.get());
  EXPECT_EQ(islkd_cuda_shim::stats().algorithm_queries, later.algorithm_queries + 1);
#endif
}

TEST(CudaConv2d, SteadyStateForwardBackwardMakesNoCudaMalloc) {
  const Conv2dShape s = shape(2, 3, 8, 8, 4, 3, 1, 1, 1);
  DeviceVec<float> x(x_size(s)), w(w_size(s)), y(y_size(s)), dx(x_size(s)), dw(w_size(s)), db(4);
  cuda::fill(x.get(), 0.5f, static_cast<int64_t>(x_size(s)));
  cuda::fill(w.get(), 0.25f, static_cast<int64_t>(w_size(s)));
  auto step = [&] {
    cuda::conv2d_forward(s, x.get(), w.get(), db.get(), y.get(), false);
    cuda::conv2d_backward_data(s, y.get(), w.get(), dx.get());
    cuda::conv2d_backward_weights(s, x.get(), y.get(), dw.get(), db.get());
  };
  step();
  const uint64_t before = cuda::counters().cuda_mallocs;
  step();
  step();
#if !defined(ISLKD_SANITIZE) && !defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(cuda::counters().cuda_mallocs, before);
#else
  (void)before;
#endif
}

// The shim ranks a nondeterministic algorithm first in every direction (as cuDNN's heuristics may on a GPU): by
// default the selector skips it for the deterministic one; with nondeterministic algorithms allowed it takes the
// first. Each setting keeps its own choice (switching back does not reuse the other's).
TEST(CudaConv2d, SelectorSkipsNondeterministicAlgorithmsUnlessAllowed) {
  ASSERT_TRUE(cuda::deterministic_algorithms());  // the default
  ISLKD_SKIP_UNLESS_EMULATED("the ranking of algorithms is the shim's (on a GPU: BackwardIsBitwiseReproducible)");
  const Conv2dShape s = shape(2, 3, 10, 10, 4, 3, 1, 1, 1);
  const cuda::ConvAlgorithms det = cuda::conv2d_algorithms(s);
  EXPECT_EQ(det.forward, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
  EXPECT_EQ(det.backward_data, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
  EXPECT_EQ(det.backward_filter, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
  cuda::set_deterministic_algorithms(false);
  const cuda::ConvAlgorithms any = cuda::conv2d_algorithms(s);
  cuda::set_deterministic_algorithms(true);
  EXPECT_EQ(any.forward, CUDNN_CONVOLUTION_FWD_ALGO_GEMM);
  EXPECT_EQ(any.backward_data, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0);
  EXPECT_EQ(any.backward_filter, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0);
  const cuda::ConvAlgorithms again = cuda::conv2d_algorithms(s);
  EXPECT_EQ(again.forward, det.forward);
  EXPECT_EQ(again.backward_data, det.backward_data);
  EXPECT_EQ(again.backward_filter, det.backward_filter);
}

// What the determinism default is for, checked where it matters (a GPU; the emulator is deterministic anyway):
// the same backward twice gives the same bits, at a shape whose filter gradient sums over many positions.
TEST(CudaConv2d, BackwardIsBitwiseReproducibleByDefault) {
  const Conv2dShape s = shape(16, 16, 32, 32, 16, 3, 1, 1, 1);
  const std::vector<float> x = test::random_vector(x_size(s), 21), w = test::random_vector(w_size(s), 22),
                           dy = test::random_vector(y_size(s), 23);
  DeviceVec<float> d_x(x), d_w(w), d_dy(dy), d_dx(x_size(s)), d_dw(w_size(s)), d_db(16);
  std::vector<float> first_dx, first_dw, first_db;
  for (int run = 0; run < 2; ++run) {
    cuda::conv2d_backward_data(s, d_dy.get(), d_w.get(), d_dx.get());
    cuda::conv2d_backward_weights(s, d_x.get(), d_dy.get(), d_dw.get(), d_db.get());
    if (run == 0) {
      first_dx = d_dx.host(), first_dw = d_dw.host(), first_db = d_db.host();
    } else {
      EXPECT_TRUE(test::all_close(d_dx.host(), first_dx, 0, 0)) << "backward data";
      EXPECT_TRUE(test::all_close(d_dw.host(), first_dw, 0, 0)) << "backward filter";
      EXPECT_TRUE(test::all_close(d_db.host(), first_db, 0, 0)) << "backward bias";
    }
  }
}

// Strict FP32 by default (the parity tests' tolerances assume it): the convolution descriptor asks for FMA math and
// the GEMM handle for cuBLAS's default math; with TF32 allowed they ask for tensor-op math.
TEST(CudaConv2d, StrictFp32MathByDefaultTf32OnlyWhenAllowed) {
  ISLKD_SKIP_UNLESS_EMULATED("the math type is read back from the shim");
#if ISLKD_TEST_EMULATED
  ASSERT_FALSE(cuda::tf32_allowed());
  const Conv2dShape s = shape(2, 3, 6, 6, 4, 3, 1, 1, 1);
  DeviceVec<float> x(test::random_vector(x_size(s), 1)), w(test::random_vector(w_size(s), 2)), y(y_size(s));
  DeviceVec<float> a(test::random_vector(12, 3)), b(test::random_vector(8, 4)), c(6);
  auto run = [&] {
    cuda::conv2d_forward(s, x.get(), w.get(), nullptr, y.get());
    cuda::linear_forward(3, 4, 2, a.get(), b.get(), nullptr, c.get());
  };
  run();
  EXPECT_EQ(islkd_cuda_shim::stats().last_conv_math_type, static_cast<int>(CUDNN_FMA_MATH));
  EXPECT_EQ(islkd_cuda_shim::stats().last_gemm_math_mode, static_cast<int>(CUBLAS_DEFAULT_MATH));
  cuda::set_tf32_allowed(true);
  run();
  cuda::set_tf32_allowed(false);
  EXPECT_EQ(islkd_cuda_shim::stats().last_conv_math_type, static_cast<int>(CUDNN_DEFAULT_MATH));
  EXPECT_EQ(islkd_cuda_shim::stats().last_gemm_math_mode, static_cast<int>(CUBLAS_TF32_TENSOR_OP_MATH));
  run();  // back to strict: the strict plan is reused
  EXPECT_EQ(islkd_cuda_shim::stats().last_conv_math_type, static_cast<int>(CUDNN_FMA_MATH));
#endif
}

// Bias + ReLU run inside cuDNN's fused call (one cuDNN call, no extra kernel); bias alone or ReLU alone take the
// convolution and one elementwise pass. Results against the CPU in ForwardWithBiasAndFusedReluMatchesCpu.
TEST(CudaConv2d, BiasAndReluTogetherAreFusedIntoTheConvolution) {
  const Conv2dShape s = shape(2, 3, 9, 7, 5, 3, 1, 1, 1);
  DeviceVec<float> x(test::random_vector(x_size(s), 1)), w(test::random_vector(w_size(s), 2)),
      b(test::random_vector(5, 3)), y(y_size(s));
  cuda::conv2d_forward(s, x.get(), w.get(), b.get(), y.get(), true);  // plan and algorithm chosen
  const struct {
    bool bias, relu;
    uint64_t launches;
  } cases[] = {{true, true, 0}, {true, false, 1}, {false, true, 1}, {false, false, 0}};
  for (const auto& c : cases) {
    const cuda::Counters c0 = cuda::counters();
    cuda::conv2d_forward(s, x.get(), w.get(), c.bias ? b.get() : nullptr, y.get(), c.relu);
    const cuda::Counters d = cuda::counters_delta(c0, cuda::counters());
    EXPECT_EQ(d.cudnn_calls, 1u) << "bias " << c.bias << " relu " << c.relu;
    EXPECT_EQ(d.kernel_launches, c.launches) << "bias " << c.bias << " relu " << c.relu;
  }
}

// A residual added before the ReLU (a folded teacher's block end): with bias and ReLU it rides in cuDNN's fused call
// (z = residual, alpha2 = 1), otherwise in the one elementwise pass; both against the CPU's conv, + residual, ReLU.
TEST(CudaConv2d, ResidualAddIsFusedAndMatchesCpu) {
  const Conv2dShape s = shape(2, 4, 9, 7, 4, 3, 1, 1, 1);
  const std::vector<float> x = test::random_vector(x_size(s), 11), w = test::random_vector(w_size(s), 12),
                           b = test::random_vector(4, 13), r = test::random_vector(y_size(s), 14);
  DeviceVec<float> dx(x), dw(w), db(b), dr(r), dy(y_size(s));
  const struct {
    bool bias, relu;
    uint64_t launches;
  } cases[] = {{true, true, 0}, {true, false, 1}, {false, true, 1}, {false, false, 1}};
  for (const auto& c : cases) {
    std::vector<float> ref(y_size(s));
    cpu::conv2d_forward(s, x.data(), w.data(), c.bias ? b.data() : nullptr, ref.data(), false);
    for (size_t i = 0; i < ref.size(); ++i) {
      ref[i] += r[i];
      if (c.relu) ref[i] = ref[i] > 0.0f ? ref[i] : 0.0f;
    }
    cuda::conv2d_forward(s, dx.get(), dw.get(), c.bias ? db.get() : nullptr, dy.get(), c.relu, dr.get());  // plan
    const cuda::Counters c0 = cuda::counters();
    cuda::conv2d_forward(s, dx.get(), dw.get(), c.bias ? db.get() : nullptr, dy.get(), c.relu, dr.get());
    const cuda::Counters d = cuda::counters_delta(c0, cuda::counters());
    EXPECT_TRUE(test::all_close(dy.host(), ref, 1e-5f, 1e-5f)) << "bias " << c.bias << " relu " << c.relu;
    EXPECT_EQ(d.cudnn_calls, 1u) << "bias " << c.bias << " relu " << c.relu;
    EXPECT_EQ(d.kernel_launches, c.launches) << "bias " << c.bias << " relu " << c.relu;
  }
}
