// The name -> constructor table. Names follow RepDistiller's model_dict (torchvision's for the ImageNet resnet18/34/50);
// vgg*_bn and mobile_half are aliases.
#include "models/registry.h"

#include <algorithm>
#include <functional>
#include <map>

#include "kernels/common/error.h"

namespace islkd::models {

// Builders, one per model file.
std::shared_ptr<Module> make_resnet(const ModelConfig& cfg, int64_t depth, const std::vector<int64_t>& filters);
std::shared_ptr<Module> make_wrn(const ModelConfig& cfg, int64_t depth, int64_t widen);
std::shared_ptr<Module> make_vgg(const ModelConfig& cfg, int depth);
std::shared_ptr<Module> make_mobilenetv2(const ModelConfig& cfg, int64_t expand, double width);
std::shared_ptr<Module> make_shufflev1(const ModelConfig& cfg);
std::shared_ptr<Module> make_shufflev2(const ModelConfig& cfg);
std::shared_ptr<Module> make_resnet_imagenet(const ModelConfig& cfg, int depth);
std::shared_ptr<Module> make_resnetv2_cifar(const ModelConfig& cfg, int depth);

namespace {

using Builder = std::function<std::shared_ptr<Module>(const ModelConfig&)>;

const std::map<std::string, Builder>& table() {
  static const std::vector<int64_t> cifar = {16, 16, 32, 64}, x4 = {32, 64, 128, 256};
  static const std::map<std::string, Builder> t = {
      {"resnet8", [](const ModelConfig& c) { return make_resnet(c, 8, cifar); }},
      {"resnet14", [](const ModelConfig& c) { return make_resnet(c, 14, cifar); }},
      {"resnet20", [](const ModelConfig& c) { return make_resnet(c, 20, cifar); }},
      {"resnet32", [](const ModelConfig& c) { return make_resnet(c, 32, cifar); }},
      {"resnet44", [](const ModelConfig& c) { return make_resnet(c, 44, cifar); }},
      {"resnet56", [](const ModelConfig& c) { return make_resnet(c, 56, cifar); }},
      {"resnet110", [](const ModelConfig& c) { return make_resnet(c, 110, cifar); }},
      {"resnet8x4", [](const ModelConfig& c) { return make_resnet(c, 8, x4); }},
      {"resnet32x4", [](const ModelConfig& c) { return make_resnet(c, 32, x4); }},
      {"wrn_16_1", [](const ModelConfig& c) { return make_wrn(c, 16, 1); }},
      {"wrn_16_2", [](const ModelConfig& c) { return make_wrn(c, 16, 2); }},
      {"wrn_40_1", [](const ModelConfig& c) { return make_wrn(c, 40, 1); }},
      {"wrn_40_2", [](const ModelConfig& c) { return make_wrn(c, 40, 2); }},
      {"vgg8", [](const ModelConfig& c) { return make_vgg(c, 8); }},
      {"vgg11", [](const ModelConfig& c) { return make_vgg(c, 11); }},
      {"vgg13", [](const ModelConfig& c) { return make_vgg(c, 13); }},
      {"vgg16", [](const ModelConfig& c) { return make_vgg(c, 16); }},
      {"vgg19", [](const ModelConfig& c) { return make_vgg(c, 19); }},
      {"vgg8_bn", [](const ModelConfig& c) { return make_vgg(c, 8); }},
      {"vgg11_bn", [](const ModelConfig& c) { return make_vgg(c, 11); }},
      {"vgg13_bn", [](const ModelConfig& c) { return make_vgg(c, 13); }},
      {"vgg16_bn", [](const ModelConfig& c) { return make_vgg(c, 16); }},
      {"vgg19_bn", [](const ModelConfig& c) { return make_vgg(c, 19); }},
      {"MobileNetV2", [](const ModelConfig& c) { return make_mobilenetv2(c, 6, 0.5); }},
      {"mobilenetv2", [](const ModelConfig& c) { return make_mobilenetv2(c, 6, 0.5); }},
      {"mobile_half", [](const ModelConfig& c) { return make_mobilenetv2(c, 6, 0.5); }},
      {"ShuffleV1", [](const ModelConfig& c) { return make_shufflev1(c); }},
      {"ShuffleV2", [](const ModelConfig& c) { return make_shufflev2(c); }},
      {"ResNet50", [](const ModelConfig& c) { return make_resnetv2_cifar(c, 50); }},
      // torchvision.models' names and parameter names (ImageNet layout; num_classes from the config).
      {"resnet18", [](const ModelConfig& c) { return make_resnet_imagenet(c, 18); }},
      {"resnet34", [](const ModelConfig& c) { return make_resnet_imagenet(c, 34); }},
      {"resnet50", [](const ModelConfig& c) { return make_resnet_imagenet(c, 50); }},
  };
  return t;
}

}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& [n, b] : table()) names.push_back(n);
  return names;
}

bool has_model(const std::string& name) { return table().count(name) > 0; }

std::shared_ptr<Module> create_model(const std::string& name, const ModelConfig& config) {
  auto it = table().find(name);
  if (it == table().end()) {
    std::string valid;
    for (const auto& n : model_names()) valid += (valid.empty() ? "" : ", ") + n;
    ISLKD_FAIL("unknown model '", name, "'; valid names: ", valid);
  }
  ISLKD_CHECK(config.num_classes > 0, "model '", name, "': num_classes must be positive, got ", config.num_classes);
  ISLKD_CHECK(config.in_channels > 0, "model '", name, "': in_channels must be positive, got ", config.in_channels);
  return it->second(config);
}

}  // namespace islkd::models
