// The `infer` app: logits equal an in-process forward whatever the chunk size, and user mistakes (unknown model,
// weights of another architecture, wrong channel count, missing file) end with one line on stderr and exit 1.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/npy.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

namespace islkd {
namespace {

const std::string kInfer = std::string(ISLKD_BINARY_DIR) + "/apps/infer";

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
