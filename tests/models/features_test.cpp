// Named intermediate features (Module::forward_features): every zoo model's RepDistiller `feat` list (names and
// shapes, both preact modes) against the PyTorch replicas, the values of each family against PyTorch from the same
// weights (eval, and the folded inference teacher), one forward pass that leaves forward() unchanged, gradients
// from a loss on a feature, and the errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/nn.h"
#include "engine/npy.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

namespace islkd {
namespace {

const std::string kScript = std::string(ISLKD_SOURCE_DIR) + "/tests/models/features_torch_ref.py";

std::string work_dir(const std::string& name) {
  const std::string dir = std::string(ISLKD_BINARY_DIR) + "/tests/models/features/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(ModelFeatures, EveryModelHasRepDistillersFeatureListShapes) {
  const std::string path = work_dir("shapes") + "/shapes.json";
  auto [rc, out] = test::run_command("/usr/bin/python3 " + kScript + " shapes " + path);
  ASSERT_EQ(rc, 0) << "the PyTorch side failed (python3-torch must be installed for /usr/bin/python3):\n" << out;
  std::ifstream f(path);
  const nlohmann::json torch_shapes = nlohmann::json::parse(f);
  ASSERT_EQ(torch_shapes.size(), 25u);
  Tensor x = test::random_tensor({2, 3, 32, 32}, 1);
  for (auto& [model, modes] : torch_shapes.items()) {
    auto m = models::create_model(model, {100, 3, 0});
    m->eval();
    NoGradGuard no_grad;
    for (int preact = 0; preact < 2; ++preact) {
      const auto& expected = modes[std::to_string(preact)];
      const std::vector<std::string> names = m->feature_names();
      ASSERT_EQ(names.size(), expected.size()) << model;
      FeatureRequest req;
      req.preact = preact == 1;
      FeaturesOutput o = m->forward_features(x, req);
      ASSERT_EQ(o.features.size(), names.size()) << model;
      for (size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(names[i], "feat" + std::to_string(i)) << model;
        EXPECT_EQ(o.features.at(names[i]).shape(), expected[i].get<Shape>()) << model << " " << names[i]
                                                                                << " preact " << preact;
      }
    }
  }
}

// PyTorch exports random weights, an input and the features of both modes; the engine must reproduce them from
// the same weights, in eval mode and with BN folded into the convolutions (the inference teacher).
void features_match_pytorch(const std::string& model, const std::string& input_flags = "") {
  const std::string dir = work_dir(model);
  auto [rc, out] = test::run_command("/usr/bin/python3 " + kScript + " export --model " + model + " --out-dir " + dir +
                                     " " + input_flags);
  ASSERT_EQ(rc, 0) << out;
  auto m = models::create_model(model, {100, 3, 0});
  checkpoint::load(dir + "/weights.safetensors", *m);
  m->eval();
  const npy::Array in = npy::read(dir + "/input.npy");
  Tensor x = Tensor::from_vector(in.data, in.shape);
  const npy::Array logits = npy::read(dir + "/logits.npy");
  NoGradGuard no_grad;
  for (bool folded : {false, true}) {
    if (folded) ASSERT_GT(nn::fold_batch_norm(*m), 0);
    for (int preact = 0; preact < 2; ++preact) {
      FeatureRequest req;
      req.preact = preact == 1;
      FeaturesOutput o = m->forward_features(x, req);
      const double lrel = test::max_relative_error(o.logits.to_plain().to_vector(), logits.data);
      EXPECT_LE(lrel, 1e-4) << model << " logits";
      const auto names = m->feature_names();
      for (size_t i = 0; i < names.size(); ++i) {
        const npy::Array ref = npy::read(dir + "/feat" + std::to_string(preact) + "_" + std::to_string(i) + ".npy");
        const Tensor& f = o.features.at(names[i]);
        ASSERT_EQ(f.shape(), ref.shape) << model << " " << names[i];
        const double rel = test::max_relative_error(f.to_vector(), ref.data);
        std::printf("[ features ] %s %s preact=%d folded=%d: max|diff|/max|ref| = %.3e\n", model.c_str(),
                    names[i].c_str(), preact, folded ? 1 : 0, rel);
        EXPECT_LE(rel, 1e-4) << model << " " << names[i] << " preact " << preact << " folded " << folded;
      }
    }
  }
}

TEST(ModelFeatures, resnet8x4MatchesPyTorch) { features_match_pytorch("resnet8x4"); }
TEST(ModelFeatures, wrn_16_2MatchesPyTorch) { features_match_pytorch("wrn_16_2"); }
TEST(ModelFeatures, vgg8MatchesPyTorch) { features_match_pytorch("vgg8"); }
TEST(ModelFeatures, MobileNetV2MatchesPyTorch) { features_match_pytorch("MobileNetV2"); }
TEST(ModelFeatures, ShuffleV1MatchesPyTorch) { features_match_pytorch("ShuffleV1"); }
TEST(ModelFeatures, ShuffleV2MatchesPyTorch) { features_match_pytorch("ShuffleV2"); }
TEST(ModelFeatures, ResNet50MatchesPyTorch) { features_match_pytorch("ResNet50", "--batch 2"); }
// torchvision's module (with the replica's feats: stem before the max pool, the stages, the pooled vector).
TEST(ModelFeatures, resnet18MatchesTorchvision) { features_match_pytorch("resnet18", "--size 64"); }
TEST(ModelFeatures, resnet50MatchesTorchvision) { features_match_pytorch("resnet50", "--batch 2 --size 64"); }

// The logits of forward_features are forward()'s, bit for bit, in training mode (batch statistics) too.
TEST(ModelFeatures, LogitsEqualPlainForwardAndOnlyRequestedNamesReturn) {
  for (const char* model : {"resnet8", "wrn_16_1", "vgg8", "MobileNetV2", "ShuffleV1", "ShuffleV2", "resnet18"}) {
    auto a = models::create_model(model, {10, 3, 7});
    auto b = models::create_model(model, {10, 3, 7});
    Tensor x = test::random_tensor({2, 3, 32, 32}, 2);
    NoGradGuard no_grad;
    const std::vector<float> plain = a->forward(x).to_vector();
    FeatureRequest req;
    req.names = {"feat2", "feat0"};
    req.preact = true;
    FeaturesOutput o = b->forward_features(x, req);
    EXPECT_EQ(o.logits.to_vector(), plain) << model;
    EXPECT_EQ(o.features.size(), 2u) << model;
    EXPECT_TRUE(o.features.count("feat0") && o.features.count("feat2")) << model;
    // BN running statistics advanced once, as in one forward.
    auto ba = a->named_buffers(), bb = b->named_buffers();
    for (size_t i = 0; i < ba.size(); ++i) EXPECT_EQ(ba[i].second.to_vector(), bb[i].second.to_vector()) << model;
  }
}

TEST(ModelFeatures, LossOnAFeatureSendsGradientsIntoTheModelOnly) {
  auto m = models::create_model("resnet8", {10, 3, 3});
  m->train();
  FeatureRequest req;
  req.names = {"feat2"};
  FeaturesOutput o = m->forward_features(test::random_tensor({2, 3, 32, 32}, 4), req);
  const Tensor& f = o.features.at("feat2");
  test::weighted_sum(f, test::random_vector(static_cast<size_t>(f.numel()), 5)).backward();
  bool stem = false, fc = false;
  for (auto& [name, p] : m->named_parameters()) {
    if (name == "conv1.weight") stem = p.grad().defined();
    if (name == "fc.weight") fc = p.grad().defined();
  }
  EXPECT_TRUE(stem);
  EXPECT_FALSE(fc);
}

TEST(ModelFeatures, UnknownNameListsTheModelsNames) {
  auto m = models::create_model("resnet8", {10, 3, 0});
  FeatureRequest req;
  req.names = {"layer9"};
  try {
    m->forward_features(test::random_tensor({1, 3, 32, 32}, 1), req);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layer9"), std::string::npos) << msg;
    EXPECT_NE(msg.find("feat0, feat1, feat2, feat3, feat4"), std::string::npos) << msg;
  }
  // The failed request left nothing behind: a plain forward afterwards works.
  NoGradGuard no_grad;
  EXPECT_EQ(m->forward(test::random_tensor({1, 3, 32, 32}, 1)).shape(), (Shape{1, 10}));
}

}  // namespace
}  // namespace islkd
