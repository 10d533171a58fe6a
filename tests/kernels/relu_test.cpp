// ReLU: CPU against a plain reference, and the finite-difference gradient check.
#include "engine/ops.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(Relu, CpuMatchesReference) {
  for (int64_t n : {1, 31, 33, 1000, 100003}) {
    std::vector<float> x = test::random_vector(static_cast<size_t>(n), 7);
    std::vector<float> ref(x.size());
    for (size_t i = 0; i < x.size(); ++i) ref[i] = x[i] > 0 ? x[i] : 0;
    EXPECT_TRUE(test::all_close(ops::relu(Tensor::from_vector(x, {n})), ref, 0, 0)) << "n=" << n;
  }
}

TEST(Relu, GradientMatchesFiniteDifferences) {
  // Inputs kept away from 0 (the kink) by more than eps.
  std::vector<float> x = test::random_vector(2 * 3 * 4 * 5, 3);
  for (auto& v : x) v = v >= 0 ? v + 0.1f : v - 0.1f;
  Tensor t = Tensor::from_vector(x, {2, 3, 4, 5});
  t.set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::relu(in[0]); }, {t}, 1e-2f, 1e-3f,
                               1e-3f));
}

TEST(Add, GradientFlowsToBothInputs) {
  Tensor a = test::random_tensor({3, 7}, 1).set_requires_grad(true);
  Tensor b = test::random_tensor({3, 7}, 2).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::add(in[0], in[1]); }, {a, b}, 1e-2f,
                               1e-3f, 1e-3f));
}

TEST(Add, ShapeMismatchNamesOpAndShapes) {
  try {
    ops::add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}));
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("add"), std::string::npos) << m;
    EXPECT_NE(m.find("[3, 2]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
  }
}
