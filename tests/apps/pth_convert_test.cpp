// apps/pth_to_safetensors.py: .pth files as training scripts save them (bare, under 'model' / 'state_dict' / 'net',
// with DataParallel's `module.` prefixes) become safetensors whose logits in `infer` equal PyTorch's; a wrong model
// lists what does not fit and exits 4; the reverse direction gives a .pth PyTorch loads strictly, and a teacher
// that made the round trip runs in train_kd with PyTorch's accuracy. A missing torch fails, never skips.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "engine/npy.h"
#include "tests/common/test_util.h"

#ifndef ISLKD_PYTHON
#define ISLKD_PYTHON "/usr/bin/python3"
#endif

namespace islkd {
namespace {

const std::string kPython = ISLKD_PYTHON;
const std::string kParity = kPython + " " + ISLKD_SOURCE_DIR + "/tests/apps/pytorch_parity.py";
const std::string kConvert = kPython + " " + ISLKD_SOURCE_DIR + "/apps/pth_to_safetensors.py";
const std::string kBin = std::string(ISLKD_BINARY_DIR) + "/apps/";

std::string work_dir(const std::string& name) {
  const std::string dir = std::string(ISLKD_BINARY_DIR) + "/tests/apps/pth/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// infer's logits on dir/input.npy against PyTorch's dir/logits.npy, as the parity test compares them.
double infer_vs_pytorch(const std::string& dir, const std::string& weights, const std::string& shape_flags) {
  auto [rc, out] = test::run_command(kBin + "infer --device cpu " + shape_flags + " --weights " + weights +
                                     " --input " + dir + "/input.npy --output " + dir + "/engine.npy");
  EXPECT_EQ(rc, 0) << out;
  if (rc != 0) return 1.0;
  const npy::Array ref = npy::read(dir + "/logits.npy"), got = npy::read(dir + "/engine.npy");
  EXPECT_EQ(got.shape, ref.shape);
  return got.shape == ref.shape ? test::max_relative_error(got.data, ref.data) : 1.0;
}

struct Wrapping {
  const char* wrap;
  const char* model;
};

TEST(PthToSafetensors, EveryWrappingWithModulePrefixesGivesPyTorchsLogitsInInfer) {
  for (const Wrapping& w : {Wrapping{"none", "resnet20"}, Wrapping{"model", "wrn_16_2"},
                            Wrapping{"state_dict", "ShuffleV2"}, Wrapping{"net", "MobileNetV2"}}) {
    const std::string dir = work_dir(std::string("wrap_") + w.wrap);
    auto [rc, out] = test::run_command(kParity + " export-pth --model " + w.model + " --wrap " + w.wrap +
                                       " --out-dir " + dir);
    ASSERT_EQ(rc, 0) << "the PyTorch side failed (torch must be installed for this test):\n" << out;
    // RepDistiller's wrapping holds a float (best_acc), which torch 1.13's safe unpickler refuses.
    const std::string unsafe = std::string(w.wrap) == "model" ? " --unsafe-pickle" : "";
    auto [rc2, out2] = test::run_command(kConvert + " " + dir + "/weights.pth " + dir + "/weights.safetensors --model " +
                                         w.model + unsafe);
    ASSERT_EQ(rc2, 0) << out2;
    EXPECT_NE(out2.find("'module.' prefixes stripped"), std::string::npos) << out2;
    const double rel =
        infer_vs_pytorch(dir, dir + "/weights.safetensors", std::string("--model ") + w.model + " --num-classes 100");
    std::printf("[ pth ] %s under '%s': infer vs PyTorch max|diff|/max|ref| = %.3e\n", w.model, w.wrap, rel);
    EXPECT_LE(rel, 1e-4) << w.model;
  }
}

TEST(PthToSafetensors, AFloatBesideTheStateDictNeedsUnsafePickle) {
  const std::string dir = work_dir("unsafe");
  auto [rc, out] = test::run_command(kParity + " export-pth --model resnet8 --wrap model --out-dir " + dir);
  ASSERT_EQ(rc, 0) << out;
  auto [rc2, out2] = test::run_command(kConvert + " " + dir + "/weights.pth " + dir + "/w.safetensors --model resnet8");
  EXPECT_EQ(rc2, 1) << out2;
  EXPECT_NE(out2.find("--unsafe-pickle"), std::string::npos) << out2;
  EXPECT_FALSE(std::filesystem::exists(dir + "/w.safetensors"));
}

TEST(PthToSafetensors, AWrongModelListsMissingUnexpectedAndMismatchedEntriesAndExits4) {
  const std::string dir = work_dir("mismatch");
  auto [rc, out] = test::run_command(kParity + " export-pth --model resnet20 --out-dir " + dir);
  ASSERT_EQ(rc, 0) << out;
  // resnet20 (100 classes) read as a 10-class resnet32: blocks missing, the classifier's shape wrong.
  auto [rc2, out2] = test::run_command(kConvert + " " + dir + "/weights.pth " + dir +
                                       "/w.safetensors --model resnet32 --num-classes 10");
  EXPECT_EQ(rc2, 4) << out2;
  for (const char* part : {"does not fit resnet32 (10 classes, 3 input channels)", "missing (72):",
                           "layer1.3.conv1.weight", "shape mismatch (2):", "fc.weight: file [100, 64], model [10, 64]"})
    EXPECT_NE(out2.find(part), std::string::npos) << part << "\n" << out2;
  // read as resnet14: its blocks are a subset, so resnet20's third blocks are unexpected.
  auto [rc3, out3] = test::run_command(kConvert + " " + dir + "/weights.pth " + dir + "/w.safetensors --model resnet14");
  EXPECT_EQ(rc3, 4) << out3;
  EXPECT_NE(out3.find("unexpected (36):"), std::string::npos) << out3;
  EXPECT_NE(out3.find("layer1.2.conv1.weight"), std::string::npos) << out3;
  EXPECT_FALSE(std::filesystem::exists(dir + "/w.safetensors"));
}

// The shipped teacher (a checkpoint of `train`, with momentum buffers) -> .pth (the reverse direction; model and
// shapes from its metadata) -> saved again under 'net' with `module.` prefixes -> safetensors (shapes from the
// file): PyTorch's replica loads the .pth strictly and its logits on Fashion-MNIST test images equal infer's, and
// train_kd runs with it as --teacher, printing PyTorch's accuracy on the same images.
TEST(PthToSafetensors, ARoundTrippedTeacherRunsInTrainKdWithPyTorchsLogits) {
  const std::string dir = work_dir("teacher");
  const std::string shipped = std::string(ISLKD_SOURCE_DIR) + "/teachers/resnet20_fashion-mnist.safetensors";
  auto [rc, out] = test::run_command(kConvert + " --reverse " + shipped + " " + dir + "/t.pth");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("128 tensors of resnet20 (10 classes, 1 input channels"), std::string::npos) << out;
  auto [rc2, out2] = test::run_command(kParity + " rewrap --input " + dir + "/t.pth --output " + dir +
                                       "/t_net.pth --wrap net");
  ASSERT_EQ(rc2, 0) << out2;
  auto [rc3, out3] = test::run_command(kConvert + " " + dir + "/t_net.pth " + dir + "/t.safetensors --model resnet20");
  ASSERT_EQ(rc3, 0) << out3;
  EXPECT_NE(out3.find("(10 classes, 1 input channels)"), std::string::npos) << out3;
  auto [rc4, out4] = test::run_command(kParity + " fashion --weights " + dir + "/t.pth --model resnet20 --num-classes "
                                       "10 --in-channels 1 --limit 500 --out-dir " + dir);
  ASSERT_EQ(rc4, 0) << out4;
  const size_t at = out4.find("accuracy ");
  ASSERT_NE(at, std::string::npos) << out4;
  const std::string accuracy = out4.substr(at + 9, out4.find('\n', at) - at - 9);
  const double rel = infer_vs_pytorch(dir, dir + "/t.safetensors", "--model resnet20 --num-classes 10 --in-channels 1");
  std::printf("[ pth ] round-tripped teacher: infer vs PyTorch on 500 test images max|diff|/max|ref| = %.3e, "
              "PyTorch accuracy %s%%\n", rel, accuracy.c_str());
  EXPECT_LE(rel, 1e-4);
  auto [rc5, out5] = test::run_command(kBin + "train_kd --method kd --teacher " + dir + "/t.safetensors --epochs 1 "
                                       "--limit 256 --test-limit 500 --threads 1 --device cpu --out " + dir +
                                       "/student.safetensors");
  ASSERT_EQ(rc5, 0) << out5;
  EXPECT_NE(out5.find("test accuracy " + accuracy + "%"), std::string::npos)
      << "PyTorch's accuracy " << accuracy << "%:\n" << out5;
}

}  // namespace
}  // namespace islkd
