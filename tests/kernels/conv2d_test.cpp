// conv2d: the oneDNN CPU path against a plain double-accumulation reference (forward, backward-data,
// backward-weights, bias gradient) at awkward shapes, finite-difference gradients, fused ReLU, boundary errors.
#include <thread>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

struct Case {
  int64_t N, C, H, W, K, R, S, stride, pad, groups;
  bool bias;
};

Conv2dShape shape_of(const Case& c) {
  Conv2dShape s;
  s.N = c.N, s.C = c.C, s.H = c.H, s.W = c.W, s.K = c.K, s.R = c.R, s.S = c.S;
  s.stride = c.stride, s.pad = c.pad, s.groups = c.groups;
  return s;
}

std::string name_of(const Case& c) {
  return detail::concat("N", c.N, " C", c.C, " H", c.H, " W", c.W, " K", c.K, " ", c.R, "x", c.S, " stride ", c.stride,
                        " pad ", c.pad, " groups ", c.groups, c.bias ? " bias" : "");
}

// Calls f(n, k, oh, ow, c, r, s, x index, w index) for every multiply-add of the convolution that lands inside
// the input: forward and both backwards are the same loop nest with different accumulations.
template <typename F>
void for_each_tap(const Conv2dShape& s, F&& f) {
  const int64_t Cg = s.C / s.groups, Kg = s.K / s.groups, OH = s.OH(), OW = s.OW();
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t g = k / Kg;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t q = 0; q < s.S; ++q) {
                const int64_t h = oh * s.stride - s.pad + r, w = ow * s.stride - s.pad + q;
                if (h < 0 || h >= s.H || w < 0 || w >= s.W) continue;
                const int64_t c = g * Cg + cg;
                const size_t xi = static_cast<size_t>(((n * s.C + c) * s.H + h) * s.W + w);
                const size_t wi = static_cast<size_t>(((k * Cg + cg) * s.R + r) * s.S + q);
                const size_t yi = static_cast<size_t>(((n * s.K + k) * OH + oh) * OW + ow);
                f(xi, wi, yi);
              }
    }
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

std::vector<float> ref_forward(const Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& w,
                               const std::vector<float>* bias) {
  std::vector<double> y(static_cast<size_t>(s.N * s.K * s.OH() * s.OW()), 0.0);
  for_each_tap(s, [&](size_t xi, size_t wi, size_t yi) { y[yi] += double(x[xi]) * w[wi]; });
  if (bias)
    for (size_t i = 0; i < y.size(); ++i) y[i] += (*bias)[(i / static_cast<size_t>(s.OH() * s.OW())) % s.K];
  return to_float(y);
}

std::vector<float> ref_backward_data(const Conv2dShape& s, const std::vector<float>& dy, const std::vector<float>& w) {
  std::vector<double> dx(static_cast<size_t>(s.N * s.C * s.H * s.W), 0.0);
  for_each_tap(s, [&](size_t xi, size_t wi, size_t yi) { dx[xi] += double(dy[yi]) * w[wi]; });
  return to_float(dx);
}

std::vector<float> ref_backward_weights(const Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& dy) {
  std::vector<double> dw(static_cast<size_t>(s.K * (s.C / s.groups) * s.R * s.S), 0.0);
  for_each_tap(s, [&](size_t xi, size_t wi, size_t yi) { dw[wi] += double(dy[yi]) * x[xi]; });
  return to_float(dw);
}

std::vector<float> ref_backward_bias(const Conv2dShape& s, const std::vector<float>& dy) {
  std::vector<double> db(static_cast<size_t>(s.K), 0.0);
  const size_t plane = static_cast<size_t>(s.OH() * s.OW());
  for (size_t i = 0; i < dy.size(); ++i) db[(i / plane) % s.K] += dy[i];
  return to_float(db);
}

