// apps/export_onnx.py: a checkpoint exported to ONNX gives infer's logits in onnxruntime (within 1e-4 relative).
// onnxruntime comes from PyPI into a venv made here in the build folder (/usr/bin/python3 -m venv
// --system-site-packages, so Debian's torch and numpy stay visible); without PyPI the case is skipped, saying so.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/common/test_util.h"

#ifndef ISLKD_PYTHON
#define ISLKD_PYTHON "/usr/bin/python3"
#endif

namespace islkd {
namespace {

const std::string kBuild = ISLKD_BINARY_DIR;
const std::string kSource = ISLKD_SOURCE_DIR;

// The venv's python with onnxruntime, or "" with the reason in *why.
std::string onnxruntime_python(std::string* why) {
  const std::string venv = kBuild + "/onnx-venv", py = venv + "/bin/python";
  if (!std::filesystem::exists(py)) {
    auto [rc, out] = test::run_command(std::string(ISLKD_PYTHON) + " -m venv --system-site-packages " + venv);
    if (rc != 0) return *why = "cannot make a venv (python3-venv installed?): " + out, "";
  }
  if (test::run_command(py + " -c 'import onnxruntime'").first == 0) return py;
  auto [rc, out] = test::run_command("PIP_DEFAULT_TIMEOUT=20 timeout 600 " + py +
                                     " -m pip install -q --disable-pip-version-check --retries 1 onnxruntime");
  if (rc != 0 || test::run_command(py + " -c 'import onnxruntime'").first != 0)
    return *why = "onnxruntime could not be installed from PyPI (pip unreachable?): " + out, "";
  return py;
}

void export_and_compare(const std::string& py, const std::string& dir, const std::string& weights,
                        const std::string& flags, const std::string& input) {
  auto [rc, out] = test::run_command(std::string(ISLKD_PYTHON) + " " + kSource + "/apps/export_onnx.py --weights " +
                                     weights + " --out " + dir + "/model.onnx " + flags);
  ASSERT_EQ(rc, 0) << out;
  std::printf("[ onnx ] %s", out.c_str());
  auto [rc2, out2] = test::run_command(kBuild + "/apps/infer --device cpu --weights " + weights + " " + flags +
                                       " --input " + input + " --output " + dir + "/engine.npy");
  ASSERT_EQ(rc2, 0) << out2;
  auto [rc3, out3] = test::run_command(py + " " + kSource + "/tests/apps/onnx_check.py --onnx " + dir +
                                       "/model.onnx --input " + input + " --logits " + dir + "/engine.npy");
  std::printf("[ onnx ] %s", out3.c_str());
  EXPECT_EQ(rc3, 0) << out3;
}

TEST(ExportOnnx, OnnxruntimeGivesInfersLogits) {
  std::string why;
  const std::string py = onnxruntime_python(&why);
  if (py.empty()) GTEST_SKIP() << why;
  const std::string dir = kBuild + "/tests/apps/onnx";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/trained");
  std::filesystem::create_directories(dir + "/shufflev2");
  // A `train` checkpoint: model, classes, channels and image size all from its metadata (no flags anywhere).
  auto [rc, out] = test::run_command(kBuild + "/apps/train --model resnet8 --epochs 1 --limit 256 --test-limit 100 "
                                     "--threads 1 --device cpu --out " + dir + "/trained/model.safetensors");
  ASSERT_EQ(rc, 0) << out;
  auto [rc2, out2] = test::run_command(std::string(ISLKD_PYTHON) + " " + kSource +
                                       "/tests/apps/pytorch_parity.py fashion --weights " + dir +
                                       "/trained/model.safetensors --model resnet8 --num-classes 10 --in-channels 1 "
                                       "--limit 16 --out-dir " + dir + "/trained");
  ASSERT_EQ(rc2, 0) << out2;
  export_and_compare(py, dir + "/trained", dir + "/trained/model.safetensors", "", dir + "/trained/input.npy");
  // Random ShuffleV2 weights from PyTorch (channel shuffles, splits, concatenations), 100 classes, RGB 32 x 32.
  auto [rc3, out3] = test::run_command(std::string(ISLKD_PYTHON) + " " + kSource +
                                       "/tests/apps/pytorch_parity.py export --model ShuffleV2 --out-dir " + dir +
                                       "/shufflev2");
  ASSERT_EQ(rc3, 0) << out3;
  export_and_compare(py, dir + "/shufflev2", dir + "/shufflev2/weights.safetensors", "--model ShuffleV2",
                     dir + "/shufflev2/input.npy");
}

}  // namespace
}  // namespace islkd
