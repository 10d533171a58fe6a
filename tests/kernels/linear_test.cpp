// linear: oneDNN sgemm path against a double reference (forward, dx, dw, db) at awkward sizes, finite
// differences, boundary errors.
#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(Linear, ForwardAndBackwardMatchReference) {
  struct Dims {
    int64_t M, K, N;
  };
  uint32_t seed = 1;
  for (Dims d : {Dims{1, 1, 1}, Dims{1, 31, 33}, Dims{33, 17, 10}, Dims{128, 64, 100}, Dims{7, 256, 3}}) {
    auto x = test::random_vector(static_cast<size_t>(d.M * d.K), seed++);
    auto w = test::random_vector(static_cast<size_t>(d.N * d.K), seed++);
    auto b = test::random_vector(static_cast<size_t>(d.N), seed++);
    auto dy = test::random_vector(static_cast<size_t>(d.M * d.N), seed++);
    std::vector<float> y(dy.size()), dx(x.size()), dw(w.size()), db(b.size());
    std::vector<float> ry(y.size()), rdx(dx.size()), rdw(dw.size()), rdb(db.size());
    for (int64_t m = 0; m < d.M; ++m)
      for (int64_t n = 0; n < d.N; ++n) {
        double s = b[static_cast<size_t>(n)];
        for (int64_t k = 0; k < d.K; ++k) s += double(x[static_cast<size_t>(m * d.K + k)]) * w[static_cast<size_t>(n * d.K + k)];
        ry[static_cast<size_t>(m * d.N + n)] = float(s);
      }
    for (int64_t m = 0; m < d.M; ++m)
      for (int64_t k = 0; k < d.K; ++k) {
        double s = 0;
        for (int64_t n = 0; n < d.N; ++n) s += double(dy[static_cast<size_t>(m * d.N + n)]) * w[static_cast<size_t>(n * d.K + k)];
        rdx[static_cast<size_t>(m * d.K + k)] = float(s);
      }
    for (int64_t n = 0; n < d.N; ++n) {
      double sb = 0;
      for (int64_t m = 0; m < d.M; ++m) sb += dy[static_cast<size_t>(m * d.N + n)];
      rdb[static_cast<size_t>(n)] = float(sb);
      for (int64_t k = 0; k < d.K; ++k) {
        double s = 0;
        for (int64_t m = 0; m < d.M; ++m) s += double(dy[static_cast<size_t>(m * d.N + n)]) * x[static_cast<size_t>(m * d.K + k)];
        rdw[static_cast<size_t>(n * d.K + k)] = float(s);
      }
    }
    cpu::linear_forward(d.M, d.K, d.N, x.data(), w.data(), b.data(), y.data());
    cpu::linear_backward(d.M, d.K, d.N, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    const std::string at = detail::concat("M", d.M, " K", d.K, " N", d.N);
    EXPECT_TRUE(test::all_close(y, ry, 1e-5f, 1e-4f)) << at;
    EXPECT_TRUE(test::all_close(dx, rdx, 1e-5f, 1e-4f)) << at;
    EXPECT_TRUE(test::all_close(dw, rdw, 1e-5f, 1e-4f)) << at;
    EXPECT_TRUE(test::all_close(db, rdb, 1e-5f, 1e-4f)) << at;
  }
}

TEST(Linear, WithoutBiasIsPlainProduct) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {2, 2});
  Tensor w = Tensor::from_vector({1, 0, 0, 1, 1, 1}, {3, 2});
  EXPECT_TRUE(test::all_close(ops::linear(x, w, Tensor()), {1, 2, 3, 3, 4, 7}, 0, 0));
}

TEST(Linear, GradientMatchesFiniteDifferences) {
  // Linear in each input: eps 1e-2, tolerance 1e-3.
  Tensor x = test::random_tensor({5, 7}, 1).set_requires_grad(true);
  Tensor w = test::random_tensor({3, 7}, 2).set_requires_grad(true);
  Tensor b = test::random_tensor({3}, 3).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::linear(in[0], in[1], in[2]); },
                               {x, w, b}, 1e-2f, 1e-3f, 1e-3f));
}

TEST(Linear, ShapeMismatchNamesOpAndShapes) {
  try {
    ops::linear(Tensor::zeros({4, 6}), Tensor::zeros({3, 5}), Tensor());
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("linear"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 6]"), std::string::npos) << m;
    EXPECT_NE(m.find("[3, 5]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::linear(Tensor::zeros({4, 6}), Tensor::zeros({3, 6}), Tensor::zeros({4})), Error);
}

TEST(Linear, RepeatedCallsAreBitIdentical) {
  const int64_t M = 128, K = 256, N = 100;
  auto x = test::random_vector(static_cast<size_t>(M * K), 1), w = test::random_vector(static_cast<size_t>(N * K), 2);
  auto dy = test::random_vector(static_cast<size_t>(M * N), 3);
  auto run = [&] {
    std::vector<float> y(static_cast<size_t>(M * N)), dx(x.size()), dw(w.size()), db(static_cast<size_t>(N));
    cpu::linear_forward(M, K, N, x.data(), w.data(), nullptr, y.data());
    cpu::linear_backward(M, K, N, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), dw.begin(), dw.end());
    y.insert(y.end(), db.begin(), db.end());
    return y;
  };
  EXPECT_EQ(run(), run());
}
