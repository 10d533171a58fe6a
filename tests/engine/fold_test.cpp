// Tests of nn::fold_batch_norm (the frozen teacher's BN folded into its convs) and of host-block reuse: folding
// must not change a model's eval logits, must apply only to eval + no-grad, and must refuse a wrong pairing.
#include <gtest/gtest.h>

#include <functional>

#include "engine/autograd.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

void for_each(Module& m, const std::function<void(Module&)>& f) {
  f(m);
  for (auto& [name, c] : m.children()) for_each(*c, f);
}

// Non-trivial BN statistics and affine parameters, so a wrong fold shows in the logits.
void randomise_batch_norms(Module& m) {
  uint32_t seed = 100;
  for_each(m, [&](Module& x) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(&x);
    if (!bn) return;
    const int64_t C = bn->channels;
    bn->weight().copy_from(test::random_tensor({C}, seed++, 0.5f, 1.5f));
    bn->bias().copy_from(test::random_tensor({C}, seed++, -0.3f, 0.3f));
    bn->running_mean().copy_from(test::random_tensor({C}, seed++, -0.3f, 0.3f));
    bn->running_var().copy_from(test::random_tensor({C}, seed++, 0.5f, 2.0f));
  });
}

std::vector<float> eval_logits(Module& m, const Tensor& x) {
  NoGradGuard ng;
  return m(x).to_vector();
}

class FoldBatchNorm : public ::testing::TestWithParam<const char*> {};

TEST_P(FoldBatchNorm, FoldedModelGivesTheSameEvalLogits) {
  models::ModelConfig cfg;
  cfg.num_classes = 10;
  auto m = models::create_model(GetParam(), cfg);
  randomise_batch_norms(*m);
  m->eval();
  const Tensor x = test::random_tensor({2, 3, 32, 32}, 7);
  const std::vector<float> ref = eval_logits(*m, x);
  const int folded = nn::fold_batch_norm(*m);
  EXPECT_GT(folded, 0);
  EXPECT_TRUE(test::all_close(eval_logits(*m, x), ref, 1e-4f, 1e-4f));
  // Twice: the second forward must not see state left by the first.
  EXPECT_TRUE(test::all_close(eval_logits(*m, x), ref, 1e-4f, 1e-4f));
}

INSTANTIATE_TEST_SUITE_P(Zoo, FoldBatchNorm,
                         ::testing::Values("resnet8", "resnet8x4", "wrn_16_1", "vgg8", "MobileNetV2", "ShuffleV1",
                                           "ShuffleV2"),
                         [](const auto& info) { return std::string(info.param); });

TEST(FoldBatchNormModes, TrainModeDropsTheFold) {
  models::ModelConfig cfg;
  cfg.num_classes = 10;
  auto m = models::create_model("resnet8", cfg);
  randomise_batch_norms(*m);
  m->eval();
  ASSERT_GT(nn::fold_batch_norm(*m), 0);
  m->train();
  bool any_folded = false;
  for_each(*m, [&](Module& x) {
    if (auto* c = dynamic_cast<nn::Conv2d*>(&x)) any_folded |= c->is_folded();
    if (auto* b = dynamic_cast<nn::BatchNorm2d*>(&x)) any_folded |= b->folded_into != nullptr;
  });
  EXPECT_FALSE(any_folded);
}

TEST(FoldBatchNormModes, EvalWithAutogradUsesTheUnfoldedLayers) {
  models::ModelConfig cfg;
  cfg.num_classes = 10;
  auto m = models::create_model("resnet8", cfg);
  randomise_batch_norms(*m);
  m->eval();
  const Tensor x = test::random_tensor({2, 3, 32, 32}, 9);
  const std::vector<float> ref = eval_logits(*m, x);
  nn::fold_batch_norm(*m);
  Tensor y = (*m)(x);  // grad mode on: parameters require grad, so the graph goes through the real BN layers
  EXPECT_TRUE(y.requires_grad());
  EXPECT_TRUE(test::all_close(y.to_vector(), ref, 1e-4f, 1e-4f));
}

