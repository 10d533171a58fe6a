// DKD, AT and FitNet's hint against PyTorch references that reproduce the upstream modules (mdistiller's
// dkd_loss, RepDistiller's Attention and ConvReg + HintLoss; tests/kernels/distill_losses_torch_ref.py, run with
// /usr/bin/python3): loss and gradients w.r.t. the student's logits / features (and the regressor) within 1e-4
// relative (max|diff| / max|ref|), on the CPU and on the emulated CUDA device, at awkward sizes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/distill/dkd.h"
#include "engine/distill/feature_losses.h"
#include "engine/ops.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;

namespace {

constexpr double kTolerance = 1e-4;

nlohmann::json nested(const std::vector<float>& v, const Shape& shape, size_t dim = 0, size_t offset = 0) {
  if (dim + 1 == shape.size()) return std::vector<float>(v.begin() + offset, v.begin() + offset + shape[dim]);
  size_t inner = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= static_cast<size_t>(shape[d]);
  nlohmann::json out = nlohmann::json::array();
  for (int64_t i = 0; i < shape[dim]; ++i) out.push_back(nested(v, shape, dim + 1, offset + i * inner));
  return out;
}

std::vector<float> floats(const nlohmann::json& j) {
  std::vector<float> v;
  for (double x : j) v.push_back(static_cast<float>(x));
  return v;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& ref, double floor) {
  EXPECT_EQ(got.size(), ref.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - ref[i]));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return diff / std::max(scale, floor);
}

// Checks and reports one comparison: max|diff| / max(max|ref|, floor) <= 1e-4. The floor serves the DKD parts, which
// for nearly equal student and teacher are second-order small and computed in float by a difference of
// log-partitions on the device: relative to 1e-2 there, i.e. within 1e-6 absolute.
void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& ref,
                  double floor = 1e-30) {
  const double rel = rel_error(got, ref, floor);
  std::printf("[ torch ] %-40s max|diff|/max|ref| = %.3e\n", what.c_str(), rel);
  EXPECT_LE(rel, kTolerance) << what;
}

nlohmann::json run_torch(const nlohmann::json& cases) {
  const std::string in_path = (std::filesystem::temp_directory_path() /
                               ("islkd_distill_torch_" + std::to_string(getpid()) + ".json"))
                                  .string();
  {
    std::ofstream f(in_path);
    f << cases.dump();
  }
  const std::string cmd =
      "/usr/bin/python3 " ISLKD_SOURCE_DIR "/tests/kernels/distill_losses_torch_ref.py " + in_path + " 2>&1";
  std::string output;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + cmd);
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, got);
  const int status = pclose(pipe);
  std::filesystem::remove(in_path);
  // A missing torch is a failure, never a skip: this test pins our numbers to PyTorch's.
  if (status != 0) ADD_FAILURE() << "the PyTorch reference failed (python3-torch for /usr/bin/python3?):\n" << output;
  return status == 0 ? nlohmann::json::parse(output) : nlohmann::json();
}

const Device kDevices[] = {Device::CPU, Device::CUDA};

