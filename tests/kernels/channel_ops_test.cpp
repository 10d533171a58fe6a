// concat / split / channel_shuffle: exact data movement against index references, gradients through each, and
// boundary errors.
#include "engine/ops.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(Concat, JoinsChannelsInOrder) {
  const int64_t N = 3, H = 5, W = 7;
  std::vector<int64_t> cs{2, 1, 5};
  std::vector<Tensor> xs;
  std::vector<std::vector<float>> vs;
  for (size_t i = 0; i < cs.size(); ++i) {
    vs.push_back(test::random_vector(static_cast<size_t>(N * cs[i] * H * W), uint32_t(i + 1)));
    xs.push_back(Tensor::from_vector(vs.back(), {N, cs[i], H, W}));
  }
  std::vector<float> ref;
  for (int64_t n = 0; n < N; ++n)
    for (size_t i = 0; i < cs.size(); ++i)
      ref.insert(ref.end(), vs[i].begin() + n * cs[i] * H * W, vs[i].begin() + (n + 1) * cs[i] * H * W);
  Tensor y = ops::concat(xs);
  EXPECT_EQ(y.shape(), (Shape{N, 8, H, W}));
  EXPECT_TRUE(test::all_close(y, ref, 0, 0));
}

TEST(Concat, GradientReachesEveryInput) {
  Tensor a = test::random_tensor({2, 3, 4, 5}, 1).set_requires_grad(true);
  Tensor b = test::random_tensor({2, 1, 4, 5}, 2).set_requires_grad(true);
  Tensor c = test::random_tensor({2, 2}, 3).set_requires_grad(true);  // N x C tensors too
  Tensor d = test::random_tensor({2, 5}, 4).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::concat({in[0], in[1]}); }, {a, b}, 1e-2f,
                               1e-3f, 1e-3f));
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::concat({in[0], in[1]}); }, {c, d}, 1e-2f,
                               1e-3f, 1e-3f));
}

TEST(Concat, MismatchedShapesNameOpAndShapes) {
  try {
    ops::concat({Tensor::zeros({2, 3, 4, 4}), Tensor::zeros({2, 3, 5, 4})});
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("concat"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 4, 4]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 5, 4]"), std::string::npos) << m;
  }
}

TEST(Split, IsTheInverseOfConcat) {
  Tensor x = test::random_tensor({3, 7, 2, 3}, 5);
  auto parts = ops::split(x, {3, 0, 4});
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{3, 3, 2, 3}));
  EXPECT_EQ(parts[1].shape(), (Shape{3, 0, 2, 3}));
  EXPECT_TRUE(test::all_close(ops::concat(parts), x.to_vector(), 0, 0));
}

TEST(Split, GradientWithAnUnusedOutputIsZeroThere) {
  Tensor x = test::random_tensor({2, 5, 3, 3}, 6).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::split(in[0], {2, 3})[1]; }, {x}, 1e-2f,
                               1e-3f, 1e-3f));
  x.zero_grad();
  auto parts = ops::split(x, {2, 3});
  test::weighted_sum(parts[0], std::vector<float>(2 * 2 * 9, 1.0f)).backward();
  auto g = x.grad().to_vector();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(g[static_cast<size_t>((n * 5 + c) * 9 + i)], c < 2 ? 1.0f : 0.0f);
}

TEST(Split, CountsNotSummingToChannelsNameOpAndShape) {
  try {
    ops::split(Tensor::zeros({2, 5, 3, 3}), {2, 2});
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("split"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 5, 3, 3]"), std::string::npos) << m;
  }
}

TEST(ChannelShuffle, MatchesShuffleNetIndexing) {
  const int64_t N = 2, G = 3, Cg = 4, C = G * Cg, HW = 5;
  auto x = test::random_vector(static_cast<size_t>(N * C * HW), 7);
  std::vector<float> ref(x.size());
  // y[n, j*G + g] = x[n, g*Cg + j]  (PyTorch: view(N, G, Cg, HW).transpose(1, 2))
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t j = 0; j < Cg; ++j)
        for (int64_t i = 0; i < HW; ++i)
          ref[static_cast<size_t>((n * C + j * G + g) * HW + i)] = x[static_cast<size_t>((n * C + g * Cg + j) * HW + i)];
  Tensor y = ops::channel_shuffle(Tensor::from_vector(x, {N, C, 1, HW}), G);
  EXPECT_TRUE(test::all_close(y, ref, 0, 0));
}

TEST(ChannelShuffle, GradientMatchesFiniteDifferences) {
  Tensor x = test::random_tensor({2, 6, 3, 2}, 8).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::channel_shuffle(in[0], 2); }, {x}, 1e-2f,
                               1e-3f, 1e-3f, 1000));
}

TEST(ChannelShuffle, IndivisibleChannelsNameOpAndShape) {
  try {
    ops::channel_shuffle(Tensor::zeros({2, 5, 3, 3}), 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("channel_shuffle"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 5, 3, 3]"), std::string::npos) << m;
  }
}