TEST(FoldBatchNormModes, TrainingModelIsRejected) {
  models::ModelConfig cfg;
  auto m = models::create_model("resnet8", cfg);
  EXPECT_THROW(nn::fold_batch_norm(*m), Error);
}

// A conv registered right before a BN whose forward does not feed it: the folded BN must refuse to run.
class MisorderedBlock : public Module {
 public:
  explicit MisorderedBlock(nn::InitRng& rng) {
    conv_ = register_module("conv", std::make_shared<nn::Conv2d>(4, 4, 3, 1, 1, 1, false, rng));
    bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(4));
  }
  Tensor forward(const Tensor& x) override { return (*conv_)((*bn_)(x)); }  // BN first: not a conv->BN pair

 private:
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
};

TEST(FoldBatchNormModes, BatchNormNotFedByItsConvIsAnError) {
  nn::InitRng rng(1);
  MisorderedBlock m(rng);
  m.eval();
  ASSERT_EQ(nn::fold_batch_norm(m), 1);
  NoGradGuard ng;
  EXPECT_THROW(m(test::random_tensor({1, 4, 5, 5}, 3)), Error);
  nn::unfold_batch_norm(m);
  EXPECT_NO_THROW(m(test::random_tensor({1, 4, 5, 5}, 3)));
}

TEST(HostStorage, ReusedBlocksKeepTensorsIndependent) {
  // Free a block, allocate the same size again (a reuse), and check that writes to the new tensor do not reach
  // tensors that are still alive.
  Tensor keep = Tensor::full({1000}, 2.0f);
  { Tensor dead = Tensor::full({1000}, 1.0f); }
  Tensor again = Tensor::full({1000}, 3.0f);
  EXPECT_NE(keep.data(), again.data());
  EXPECT_EQ(keep.to_vector(), std::vector<float>(1000, 2.0f));
  EXPECT_EQ(Tensor::zeros({1000}).to_vector(), std::vector<float>(1000, 0.0f));
  release_idle_host_memory();
  EXPECT_EQ(again.to_vector(), std::vector<float>(1000, 3.0f));
}

}  // namespace

namespace {

// The blocked inference path against plain conv2d, through the elementwise ops that keep the layout and a second
// convolution that consumes it.
TEST(Conv2dInference, BlockedActivationsGiveThePlainResults) {
  NoGradGuard ng;
  const Tensor x = test::random_tensor({2, 3, 9, 9}, 1);
  const Tensor w1 = test::random_tensor({16, 3, 3, 3}, 2), b1 = test::random_tensor({16}, 3);
  const Tensor w2 = test::random_tensor({16, 16, 3, 3}, 4);
  const Tensor w3 = test::random_tensor({16, 16, 1, 1}, 5);
  // Plain reference.
  Tensor p1 = ops::relu(ops::conv2d(x, w1, b1, 1, 1));
  Tensor p2 = ops::conv2d(p1, w2, Tensor(), 2, 1);
  Tensor p3 = ops::relu(ops::add(p2, ops::conv2d(p1, w3, Tensor(), 2, 0)));
  // Blocked.
  Tensor q1 = ops::relu(ops::conv2d_inference(x, w1, b1, 1, 1));
  Tensor q2 = ops::conv2d_inference(q1, w2, Tensor(), 2, 1);
  Tensor q3 = ops::relu(ops::add(q2, ops::conv2d_inference(q1, w3, Tensor(), 2, 0)));
  EXPECT_EQ(q3.layout(), Layout::DnnlBlocked);
  EXPECT_EQ(q3.shape(), p3.shape());
  EXPECT_TRUE(test::all_close(q1.to_plain().to_vector(), p1.to_vector(), 1e-5f, 1e-5f));
  EXPECT_TRUE(test::all_close(q3.to_vector(), p3.to_vector(), 1e-5f, 1e-5f));
  // Fused ReLU and an op that needs plain memory (global average pool converts at its boundary).
  Tensor f = ops::conv2d_inference(x, w1, b1, 1, 1, 1, true);
  EXPECT_TRUE(test::all_close(ops::global_avg_pool(f).to_vector(), ops::global_avg_pool(p1).to_vector(), 1e-5f,
                              1e-5f));
}

TEST(Conv2dInference, InputThatRequiresGradIsAnError) {
  Tensor x = test::random_tensor({1, 3, 5, 5}, 1);
  x.set_requires_grad(true);
  EXPECT_THROW(ops::conv2d_inference(x, test::random_tensor({4, 3, 3, 3}, 2), Tensor(), 1, 1), Error);
}

}  // namespace

