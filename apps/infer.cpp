// infer: runs a zoo model with safetensors weights on a float32 N x C x H x W .npy batch and writes the N x K
// logits as .npy. How users run a distilled student, and how the PyTorch parity test checks our weights.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>

#include "apps/app_main.h"
#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/npy.h"
#include "engine/tensor.h"
#include "kernels/common/checked.h"
#include "kernels/cuda/cuda_kernels.h"
#include "models/registry.h"

namespace {

using namespace islkd;

struct Options {
  std::string model, weights, input, output, device = "auto";
  int64_t num_classes = 100, in_channels = 3, batch = 256;
};

int run(const Options& o) {
  check_output_path(o.output);  // a bad --output fails before the model runs
  std::ostringstream device_log;  // the summary line below names the device; stderr stays for errors
  const Device device = select_device(o.device, device_log);
  auto model = [&] {
    try {
      return models::create_model(o.model, {o.num_classes, o.in_channels, 0});
    } catch (const Error& e) {  // e.g. a --num-classes whose classifier size overflows
      ISLKD_FAIL("--model ", o.model, " with --num-classes ", o.num_classes, " and --in-channels ", o.in_channels, ": ",
                 e.what());
    }
  }();
  checkpoint::load(o.weights, *model);  // strict: a mismatched architecture fails here, naming the tensor
  model->eval();
  model->to(device);

  const npy::Array x = npy::read(o.input);
  ISLKD_CHECK(x.shape.size() == 4, o.input, ": expected an N x C x H x W float32 array, got ", shape_str(x.shape));
  ISLKD_CHECK(x.shape[1] == o.in_channels, o.input, ": the batch has ", x.shape[1], " channels but --in-channels is ",
              o.in_channels);
  const int64_t n = x.shape[0];
  const int64_t per_image = checked_mul(checked_mul(x.shape[1], x.shape[2], o.input, ": image size"), x.shape[3],
                                        o.input, ": image size");

  // Chunks bound the activation memory whatever the size of the input file.
  NoGradGuard no_grad;
  std::vector<float> logits;
  logits.reserve(static_cast<size_t>(checked_mul(n, o.num_classes, "logits (images x --num-classes)")));
  for (int64_t start = 0; start < n; start += o.batch) {
    const int64_t b = std::min(o.batch, n - start);
    std::vector<float> chunk(x.data.begin() + start * per_image, x.data.begin() + (start + b) * per_image);
    Tensor in = Tensor::from_vector(chunk, {b, x.shape[1], x.shape[2], x.shape[3]}).to(device);
    Tensor y = model->forward(in);
    ISLKD_CHECK(y.dim() == 2 && y.size(0) == b && y.size(1) == o.num_classes, "model '", o.model,
                "' returned shape ", shape_str(y.shape()), ", expected ", b, " x ", o.num_classes);
    std::vector<float> v = y.to_vector();
    logits.insert(logits.end(), v.begin(), v.end());
  }
  npy::write(o.output, {n, o.num_classes}, logits);
  std::fprintf(stderr, "infer: %s on %s, %lld images -> %s\n", o.model.c_str(), device_name(device),
               static_cast<long long>(n), o.output.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Run a model on a .npy batch and write its logits as .npy"};
  app.add_option("--model", o.model, "model name (resnet20, wrn_40_2, ShuffleV2, ...)")->required();
  app.add_option("--num-classes", o.num_classes, "number of classes K")->check(CLI::PositiveNumber);
  app.add_option("--in-channels", o.in_channels, "input channels C (1 for Fashion-MNIST)")->check(CLI::PositiveNumber);
  app.add_option("--weights", o.weights, "weights (.safetensors, a PyTorch state_dict or our checkpoint)")->required();
  app.add_option("--input", o.input, "input batch: float32 N x C x H x W .npy")->required();
  app.add_option("--output", o.output, "output logits: float32 N x K .npy")->required();
  app.add_option("--device", o.device, "auto (cuda when available) | cpu | cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--batch", o.batch, "images per forward pass (bounds memory)")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the one-line usage error
    return code == 0 ? 0 : 1;
  }
  return islkd::app::guarded_main("infer", [&] { return run(o); });
}