TEST(DistillLossesTorch, DKDMatchesMdistillerOnCpuAndEmulatedCuda) {
  struct Case {
    int64_t rows, C;
    ops::DKDLossParams p;
    std::vector<float> s, t;
    std::vector<int32_t> y;
  };
  std::vector<Case> cases;
  ops::DKDLossParams defaults;  // mdistiller: T 4, alpha 1, beta 8, CE weight 1
  ops::DKDLossParams warm = defaults;
  warm.warmup = distill::dkd_warmup_factor(3);  // epoch 3 of the 20-epoch warm-up
  ops::DKDLossParams other{2.0f, 0.5f, 2.0f, 0.3f, 1.0f};
  uint32_t seed = 40;
  for (auto [rows, C, p, range] : std::vector<std::tuple<int64_t, int64_t, ops::DKDLossParams, float>>{
           {1, 2, defaults, 3.0f},   {31, 33, defaults, 6.0f}, {33, 10, warm, 5.0f},
           {5, 1000, defaults, 8.0f}, {3, 100, other, 20.0f}, {4, 7, defaults, 0.01f}}) {
    seed += 3;
    const size_t n = static_cast<size_t>(rows * C);
    cases.push_back({rows, C, p, test::random_vector(n, seed, -range, range),
                     test::random_vector(n, seed + 1, -range, range),
                     test::random_labels(static_cast<size_t>(rows), static_cast<int32_t>(C), seed + 2)});
  }
  nlohmann::json in = nlohmann::json::array();
  for (const Case& c : cases)
    in.push_back({{"kind", "dkd"}, {"student", nested(c.s, {c.rows, c.C})}, {"teacher", nested(c.t, {c.rows, c.C})},
                  {"labels", c.y}, {"T", c.p.temperature}, {"alpha", c.p.alpha}, {"beta", c.p.beta},
                  {"ce_weight", c.p.ce_weight}, {"warmup", c.p.warmup}});
  const nlohmann::json res = run_torch(in);
  ASSERT_EQ(res["cases"].size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    const nlohmann::json& r = res["cases"][k];
    for (Device dev : kDevices) {
      const std::string what = "dkd " + std::to_string(c.rows) + "x" + std::to_string(c.C) + " " + device_name(dev);
      Tensor s = Tensor::from_vector(c.s, {c.rows, c.C}, dev).set_requires_grad(true);
      ops::DKDLossOutput o =
          ops::dkd_loss(s, Tensor::from_vector(c.t, {c.rows, c.C}, dev), Tensor::from_labels(c.y, dev), c.p);
      o.loss.backward();
      expect_close(what + " loss", o.loss.to_vector(), {r["loss"].get<float>()});
      const std::vector<float> parts = o.parts.to_vector();
      expect_close(what + " tckd", {parts[0]}, {r["tckd"].get<float>()}, 1e-2);
      expect_close(what + " nckd", {parts[1]}, {r["nckd"].get<float>()}, 1e-2);
      expect_close(what + " ce", {parts[2]}, {r["ce"].get<float>()}, 1e-2);
      expect_close(what + " dstudent", s.grad().to_vector(), floats(r["grad"]));
    }
  }
}

TEST(DistillLossesTorch, ATMatchesRepDistillerOnCpuAndEmulatedCuda) {
  // Each case: pairs of (student shape, teacher shape); channels differ, spatial sizes equal or 2x apart.
  const std::vector<std::vector<std::pair<Shape, Shape>>> cases = {
      {{{3, 5, 8, 8}, {3, 7, 8, 8}}},
      {{{2, 16, 16, 16}, {2, 32, 8, 8}}, {{2, 31, 8, 8}, {2, 33, 8, 8}}, {{2, 64, 4, 4}, {2, 12, 8, 8}}},
      {{{1, 33, 3, 3}, {1, 31, 3, 3}}, {{1, 1, 1, 1}, {1, 3, 1, 1}}},
      {{{4, 12, 32, 32}, {4, 16, 32, 32}}}};
  nlohmann::json in = nlohmann::json::array();
  std::vector<std::vector<std::pair<std::vector<float>, std::vector<float>>>> data;
  uint32_t seed = 70;
  for (const auto& pairs : cases) {
    nlohmann::json js = nlohmann::json::array(), jt = nlohmann::json::array();
    data.emplace_back();
    for (const auto& [ss, ts] : pairs) {
      auto s = test::random_vector(static_cast<size_t>(shape_numel(ss)), ++seed, -2.0f, 2.0f);
      auto t = test::random_vector(static_cast<size_t>(shape_numel(ts)), ++seed, -2.0f, 2.0f);
      js.push_back(nested(s, ss));
      jt.push_back(nested(t, ts));
      data.back().emplace_back(s, t);
    }
    in.push_back({{"kind", "at"}, {"student", js}, {"teacher", jt}, {"beta", distill::kATBeta}});
  }
  const nlohmann::json res = run_torch(in);
  ASSERT_EQ(res["cases"].size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    for (Device dev : kDevices) {
      const std::string what = "at case " + std::to_string(k) + " " + device_name(dev);
      std::vector<Tensor> s, t;
      for (size_t i = 0; i < cases[k].size(); ++i) {
        s.push_back(Tensor::from_vector(data[k][i].first, cases[k][i].first, dev).set_requires_grad(true));
        t.push_back(Tensor::from_vector(data[k][i].second, cases[k][i].second, dev));
      }
      Tensor loss = distill::at_loss_sum(s, t);
      loss.backward();
      const nlohmann::json& r = res["cases"][k];
      expect_close(what + " loss", loss.to_vector(), {r["loss"].get<float>()});
      for (size_t i = 0; i < s.size(); ++i)
        expect_close(what + " dstudent " + std::to_string(i), s[i].grad().to_vector(), floats(r["grads"][i]));
    }
  }
}