const std::vector<Case> kCases = {
    {1, 3, 5, 7, 4, 3, 3, 1, 1, 1, true},      // N=1, tiny, odd sizes
    {2, 6, 31, 33, 4, 3, 3, 2, 1, 2, false},   // stride 2 on odd sizes, groups 2
    {2, 5, 9, 8, 5, 3, 3, 1, 1, 5, true},      // depthwise, C not a power of two
    {3, 7, 8, 8, 10, 1, 1, 1, 0, 1, true},     // 1x1
    {2, 12, 16, 16, 24, 1, 1, 2, 0, 1, false}, // 1x1 stride 2 (ResNet downsample)
    {2, 16, 32, 32, 16, 3, 3, 1, 1, 1, false}, // resnet20 layer shape
    {1, 16, 33, 33, 32, 3, 3, 2, 1, 1, true},  // stride 2, odd input
    {2, 8, 6, 6, 8, 3, 3, 2, 0, 1, false},     // pad 0, stride 2
    {2, 24, 7, 7, 24, 3, 3, 2, 1, 24, false},  // depthwise stride 2 (MobileNetV2)
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, true},      // 1 everywhere
};

}  // namespace

TEST(Conv2d, ForwardMatchesReference) {
  uint32_t seed = 1;
  for (const Case& c : kCases) {
    const Conv2dShape s = shape_of(c);
    auto x = test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), seed++);
    auto w = test::random_vector(static_cast<size_t>(s.K * (s.C / s.groups) * s.R * s.S), seed++);
    auto b = test::random_vector(static_cast<size_t>(s.K), seed++);
    std::vector<float> y(static_cast<size_t>(s.N * s.K * s.OH() * s.OW()));
    cpu::conv2d_forward(s, x.data(), w.data(), c.bias ? b.data() : nullptr, y.data());
    EXPECT_TRUE(test::all_close(y, ref_forward(s, x, w, c.bias ? &b : nullptr), 1e-5f, 1e-4f)) << name_of(c);
  }
}

TEST(Conv2d, BackwardDataAndWeightsMatchReference) {
  uint32_t seed = 100;
  for (const Case& c : kCases) {
    const Conv2dShape s = shape_of(c);
    auto x = test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), seed++);
    auto w = test::random_vector(static_cast<size_t>(s.K * (s.C / s.groups) * s.R * s.S), seed++);
    auto dy = test::random_vector(static_cast<size_t>(s.N * s.K * s.OH() * s.OW()), seed++);
    std::vector<float> dx(x.size()), dw(w.size()), db(static_cast<size_t>(s.K));
    cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
    cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), c.bias ? db.data() : nullptr);
    EXPECT_TRUE(test::all_close(dx, ref_backward_data(s, dy, w), 1e-5f, 1e-4f)) << "dx " << name_of(c);
    // dw sums N*OH*OW products: allow for float accumulation over up to ~2000 terms.
    EXPECT_TRUE(test::all_close(dw, ref_backward_weights(s, x, dy), 1e-4f, 1e-4f)) << "dw " << name_of(c);
    if (c.bias) EXPECT_TRUE(test::all_close(db, ref_backward_bias(s, dy), 1e-4f, 1e-4f)) << "db " << name_of(c);
  }
}

TEST(Conv2d, FusedReluEqualsReluOfConv) {
  const Case c{2, 6, 9, 9, 8, 3, 3, 1, 1, 2, true};
  const Conv2dShape s = shape_of(c);
  auto x = test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), 5);
  auto w = test::random_vector(static_cast<size_t>(s.K * (s.C / s.groups) * s.R * s.S), 6);
  auto b = test::random_vector(static_cast<size_t>(s.K), 7);
  auto ref = ref_forward(s, x, w, &b);
  for (float& v : ref) v = v > 0 ? v : 0;
  Tensor y = ops::conv2d(Tensor::from_vector(x, {s.N, s.C, s.H, s.W}), Tensor::from_vector(w, {s.K, 3, 3, 3}),
                         Tensor::from_vector(b, {s.K}), 1, 1, 2, /*fuse_relu=*/true);
  EXPECT_TRUE(test::all_close(y, ref, 1e-5f, 1e-4f));
}

TEST(Conv2d, GradientMatchesFiniteDifferences) {
  // Convolution is linear in each input, so central differences are exact up to float rounding: eps 1e-2,
  // tolerance 2e-3 absolute + relative.
  for (int64_t groups : {1, 2}) {
    Tensor x = test::random_tensor({2, 4, 5, 6}, 11).set_requires_grad(true);
    Tensor w = test::random_tensor({6, 4 / groups, 3, 3}, 12).set_requires_grad(true);
    Tensor b = test::random_tensor({6}, 13).set_requires_grad(true);
    EXPECT_TRUE(test::grad_check(
        [groups](const std::vector<Tensor>& in) { return ops::conv2d(in[0], in[1], in[2], 2, 1, groups); }, {x, w, b},
        1e-2f, 2e-3f, 2e-3f))
        << "groups " << groups;
  }
}

