// The `infer` app: logits equal an in-process forward whatever the chunk size; a folder of PNGs is classified from a
// checkpoint alone (model, classes, channels, normalisation from its metadata); a split's evaluation gives the top-1
// that training printed; user mistakes (unknown model, weights of another architecture, wrong channel count,
// missing file) end with one line on stderr and exit 1.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO_WARNINGS
#include <stb/stb_image_write.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "engine/train/run_log.h"

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/npy.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

namespace islkd {
namespace {

const std::string kInfer = std::string(ISLKD_BINARY_DIR) + "/apps/infer";

std::string fixed_2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// A resnet8 checkpoint (10 classes, 1 input channel) and a 5-image 28x28 batch in a fresh directory.
struct Fixture {
  std::string dir, weights, input;
  std::vector<float> expected;
  Fixture() {
    // One directory per test: ctest runs the cases in parallel processes.
    dir = std::string(ISLKD_BINARY_DIR) + "/tests/apps/infer/" +
          ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir);
    weights = dir + "/resnet8.safetensors";
    input = dir + "/x.npy";
    auto m = models::create_model("resnet8", {10, 1, 9});
    checkpoint::save(weights, *m);
    Tensor x = test::random_tensor({5, 1, 28, 28}, 8);
    npy::write(input, x.shape(), x.to_vector());
    m->eval();
    NoGradGuard no_grad;
    expected = m->forward(x).to_vector();
  }
  std::string cmd(const std::string& extra) const {
    return kInfer + " --model resnet8 --num-classes 10 --in-channels 1 --weights " + weights + " --input " + input +
           " --output " + dir + "/y.npy " + extra;
  }
};

TEST(InferApp, LogitsMatchAnInProcessForwardWithAnyChunkSize) {
  Fixture f;
  for (const char* batch : {"--batch 2", "--batch 256"}) {
    auto [rc, out] = test::run_command(f.cmd(std::string("--device auto ") + batch));
    ASSERT_EQ(rc, 0) << out;
    npy::Array y = npy::read(f.dir + "/y.npy");
    EXPECT_EQ(y.shape, (std::vector<int64_t>{5, 10}));
    EXPECT_TRUE(test::all_close(y.data, f.expected, 1e-5f, 1e-4f)) << batch;
  }
}

void expect_one_line_failure(const std::string& cmd, const char* part) {
  auto [rc, out] = test::run_command(cmd);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find(part), std::string::npos) << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  EXPECT_EQ(out.find('\n'), std::string::npos) << "more than one line:\n" << out;
}

TEST(InferApp, UnknownModelIsOneLineAndExit1) {
  Fixture f;
  expect_one_line_failure(kInfer + " --model resnet9 --weights " + f.weights + " --input " + f.input +
                              " --output " + f.dir + "/y.npy",
                          "valid names");
}

TEST(InferApp, WeightsOfAnotherArchitectureAreOneLineAndExit1) {
  Fixture f;
  expect_one_line_failure(kInfer + " --model resnet14 --num-classes 10 --in-channels 1 --weights " + f.weights +
                              " --input " + f.input + " --output " + f.dir + "/y.npy",
                          "missing from the checkpoint");
}

TEST(InferApp, ChannelMismatchIsOneLineAndExit1) {
  Fixture f;
  auto m = models::create_model("resnet8", {10, 3, 0});
  checkpoint::save(f.dir + "/rgb.safetensors", *m);
  expect_one_line_failure(kInfer + " --model resnet8 --num-classes 10 --in-channels 3 --weights " + f.dir +
                              "/rgb.safetensors --input " + f.input + " --output " + f.dir + "/y.npy",
                          "--in-channels");
}

TEST(InferApp, MissingInputFileIsOneLineAndExit1) {
  Fixture f;
  expect_one_line_failure(kInfer + " --model resnet8 --num-classes 10 --in-channels 1 --weights " + f.weights +
                              " --input /nonexistent/x.npy --output " + f.dir + "/y.npy",
                          "/nonexistent/x.npy");
}

TEST(InferApp, ForcedCudaWithoutADeviceIsOneLineAndExit1) {
  Fixture f;
  auto [rc, out] = test::run_command(f.cmd("--device cuda"));
  // On a machine with a GPU this succeeds; without one it must fail cleanly.
  if (rc != 0) {
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("--device cpu"), std::string::npos) << out;
  }
}

// A short `train` run on Fashion-MNIST (its checkpoint records model, classes, channels and normalisation); returns
// the test accuracy its epoch line printed, as text ("81.50").
std::string train_small_model(const std::string& dir) {
  auto [rc, out] = test::run_command(std::string(ISLKD_BINARY_DIR) + "/apps/train --model resnet8 --epochs 1 --limit 2048"
                                     " --batch-size 64 --test-limit 200 --schedule constant --threads 1 --device cpu --out " + dir +
                                     "/model.safetensors");
  EXPECT_EQ(rc, 0) << out;
  const size_t at = out.find("test acc ");
  if (at == std::string::npos) return "?";
  return out.substr(at + 9, out.find('%', at) - at - 9);
}