TEST(DistillLossesTorch, FitNetHintMatchesRepDistillerOnCpuAndEmulatedCuda) {
  struct Case {
    Shape s, t;
    int64_t stride, pad;
  };
  // 2x larger student map (3x3 stride 2), a (1+Hs-Ht) kernel, and equal sizes (1x1).
  const std::vector<Case> cases = {
      {{4, 8, 8, 8}, {4, 16, 4, 4}, 2, 1}, {{3, 5, 6, 6}, {3, 7, 4, 4}, 1, 0}, {{2, 31, 5, 5}, {2, 33, 5, 5}, 1, 0}};
  nlohmann::json in = nlohmann::json::array();
  std::vector<std::shared_ptr<distill::ConvReg>> regs;
  std::vector<std::pair<std::vector<float>, std::vector<float>>> data;
  uint32_t seed = 90;
  for (const Case& c : cases) {
    auto reg = std::make_shared<distill::ConvReg>(c.s, c.t, ++seed);
    // Non-trivial BN affine parameters (BatchNorm2d starts at 1 / 0).
    std::map<std::string, Tensor> params;
    for (auto& [n, p] : reg->named_parameters()) params[n] = p;
    const int64_t Ct = c.t[1];
    params["bn.weight"].copy_from(Tensor::from_vector(test::random_vector(Ct, ++seed, 0.5f, 1.5f), {Ct}));
    params["bn.bias"].copy_from(Tensor::from_vector(test::random_vector(Ct, ++seed, -0.2f, 0.2f), {Ct}));
    auto s = test::random_vector(static_cast<size_t>(shape_numel(c.s)), ++seed, -2.0f, 2.0f);
    auto t = test::random_vector(static_cast<size_t>(shape_numel(c.t)), ++seed, 0.0f, 1.0f);
    const Tensor& w = params["conv.weight"];
    in.push_back({{"kind", "fitnet"}, {"student", nested(s, c.s)}, {"teacher", nested(t, c.t)},
                  {"conv_weight", nested(w.to_vector(), w.shape())},
                  {"conv_bias", params["conv.bias"].to_vector()}, {"bn_weight", params["bn.weight"].to_vector()},
                  {"bn_bias", params["bn.bias"].to_vector()}, {"stride", c.stride}, {"pad", c.pad}});
    regs.push_back(reg);
    data.emplace_back(s, t);
  }
  const nlohmann::json res = run_torch(in);
  ASSERT_EQ(res["cases"].size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    for (Device dev : kDevices) {
      const std::string what = "fitnet case " + std::to_string(k) + " " + device_name(dev);
      distill::ConvReg& reg = *regs[k];
      reg.to(dev);
      reg.zero_grad();
      reg.train();
      Tensor s = Tensor::from_vector(data[k].first, cases[k].s, dev).set_requires_grad(true);
      Tensor loss = distill::fitnet_hint_loss(reg, s, Tensor::from_vector(data[k].second, cases[k].t, dev));
      loss.backward();
      const nlohmann::json& r = res["cases"][k];
      expect_close(what + " loss", loss.to_vector(), {r["loss"].get<float>()});
      expect_close(what + " dstudent", s.grad().to_vector(), floats(r["grad"]));
      for (auto& [n, p] : reg.named_parameters())
        if (n == "conv.weight") expect_close(what + " dconv.weight", p.grad().to_plain().to_vector(),
                                             floats(r["conv_grad"]));
    }
  }
}

}  // namespace
