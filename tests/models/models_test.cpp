// Model zoo: output shapes, parameter and state-dict counts equal to PyTorch's for the RepDistiller replicas,
// deterministic seeded initialisation, BN bookkeeping in training, and the registry's errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "engine/autograd.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

namespace islkd {
namespace {

struct Expected {
  int64_t params_100_rgb;   // parameters with 100 classes, 3 input channels
  int64_t params_10_gray;   // parameters with 10 classes, 1 input channel
  size_t state_dict_size;   // len(model.state_dict()) in PyTorch
};

// Produced by the PyTorch replicas (apps/repdistiller_models.py) with
//   /usr/bin/python3 tests/apps/pytorch_parity.py count                               (100 classes, RGB)
//   /usr/bin/python3 tests/apps/pytorch_parity.py count --num-classes 10 --in-channels 1
// resnet20 / resnet56 agree with the 278,324 / 861,620.
const std::map<std::string, Expected>& expected() {
  static const std::map<std::string, Expected> e = {
      {"resnet8", {83892, 77754, 56}},          {"resnet14", {181108, 174970, 92}},
      {"resnet20", {278324, 272186, 128}},      {"resnet32", {472756, 466618, 200}},
      {"resnet44", {667188, 661050, 272}},      {"resnet56", {861620, 855482, 344}},
      {"resnet110", {1736564, 1730426, 668}},   {"resnet8x4", {1233540, 1209834, 62}},
      {"resnet32x4", {7433860, 7410154, 206}},  {"wrn_16_1", {180916, 174778, 82}},
      {"wrn_16_2", {703284, 691386, 83}},       {"wrn_40_1", {569780, 563642, 226}},
      {"wrn_40_2", {2255156, 2243258, 227}},    {"vgg8", {3965028, 3917706, 37}},
      {"vgg11", {9277284, 9229962, 58}},        {"vgg13", {9462180, 9414858, 72}},
      {"vgg16", {14774436, 14727114, 93}},      {"vgg19", {20086692, 20039370, 114}},
      {"MobileNetV2", {812836, 697258, 320}},   {"ShuffleV1", {949258, 862720, 296}},
      {"ShuffleV2", {1355528, 1263230, 338}},
  };
  return e;
}

size_t state_dict_size(Module& m) {
  return m.named_parameters().size() + m.named_buffers().size() + m.named_counters().size();
}

class ModelZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelZoo, ParameterAndStateDictCountsMatchPyTorch) {
  const Expected& e = expected().at(GetParam());
  auto rgb = models::create_model(GetParam(), {100, 3, 0});
  EXPECT_EQ(rgb->num_parameters(), e.params_100_rgb);
  EXPECT_EQ(state_dict_size(*rgb), e.state_dict_size);
  std::set<std::string> names;  // unique dotted names (the exact list is checked against PyTorch in tests/apps)
  for (auto& [n, t] : rgb->named_parameters()) EXPECT_TRUE(names.insert(n).second) << n;
  for (auto& [n, t] : rgb->named_buffers()) EXPECT_TRUE(names.insert(n).second) << n;
  for (auto& [n, c] : rgb->named_counters()) EXPECT_TRUE(names.insert(n).second) << n;
  EXPECT_EQ(names.size(), e.state_dict_size);
  auto gray = models::create_model(GetParam(), {10, 1, 0});
  EXPECT_EQ(gray->num_parameters(), e.params_10_gray);
}

TEST_P(ModelZoo, OutputIsBatchByClassesFor32x32RgbAnd28x28Gray) {
  NoGradGuard no_grad;
  auto rgb = models::create_model(GetParam(), {100, 3, 1});
  rgb->eval();
  Tensor y = rgb->forward(test::random_tensor({2, 3, 32, 32}, 1));
  EXPECT_EQ(y.shape(), (Shape{2, 100}));
  for (float v : y.to_vector()) ASSERT_TRUE(std::isfinite(v));
  auto gray = models::create_model(GetParam(), {10, 1, 1});
  gray->eval();
  EXPECT_EQ(gray->forward(test::random_tensor({2, 1, 28, 28}, 2)).shape(), (Shape{2, 10}));
}

std::vector<std::string> canonical_names() {
  std::vector<std::string> n;
  for (auto& [k, v] : expected()) n.push_back(k);
  return n;
}

INSTANTIATE_TEST_SUITE_P(AllModels, ModelZoo, ::testing::ValuesIn(canonical_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(ModelRegistry, ListsEveryRepDistillerNameAndTheAliases) {
  const std::vector<std::string> names = models::model_names();
  for (const auto& [name, e] : expected()) EXPECT_TRUE(models::has_model(name)) << name;
  for (const char* alias : {"vgg8_bn", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "mobile_half", "mobilenetv2"})
    EXPECT_NE(std::find(names.begin(), names.end(), alias), names.end()) << alias;
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(ModelRegistry, SameSeedGivesSameWeightsAndOtherSeedDiffers) {
  for (const char* name : {"resnet20", "wrn_16_2", "vgg8", "MobileNetV2", "ShuffleV1", "ShuffleV2"}) {
    auto a = models::create_model(name, {10, 3, 7});
    auto b = models::create_model(name, {10, 3, 7});
    auto c = models::create_model(name, {10, 3, 8});
    auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    bool any_diff = false;
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_EQ(pa[i].second.to_vector(), pb[i].second.to_vector()) << name << " " << pa[i].first;
      any_diff = any_diff || pa[i].second.to_vector() != pc[i].second.to_vector();
    }
    EXPECT_TRUE(any_diff) << name;
  }
}

TEST(ModelRegistry, UnknownNameIsAnErrorListingValidNames) {
  try {
    models::create_model("resnet21", {10, 3, 0});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("resnet21"), std::string::npos) << msg;
    EXPECT_NE(msg.find("resnet20"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ShuffleV2"), std::string::npos) << msg;
  }
}

TEST(ModelRegistry, AliasesBuildTheSameModel) {
  for (auto [alias, name] : std::vector<std::pair<std::string, std::string>>{
           {"vgg8_bn", "vgg8"}, {"vgg13_bn", "vgg13"}, {"mobile_half", "MobileNetV2"}, {"mobilenetv2", "MobileNetV2"}}) {
    auto a = models::create_model(alias, {10, 3, 3}), b = models::create_model(name, {10, 3, 3});
    auto pa = a->named_parameters(), pb = b->named_parameters();
    ASSERT_EQ(pa.size(), pb.size()) << alias;
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].second.to_vector(), pb[i].second.to_vector());
  }
}

TEST(ModelRegistry, NonPositiveClassesAreAnError) {
  EXPECT_THROW(models::create_model("resnet8", {0, 3, 0}), Error);
}

TEST(ModelNames, ResNetFollowsRepDistiller) {
  auto m = models::create_model("resnet20", {100, 3, 0});
  std::map<std::string, Shape> shapes;
  for (auto& [n, t] : m->named_parameters()) shapes[n] = t.shape();
  for (auto& [n, t] : m->named_buffers()) shapes[n] = t.shape();
  EXPECT_EQ(shapes.at("conv1.weight"), (Shape{16, 3, 3, 3}));
  EXPECT_EQ(shapes.at("layer1.0.conv1.weight"), (Shape{16, 16, 3, 3}));
  EXPECT_EQ(shapes.at("layer2.0.downsample.0.weight"), (Shape{32, 16, 1, 1}));
  EXPECT_EQ(shapes.at("layer2.0.downsample.1.running_mean"), (Shape{32}));
  EXPECT_EQ(shapes.at("layer3.2.bn2.running_var"), (Shape{64}));
  EXPECT_EQ(shapes.at("fc.weight"), (Shape{100, 64}));
  EXPECT_EQ(shapes.at("fc.bias"), (Shape{100}));
  EXPECT_EQ(shapes.count("layer1.0.downsample.0.weight"), 0u);
  bool has_counter = false;
  for (auto& [n, c] : m->named_counters()) has_counter = has_counter || n == "layer3.2.bn2.num_batches_tracked";
  EXPECT_TRUE(has_counter);
}

TEST(ModelTraining, ForwardInTrainingUpdatesBnStatsAndCountersAndBackwardReachesEveryParameter) {
  for (const char* name : {"resnet8", "ShuffleV2", "wrn_16_1"}) {
    auto m = models::create_model(name, {10, 3, 0});
    m->train();
    Tensor y = m->forward(test::random_tensor({4, 3, 32, 32}, 5));
    Tensor loss = ops::cross_entropy(y, Tensor::from_labels({0, 3, 9, 1}));
    loss.backward();
    for (auto& [n, c] : m->named_counters()) EXPECT_EQ(*c, 1) << name << " " << n;
    for (auto& [n, t] : m->named_parameters()) EXPECT_TRUE(t.grad().defined()) << name << " " << n;
    bool moved = false;
    for (auto& [n, t] : m->named_buffers())
      if (n.find("running_mean") != std::string::npos)
        for (float v : t.to_vector()) moved = moved || v != 0.0f;
    EXPECT_TRUE(moved) << name;
  }
}

TEST(ModelTraining, EvalForwardLeavesBnStateAlone) {
  auto m = models::create_model("resnet8", {10, 3, 0});
  m->eval();
  NoGradGuard no_grad;
  m->forward(test::random_tensor({2, 3, 32, 32}, 6));
  for (auto& [n, c] : m->named_counters()) EXPECT_EQ(*c, 0) << n;
  for (auto& [n, t] : m->named_buffers())
    if (n.find("running_var") != std::string::npos)
      for (float v : t.to_vector()) ASSERT_EQ(v, 1.0f) << n;
}

// Sample standard deviation of a tensor's values.
double stddev(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  double m = 0, s = 0;
  for (float x : v) m += x;
  m /= v.size();
  for (float x : v) s += (x - m) * (x - m);
  return std::sqrt(s / v.size());
}

TEST(ModelInit, ConvsAreKaimingFanOutAndBnIsOneZero) {
  auto m = models::create_model("resnet56", {100, 3, 0});
  std::map<std::string, Tensor> p;
  for (auto& [n, t] : m->named_parameters()) p[n] = t;
  // layer3 3x3 conv: fan_out = 64*9 -> std sqrt(2/576) = 0.0589; 36864 samples -> ~0.4% sampling error.
  EXPECT_NEAR(stddev(p.at("layer3.0.conv2.weight")), std::sqrt(2.0 / 576), 0.002);
  for (float v : p.at("layer2.1.bn1.weight").to_vector()) ASSERT_EQ(v, 1.0f);
  for (float v : p.at("layer2.1.bn1.bias").to_vector()) ASSERT_EQ(v, 0.0f);
  // fc keeps PyTorch's default U(-1/sqrt(64), 1/sqrt(64)).
  for (float v : p.at("fc.weight").to_vector()) ASSERT_LE(std::fabs(v), 0.125f);
  EXPECT_NEAR(stddev(p.at("fc.weight")), 0.125 / std::sqrt(3.0), 0.005);
}

TEST(ModelInit, VggLinearIsNormalPointZeroOneWithZeroBiases) {
  auto m = models::create_model("vgg8", {100, 3, 0});
  std::map<std::string, Tensor> p;
  for (auto& [n, t] : m->named_parameters()) p[n] = t;
  EXPECT_NEAR(stddev(p.at("classifier.weight")), 0.01, 0.0005);
  for (float v : p.at("classifier.bias").to_vector()) ASSERT_EQ(v, 0.0f);
  for (float v : p.at("block2.0.bias").to_vector()) ASSERT_EQ(v, 0.0f);
}

TEST(ModelInit, ShuffleNetKeepsPyTorchDefaultUniform) {
  auto m = models::create_model("ShuffleV2", {100, 3, 0});
  for (auto& [n, t] : m->named_parameters()) {
    if (n != "layer2.3.conv1.weight") continue;
    const double bound = 1.0 / std::sqrt(116.0);  // fan_in = 116 * 1 * 1
    for (float v : t.to_vector()) ASSERT_LE(std::fabs(v), bound);
    EXPECT_NEAR(stddev(t), bound / std::sqrt(3.0), 0.004);
  }
}

}  // namespace
}  // namespace islkd