// The residual-sum fusion (a frozen ResNet block's conv2 + shortcut + ReLU in one call) against conv -> add ->
// relu on the plain path: residual already in the output's layout (read as is, left untouched), plain,
// with and without the ReLU, and the grouped-conv fallback (separate ops).
TEST(Conv2dInference, ResidualSumIsFusedIntoTheConvolution) {
  NoGradGuard ng;
  const Tensor x = test::random_tensor({3, 16, 7, 5}, 1);
  const Tensor w = test::random_tensor({16, 16, 3, 3}, 2, -0.3f, 0.3f), b = test::random_tensor({16}, 3);
  const Tensor r_plain = test::random_tensor({3, 16, 7, 5}, 4);
  const Tensor r_blocked = ops::conv2d_inference(x, w, Tensor(), 1, 1);  // in the output's layout
  ASSERT_EQ(r_blocked.layout(), Layout::DnnlBlocked);
  const std::vector<float> r_blocked_before = r_blocked.to_vector();
  for (const Tensor* r : {&r_plain, &r_blocked}) {
    for (bool relu : {false, true}) {
      Tensor ref = ops::add(ops::conv2d(x, w, b, 1, 1), r->to_plain());
      if (relu) ref = ops::relu(ref);
      Tensor y = ops::conv2d_inference(x, w, b, 1, 1, 1, relu, *r);
      EXPECT_EQ(y.layout(), Layout::DnnlBlocked);
      EXPECT_TRUE(test::all_close(y.to_vector(), ref.to_vector(), 1e-5f, 1e-5f)) << "relu " << relu;
    }
  }
  EXPECT_EQ(r_blocked.to_vector(), r_blocked_before);
  // Grouped: the fallback composes conv2d, add and relu.
  const Tensor wg = test::random_tensor({16, 8, 3, 3}, 5, -0.3f, 0.3f);
  Tensor ref = ops::relu(ops::add(ops::conv2d(x, wg, b, 1, 1, 2), r_plain));
  EXPECT_TRUE(test::all_close(ops::conv2d_inference(x, wg, b, 1, 1, 2, true, r_plain).to_vector(), ref.to_vector(),
                              1e-5f, 1e-5f));
  EXPECT_THROW(ops::conv2d_inference(x, w, b, 1, 1, 1, true, test::random_tensor({3, 16, 7, 4}, 6)), Error);
}

// The fused block path is what a folded, frozen ResNet / WRN runs; it must give the layer-by-layer eval logits.
TEST(FoldBatchNormModes, FusedBlocksGiveTheLayerByLayerLogits) {
  for (const char* name : {"resnet20", "wrn_16_2"}) {
    models::ModelConfig cfg;
    cfg.num_classes = 10;
    auto m = models::create_model(name, cfg);
    randomise_batch_norms(*m);
    m->eval();
    const Tensor x = test::random_tensor({2, 3, 32, 32}, 7);
    const std::vector<float> ref = eval_logits(*m, x);
    ASSERT_GT(nn::fold_batch_norm(*m), 0);
    EXPECT_TRUE(test::all_close(eval_logits(*m, x), ref, 1e-4f, 1e-4f)) << name;
  }
}