TEST(Conv2d, DepthwiseGradientMatchesFiniteDifferences) {
  Tensor x = test::random_tensor({2, 3, 7, 5}, 21).set_requires_grad(true);
  Tensor w = test::random_tensor({3, 1, 3, 3}, 22).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::conv2d(in[0], in[1], Tensor(), 1, 1, 3); },
                               {x, w}, 1e-2f, 2e-3f, 2e-3f));
}

TEST(Conv2d, FusedReluWithAutogradIsAnError) {
  Tensor x = test::random_tensor({1, 2, 4, 4}, 1);
  Tensor w = test::random_tensor({2, 2, 3, 3}, 2).set_requires_grad(true);
  EXPECT_THROW(ops::conv2d(x, w, Tensor(), 1, 1, 1, true), Error);
  NoGradGuard ng;
  EXPECT_NO_THROW(ops::conv2d(x, w, Tensor(), 1, 1, 1, true));
}

TEST(Conv2d, ShapeMismatchNamesOpAndShapes) {
  try {
    ops::conv2d(Tensor::zeros({2, 3, 8, 8}), Tensor::zeros({4, 5, 3, 3}), Tensor(), 1, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("conv2d"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 8, 8]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 5, 3, 3]"), std::string::npos) << m;
  }
  try {
    ops::conv2d(Tensor::zeros({2, 4, 8, 8}), Tensor::zeros({4, 4, 3, 3}), Tensor::zeros({3}), 1, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("conv2d"), std::string::npos) << m;
    EXPECT_NE(m.find("[3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::conv2d(Tensor::zeros({1, 2, 2, 2}), Tensor::zeros({2, 2, 5, 5}), Tensor(), 1, 0), Error);
}

TEST(Conv2d, ConcurrentCallsFromThreadsAgree) {
  // The plan cache is shared: several threads running the same shape at once must each get the right result.
  const Case c{2, 8, 12, 12, 8, 3, 3, 1, 1, 1, true};
  const Conv2dShape s = shape_of(c);
  auto x = test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), 31);
  auto w = test::random_vector(static_cast<size_t>(s.K * s.C * 9), 32);
  auto b = test::random_vector(static_cast<size_t>(s.K), 33);
  const auto ref = ref_forward(s, x, w, &b);
  std::vector<std::vector<float>> ys(4, std::vector<float>(ref.size()));
  std::vector<std::thread> threads;
  for (auto& y : ys)
    threads.emplace_back([&, yp = y.data()] {
      for (int it = 0; it < 5; ++it) cpu::conv2d_forward(s, x.data(), w.data(), b.data(), yp);
    });
  for (auto& t : threads) t.join();
  for (auto& y : ys) EXPECT_TRUE(test::all_close(y, ref, 1e-5f, 1e-4f));
}

TEST(Conv2d, DISABLED_TimeResnet20Layer) {
  // Not a test: prints forward + backward time of a 3x3 16->16 conv on 128x16x32x32 (run with
  // --gtest_also_run_disabled_tests; threads from OMP_NUM_THREADS).
  Conv2dShape s;
  s.N = 128, s.C = 16, s.H = 32, s.W = 32, s.K = 16, s.R = 3, s.S = 3, s.stride = 1, s.pad = 1;
  auto x = test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), 1);
  auto w = test::random_vector(16 * 16 * 9, 2);
  std::vector<float> y(x.size()), dx(x.size()), dw(w.size()), db(16);
  auto run = [&] {
    cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y.data());
    cpu::conv2d_backward_data(s, y.data(), w.data(), dx.data());
    cpu::conv2d_backward_weights(s, x.data(), y.data(), dw.data(), db.data());
  };
  run();
  const int iters = 10;
  auto time = [&](auto&& f) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  };
  double fwd = time([&] { cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y.data()); });
  double bwd_d = time([&] { cpu::conv2d_backward_data(s, y.data(), w.data(), dx.data()); });
  double bwd_w = time([&] { cpu::conv2d_backward_weights(s, x.data(), y.data(), dw.data(), db.data()); });
  const double gflop = 2.0 * s.N * s.K * s.OH() * s.OW() * s.C * 9 / 1e9;
  std::printf("threads %d: forward %.2f ms (%.1f GFLOP/s), backward-data %.2f ms, backward-weights %.2f ms, "
              "total %.2f ms\n",
              cpu::num_threads(), fwd, gflop / fwd * 1e3, bwd_d, bwd_w, fwd + bwd_d + bwd_w);
}