TEST(InferApp, AFolderOfPngsIsClassifiedFromACheckpointWithNoShapeFlags) {
  const std::string dir = std::string(ISLKD_BINARY_DIR) + "/tests/apps/infer/png_folder";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/pngs");
  train_small_model(dir);
  // Six test images written as grey PNGs, and the logits the model gives them through the evaluation loader.
  auto ds = data::open_dataset("fashion-mnist", "", "test");
  constexpr int kImages = 6;
  for (int i = 0; i < kImages; ++i) {
    std::vector<uint8_t> px(static_cast<size_t>(ds->instance_bytes()));
    ds->read(i, px.data());
    const std::string name = dir + "/pngs/img" + std::to_string(i) + ".png";
    ASSERT_NE(stbi_write_png(name.c_str(), ds->width(), ds->height(), 1, px.data(), ds->width()), 0) << name;
  }
  auto m = models::create_model("resnet8", {10, 1, 0});
  checkpoint::load(dir + "/model.safetensors", *m);
  m->eval();
  data::LoaderOptions lo;
  lo.batch_size = kImages;
  data::Loader loader = train::sequential_loader(ds, kImages, lo);
  loader.start_epoch(0);
  data::Batch b;
  ASSERT_TRUE(loader.next(b));
  std::vector<float> expected;
  {
    NoGradGuard no_grad;
    expected = m->forward(b.images).to_vector();
  }
  auto [rc, out] = test::run_command(kInfer + " --device cpu --weights " + dir + "/model.safetensors --input " + dir +
                                     "/pngs --top-k 3 --output " + dir + "/logits.npy --json " + dir + "/pred.json");
  ASSERT_EQ(rc, 0) << out;
  const npy::Array y = npy::read(dir + "/logits.npy");
  EXPECT_EQ(y.shape, (std::vector<int64_t>{kImages, 10}));
  EXPECT_TRUE(test::all_close(y.data, expected, 1e-5f, 1e-4f));
  nlohmann::json pred;
  std::ifstream(dir + "/pred.json") >> pred;
  ASSERT_EQ(pred["predictions"].size(), static_cast<size_t>(kImages));
  for (int i = 0; i < kImages; ++i) {
    const float* row = expected.data() + i * 10;
    const int64_t best = std::max_element(row, row + 10) - row;
    const auto& p = pred["predictions"][static_cast<size_t>(i)];
    EXPECT_EQ(p["input"], dir + "/pngs/img" + std::to_string(i) + ".png");
    ASSERT_EQ(p["top"].size(), 3u);
    EXPECT_EQ(p["top"][0]["class"], best) << i;
    EXPECT_EQ(p["top"][0]["name"], ds->class_names()[static_cast<size_t>(best)]) << i;
    // The printed line: "<file>: <class> <name> <probability>, ..."
    const std::string line_start = dir + "/pngs/img" + std::to_string(i) + ".png: " + std::to_string(best) + " " +
                                   ds->class_names()[static_cast<size_t>(best)] + " ";
    EXPECT_NE(out.find(line_start), std::string::npos) << line_start << "\n" << out;
  }
}

TEST(InferApp, EvaluatingASplitGivesTheTop1ThatTrainingPrinted) {
  const std::string dir = std::string(ISLKD_BINARY_DIR) + "/tests/apps/infer/split";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string train_acc = train_small_model(dir);
  auto [rc, out] = test::run_command(kInfer + " --device cpu --weights " + dir + "/model.safetensors --split test "
                                     "--limit 200 --json " + dir + "/eval.json");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("fashion-mnist test, 200 images: top-1 " + train_acc + "%"), std::string::npos)
      << "train printed " << train_acc << "%:\n" << out;
  nlohmann::json j;
  std::ifstream(dir + "/eval.json") >> j;
  EXPECT_EQ(j["n"], 200);
  EXPECT_EQ(fixed_2(j["top1_accuracy"].get<double>()), train_acc);
  EXPECT_GE(j["top5_accuracy"].get<double>(), j["top1_accuracy"].get<double>());
  ASSERT_EQ(j["per_class"].size(), 10u);
  ASSERT_EQ(j["confusion"].size(), 10u);
  int64_t total = 0, diagonal = 0;
  for (size_t r = 0; r < 10; ++r) {
    ASSERT_EQ(j["confusion"][r].size(), 10u);
    for (size_t c = 0; c < 10; ++c) total += j["confusion"][r][c].get<int64_t>();
    diagonal += j["confusion"][r][r].get<int64_t>();
    EXPECT_EQ(j["per_class"][r]["name"], data::open_dataset("fashion-mnist", "", "test")->class_names()[r]);
  }
  EXPECT_EQ(total, 200);
  EXPECT_NEAR(100.0 * static_cast<double>(diagonal) / 200.0, j["top1_accuracy"].get<double>(), 1e-9);
}

}  // namespace

// A class count whose classifier size overflows int64 (4611686018427387904 x 64 = 2^68) was a wrapped, tiny
// allocation written out of bounds (SIGSEGV): now one error line naming the flag, quickly (a hang fails the test).
TEST(InferApp, NumClassesWhoseClassifierSizeOverflowsIsOneErrorLine) {
  Fixture f;
  expect_one_line_failure("timeout 20 " + kInfer + " --model resnet20 --in-channels 1 --num-classes 4611686018427387904"
                          " --weights " + std::string(ISLKD_SOURCE_DIR) + "/teachers/resnet20_fashion-mnist.safetensors"
                          " --input " + f.input + " --output " + f.dir + "/y.npy",
                          "--num-classes 4611686018427387904");
}

}  // namespace islkd
