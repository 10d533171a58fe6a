// PyTorch parity: `infer` must reproduce the logits of PyTorch replicas of the RepDistiller models (and of
// torchvision's own resnet18/34/50) from the same safetensors weights (max|diff| / max|ref| <= 1e-4), and a
// checkpoint this engine writes after a training step must load into PyTorch with load_state_dict(strict=True) and
// give the engine's logits. A missing torch (or torchvision) fails.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/npy.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

#ifndef ISLKD_PYTHON
#define ISLKD_PYTHON "/usr/bin/python3"
#endif

namespace islkd {
namespace {

constexpr double kTolerance = 1e-4;

const std::string kScript = std::string(ISLKD_SOURCE_DIR) + "/tests/apps/pytorch_parity.py";
const std::string kInfer = std::string(ISLKD_BINARY_DIR) + "/apps/infer";

std::string work_dir(const std::string& name) {
  const std::string dir = std::string(ISLKD_BINARY_DIR) + "/tests/apps/parity/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

// PyTorch writes weights + input + reference logits; `infer` must reproduce the logits. input_flags: the batch and
// input size of the export (default 4 x 3 x 32 x 32).
void pytorch_to_engine(const std::string& model, const std::string& input_flags = "", const std::string& tag = "") {
  const std::string dir = work_dir(model + tag);
  auto [rc, out] = test::run_command(std::string(ISLKD_PYTHON) + " " + kScript + " export --model " + model +
                                     " --out-dir " + dir + " " + input_flags);
  ASSERT_EQ(rc, 0) << "the PyTorch side failed (torch, and torchvision for resnet18/34/50, must be installed for "
                      "this test):\n"
                   << out;
  auto [rc2, out2] = test::run_command(kInfer + " --device cpu --model " + model +
                                      " --num-classes 100 --in-channels 3 --weights " + dir +
                                      "/weights.safetensors --input " + dir + "/input.npy --output " + dir +
                                      "/engine.npy");
  ASSERT_EQ(rc2, 0) << "infer failed:\n" << out2;
  const npy::Array ref = npy::read(dir + "/logits.npy"), got = npy::read(dir + "/engine.npy");
  ASSERT_EQ(got.shape, ref.shape);
  const double rel = test::max_relative_error(got.data, ref.data);
  std::printf("[ parity ] %s%s: PyTorch -> infer max|diff|/max|ref| = %.3e\n", model.c_str(), tag.c_str(), rel);
  ::testing::Test::RecordProperty("max_relative_error", std::to_string(rel));
  EXPECT_LE(rel, kTolerance) << model;
}

TEST(Parity, resnet20) { pytorch_to_engine("resnet20"); }
TEST(Parity, resnet8x4) { pytorch_to_engine("resnet8x4"); }
TEST(Parity, wrn_16_2) { pytorch_to_engine("wrn_16_2"); }
TEST(Parity, vgg8) { pytorch_to_engine("vgg8"); }
TEST(Parity, MobileNetV2) { pytorch_to_engine("MobileNetV2"); }
TEST(Parity, ShuffleV1) { pytorch_to_engine("ShuffleV1"); }
TEST(Parity, ShuffleV2) { pytorch_to_engine("ShuffleV2"); }
TEST(Parity, ResNet50) { pytorch_to_engine("ResNet50", "--batch 2"); }
// torchvision.models.resnet18/34/50 themselves (weights=None, random weights and BN statistics).
TEST(Parity, resnet18) { pytorch_to_engine("resnet18", "--size 64"); }
TEST(Parity, resnet34) { pytorch_to_engine("resnet34", "--size 64"); }
TEST(Parity, resnet50) { pytorch_to_engine("resnet50", "--batch 2 --size 64"); }
TEST(Parity, resnet18At224) { pytorch_to_engine("resnet18", "--batch 1 --size 224", "_224"); }

// The engine trains one SGD step (so BN statistics and num_batches_tracked are non-trivial), writes a checkpoint,
// and PyTorch must load it strictly and reproduce the engine's eval logits.
void engine_to_pytorch(const std::string& model) {
  const std::string dir = work_dir("export_" + model);
  auto m = models::create_model(model, {100, 3, 42});
  m->train();
  Tensor logits = m->forward(test::random_tensor({8, 3, 32, 32}, 3));
  ops::cross_entropy(logits, Tensor::from_labels({1, 5, 9, 0, 99, 42, 7, 7})).backward();
  {
    NoGradGuard no_grad;
    for (auto& [name, p] : m->named_parameters()) {
      Tensor g = p.grad().defined() ? p.grad().to_plain() : Tensor();
      ASSERT_TRUE(g.defined()) << name;
      float* w = p.data();
      const float* gd = g.data();
      for (int64_t i = 0; i < p.numel(); ++i) w[i] -= 0.1f * gd[i];
    }
  }
  m->eval();
  Tensor x = test::random_tensor({4, 3, 32, 32}, 4);
  std::vector<float> y;
  {
    NoGradGuard no_grad;
    y = m->forward(x).to_vector();
  }
  checkpoint::save(dir + "/engine.safetensors", *m,
                   {safetensors::Entry::from_f32("optimizer.momentum.fc.weight", {1}, {0.0f})}, {{"epoch", "1"}});
  npy::write(dir + "/input.npy", x.shape(), x.to_vector());
  npy::write(dir + "/engine_logits.npy", {4, 100}, y);
  // PyTorch's strict load must not see the optimizer entry: strip it the way a user would (model state only).
  checkpoint::save(dir + "/model_only.safetensors", *m);
  auto [rc, out] = test::run_command(std::string(ISLKD_PYTHON) + " " + kScript + " check --model " + model +
                                     " --weights " + dir + "/model_only.safetensors --input " + dir +
                                     "/input.npy --logits " + dir + "/engine_logits.npy");
  std::printf("[ parity ] %s: engine checkpoint -> PyTorch strict load: %s", model.c_str(), out.c_str());
  EXPECT_EQ(rc, 0) << out;
}

TEST(ParityExport, resnet20CheckpointLoadsStrictlyIntoPyTorch) { engine_to_pytorch("resnet20"); }
TEST(ParityExport, ShuffleV2CheckpointLoadsStrictlyIntoPyTorch) { engine_to_pytorch("ShuffleV2"); }
TEST(ParityExport, MobileNetV2CheckpointLoadsStrictlyIntoPyTorch) { engine_to_pytorch("MobileNetV2"); }
TEST(ParityExport, resnet18CheckpointLoadsStrictlyIntoTorchvision) { engine_to_pytorch("resnet18"); }

// Every zoo model's state-dict names and shapes equal those of its PyTorch replica.
TEST(ParityNames, EveryModelHasThePyTorchStateDictNamesAndShapes) {
  const std::string dir = work_dir("names");
  auto [rc, out] = test::run_command(std::string(ISLKD_PYTHON) + " " + kScript + " names > " + dir + "/names.txt");
  ASSERT_EQ(rc, 0) << out;
  std::FILE* f = std::fopen((dir + "/names.txt").c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::map<std::string, std::map<std::string, std::string>> torch_names;  // model -> name -> "dtype shape"
  char line[1024];
  while (std::fgets(line, sizeof line, f)) {
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    const size_t a = s.find(' '), b = s.find(' ', a + 1);
    torch_names[s.substr(0, a)][s.substr(a + 1, b - a - 1)] = s.substr(b + 1);
  }
  std::fclose(f);
  ASSERT_EQ(torch_names.size(), 25u);
  for (auto& [model, expected] : torch_names) {
    auto m = models::create_model(model, {100, 3, 0});
    std::map<std::string, std::string> ours;
    for (auto& [n, t] : m->named_parameters()) ours[n] = "F32 " + shape_str(t.shape());
    for (auto& [n, t] : m->named_buffers()) ours[n] = "F32 " + shape_str(t.shape());
    for (auto& [n, c] : m->named_counters()) ours[n] = "I64 []";
    EXPECT_EQ(ours, expected) << model;
  }
}

}  // namespace
}  // namespace islkd
