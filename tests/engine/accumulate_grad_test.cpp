// accumulate_grad adopts a backward's fresh local gradient as the tensor's gradient (no copy) when nothing else
// refers to it, plain or blocked, and copies it when something does (the caller keeps a second handle, or the
// gradient is a view of other storage), so a later write through the other handle cannot change the gradient.
#include <gtest/gtest.h>

#include <vector>

#include "engine/tensor.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

std::shared_ptr<void> blocked_layout(int64_t N, int64_t C, int64_t H, int64_t W) {
  return std::const_pointer_cast<void>(std::static_pointer_cast<const void>(cpu::activation_layout(N, C, H, W)));
}

}  // namespace

TEST(AccumulateGrad, FreshPlainGradientIsAdoptedWithoutACopy) {
  const Tensor t = Tensor::zeros({2, 3});
  t.set_requires_grad(true);
  Tensor g = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  const void* storage = g.raw_data();
  accumulate_grad(t, g);
  EXPECT_EQ(t.grad().raw_data(), storage);
  EXPECT_EQ(t.grad().to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

// The usual case in training: the gradient of a blocked activation comes out of a blocked backward already in
// the tensor's layout (to_layout_of is then a no-op that hands back a second handle on the same impl).
TEST(AccumulateGrad, FreshGradientInTheTensorsBlockedLayoutIsAdoptedWithoutACopy) {
  const Tensor plain = test::random_tensor({2, 16, 3, 3}, 1);
  const Tensor t = plain.to_blocked(blocked_layout(2, 16, 3, 3));
  t.set_requires_grad(true);
  Tensor g = test::random_tensor({2, 16, 3, 3}, 2).to_blocked(t.impl()->layout_desc);
  ASSERT_TRUE(same_layout(g, t));
  const std::vector<float> expect = g.to_vector();
  const void* storage = g.raw_data();
  accumulate_grad(t, g);
  EXPECT_EQ(t.grad().raw_data(), storage);
  EXPECT_TRUE(same_layout(t.grad(), t));
  EXPECT_EQ(t.grad().to_vector(), expect);
  // A second gradient is added into the adopted one.
  accumulate_grad(t, g.clone());
  std::vector<float> twice = expect;
  for (float& v : twice) v *= 2.0f;
  EXPECT_TRUE(test::all_close(t.grad().to_vector(), twice, 0.0f, 1e-6f));
}

TEST(AccumulateGrad, GradientWithAnotherOwnerIsCopied) {
  const Tensor t = Tensor::zeros({4});
  t.set_requires_grad(true);
  Tensor g = Tensor::from_vector({1, 2, 3, 4}, {4});
  const Tensor keep = g;  // a second owner: adopting would alias it
  accumulate_grad(t, g);
  EXPECT_NE(t.grad().raw_data(), keep.raw_data());
  keep.data()[0] = 100.0f;
  EXPECT_EQ(t.grad().to_vector(), (std::vector<float>{1, 2, 3, 4}));

  const Tensor u = Tensor::zeros({2, 2});
  u.set_requires_grad(true);
  Tensor base = Tensor::from_vector({1, 2, 3, 4}, {4});
  accumulate_grad(u, base.view({2, 2}));  // a view shares the storage of `base`
  EXPECT_NE(u.grad().raw_data(), base.raw_data());
}