TEST(Conv2d, DISABLED_TimeResnet20ForwardBackward) {
  // Not a test: a resnet20 (RepDistiller's CIFAR layout: BasicBlocks 16/32/64, 1x1 conv + BN downsample) built
  // from the ops, batch 128 of 3x32x32, 100 classes; prints the time of forward + backward through autograd.
  struct ConvBn {
    Tensor w, g, b, rm, rv;
    int64_t stride, pad;
  };
  uint32_t seed = 1;
  auto make = [&](int64_t cin, int64_t cout, int64_t k, int64_t stride) {
    ConvBn c;
    c.w = test::random_tensor({cout, cin, k, k}, seed++, -0.1f, 0.1f).set_requires_grad(true);
    c.g = Tensor::full({cout}, 1.0f).set_requires_grad(true);
    c.b = Tensor::zeros({cout}).set_requires_grad(true);
    c.rm = Tensor::zeros({cout});
    c.rv = Tensor::full({cout}, 1.0f);
    c.stride = stride, c.pad = k / 2;
    return c;
  };
  auto apply = [](const ConvBn& c, const Tensor& x) {
    return ops::batch_norm2d(ops::conv2d(x, c.w, Tensor(), c.stride, c.pad), c.g, c.b, c.rm, c.rv, true);
  };
  struct Block {
    ConvBn c1, c2;
    bool down;
    ConvBn d;
  };
  ConvBn stem = make(3, 16, 3, 1);
  std::vector<Block> blocks;
  int64_t cin = 16;
  for (int64_t width : {16, 32, 64})
    for (int i = 0; i < 3; ++i) {
      const int64_t stride = (i == 0 && width != 16) ? 2 : 1;
      Block b{make(cin, width, 3, stride), make(width, width, 3, 1), stride != 1 || cin != width, {}};
      if (b.down) b.d = make(cin, width, 1, stride);
      blocks.push_back(b);
      cin = width;
    }
  Tensor fc_w = test::random_tensor({100, 64}, seed++, -0.1f, 0.1f).set_requires_grad(true);
  Tensor fc_b = Tensor::zeros({100}).set_requires_grad(true);
  Tensor x = test::random_tensor({128, 3, 32, 32}, 99);
  std::vector<int32_t> lv(128);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = static_cast<int32_t>(i % 100);
  Tensor labels = Tensor::from_labels(lv);
  auto step = [&] {
    Tensor h = ops::relu(apply(stem, x));
    for (const Block& b : blocks) {
      Tensor o = apply(b.c2, ops::relu(apply(b.c1, h)));
      h = ops::relu(ops::add(o, b.down ? apply(b.d, h) : h));
    }
    Tensor loss = ops::cross_entropy(ops::linear(ops::global_avg_pool(h), fc_w, fc_b), labels);
    loss.backward();
  };
  step();
  const int iters = 5;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) step();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  std::printf("resnet20 batch 128, %d threads: forward + backward %.1f ms (%.0f images/s)\n", cpu::num_threads(), ms,
              128 / ms * 1e3);
}

TEST(Conv2d, RepeatedCallsAreBitIdentical) {
  // Determinism: the same inputs give the same bits (the backward-weights reduction order is fixed).
  Conv2dShape s;
  s.N = 8, s.C = 16, s.H = 16, s.W = 16, s.K = 16, s.R = 3, s.S = 3, s.stride = 1, s.pad = 1;
  auto x = test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), 41);
  auto dy = test::random_vector(x.size(), 42);
  std::vector<float> dw1(16 * 16 * 9), dw2(dw1.size()), db1(16), db2(16);
  cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw1.data(), db1.data());
  cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw2.data(), db2.data());
  EXPECT_EQ(dw1, dw2);
  EXPECT_EQ(db1, db2);
}
