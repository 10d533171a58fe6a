// SGD: the fused update against a plain double-precision reference and against torch.optim.SGD (run through
// /usr/bin/python3; a missing torch is a failure), gradient skipping, and the state export/import for resuming.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "engine/optim.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

struct Case {
  const char* name;
  SGDConfig cfg;
};

std::vector<Case> cases() {
  auto mk = [](float lr, float m, float wd, float damp, bool nest) {
    SGDConfig c;
    c.lr = lr;
    c.momentum = m;
    c.weight_decay = wd;
    c.dampening = damp;
    c.nesterov = nest;
    return c;
  };
  return {{"plain", mk(0.1f, 0.0f, 0.0f, 0.0f, false)},
          {"weight_decay", mk(0.05f, 0.0f, 5e-4f, 0.0f, false)},
          {"momentum", mk(0.1f, 0.9f, 5e-4f, 0.0f, false)},
          {"dampening", mk(0.2f, 0.8f, 1e-2f, 0.3f, false)},
          {"nesterov", mk(0.05f, 0.9f, 5e-4f, 0.0f, true)}};
}

// Plain reference of torch.optim.SGD in double precision: one vector, `grads.size()` steps.
std::vector<float> reference_sgd(std::vector<float> p0, const std::vector<std::vector<float>>& grads,
                                 const SGDConfig& c) {
  std::vector<double> p(p0.begin(), p0.end()), buf(p0.size(), 0.0);
  for (size_t s = 0; s < grads.size(); ++s) {
    for (size_t i = 0; i < p.size(); ++i) {
      double d = grads[s][i] + static_cast<double>(c.weight_decay) * p[i];
      if (c.momentum != 0.0f) {
        buf[i] = s == 0 ? d : c.momentum * buf[i] + (1.0 - c.dampening) * d;
        d = c.nesterov ? d + c.momentum * buf[i] : buf[i];
      }
      p[i] -= static_cast<double>(c.lr) * d;
    }
  }
  return std::vector<float>(p.begin(), p.end());
}

// Runs `steps` SGD steps on two parameters with gradients drawn from `seed`; returns the final values.
std::vector<std::vector<float>> run_engine(const SGDConfig& cfg, const std::vector<Shape>& shapes,
                                           const std::vector<std::vector<float>>& init,
                                           const std::vector<std::vector<std::vector<float>>>& grads) {
  std::vector<std::pair<std::string, Tensor>> named;
  for (size_t k = 0; k < shapes.size(); ++k) {
    Tensor t = Tensor::from_vector(init[k], shapes[k]).set_requires_grad(true);
    named.emplace_back("p" + std::to_string(k), t);
  }
  SGD opt(named, cfg);
  for (size_t s = 0; s < grads[0].size(); ++s) {
    opt.zero_grad();
    for (size_t k = 0; k < shapes.size(); ++k)
      named[k].second.set_grad(Tensor::from_vector(grads[k][s], shapes[k]));
    opt.step();
  }
  std::vector<std::vector<float>> out;
  for (auto& [n, t] : named) out.push_back(t.to_vector());
  return out;
}

const std::vector<Shape> kShapes = {{7}, {3, 4, 5}};
constexpr int kSteps = 4;

std::vector<std::vector<float>> init_values() {
  std::vector<std::vector<float>> v;
  for (size_t k = 0; k < kShapes.size(); ++k)
    v.push_back(test::random_vector(static_cast<size_t>(shape_numel(kShapes[k])), 100 + static_cast<uint32_t>(k)));
  return v;
}
// grads[k][step]
std::vector<std::vector<std::vector<float>>> grad_values() {
  std::vector<std::vector<std::vector<float>>> g(kShapes.size());
  for (size_t k = 0; k < kShapes.size(); ++k)
    for (int s = 0; s < kSteps; ++s)
      g[k].push_back(test::random_vector(static_cast<size_t>(shape_numel(kShapes[k])),
                                         200 + 10 * static_cast<uint32_t>(k) + static_cast<uint32_t>(s), -2.0f, 2.0f));
  return g;
}

void write_floats(std::ofstream& f, const std::vector<float>& v) {
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
}

}  // namespace

TEST(SGD, MatchesPlainReferenceForEveryVariant) {
  auto init = init_values();
  auto grads = grad_values();
  for (const Case& c : cases()) {
    auto got = run_engine(c.cfg, kShapes, init, grads);
    for (size_t k = 0; k < kShapes.size(); ++k)
      EXPECT_TRUE(test::all_close(got[k], reference_sgd(init[k], grads[k], c.cfg), 1e-6f, 1e-5f))
          << c.name << " param " << k;
  }
}

TEST(SGD, MatchesTorchOptimSGD) {
  auto init = init_values();
  auto grads = grad_values();
  const std::string dir = ::testing::TempDir();
  const std::string in_path = dir + "/islkd_sgd_in.bin", out_path = dir + "/islkd_sgd_out.bin",
                    py_path = dir + "/islkd_sgd.py";
  {
    std::ofstream f(in_path, std::ios::binary);
    for (size_t k = 0; k < kShapes.size(); ++k) {
      write_floats(f, init[k]);
      for (int s = 0; s < kSteps; ++s) write_floats(f, grads[k][static_cast<size_t>(s)]);
    }
  }
  std::ofstream py(py_path);
  py << "import sys, numpy as np, torch\n"
        "sizes = [7, 60]; steps = " << kSteps << "\n"
        "raw = np.fromfile(sys.argv[1], dtype=np.float32); off = 0\n"
        "init, grads = [], []\n"
        "for n in sizes:\n"
        "    init.append(raw[off:off+n].copy()); off += n\n"
        "    grads.append([raw[off+s*n:off+(s+1)*n].copy() for s in range(steps)]); off += steps*n\n"
        "cfgs = [(0.1,0,0,0,False),(0.05,0,5e-4,0,False),(0.1,0.9,5e-4,0,False),(0.2,0.8,1e-2,0.3,False),"
        "(0.05,0.9,5e-4,0,True)]\n"
        "out = []\n"
        "for lr, m, wd, damp, nest in cfgs:\n"
        "    ps = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in init]\n"
        "    opt = torch.optim.SGD(ps, lr=lr, momentum=m, weight_decay=wd, dampening=damp, nesterov=nest)\n"
        "    for s in range(steps):\n"
        "        for p, g in zip(ps, grads): p.grad = torch.from_numpy(g[s].copy())\n"
        "        opt.step()\n"
        "    out += [p.detach().numpy() for p in ps]\n"
        "np.concatenate(out).astype(np.float32).tofile(sys.argv[2])\n";
  py.close();
  std::string cmd = "/usr/bin/python3 " + py_path + " " + in_path + " " + out_path;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "PyTorch reference failed (is python3-torch installed?): " << cmd;
  std::ifstream f(out_path, std::ios::binary);
  for (const Case& c : cases()) {
    auto got = run_engine(c.cfg, kShapes, init, grads);
    for (size_t k = 0; k < kShapes.size(); ++k) {
      std::vector<float> ref(got[k].size());
      f.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * sizeof(float)));
      ASSERT_TRUE(f.good()) << "short PyTorch output";
      EXPECT_TRUE(test::all_close(got[k], ref, 1e-6f, 1e-6f)) << c.name << " param " << k;
    }
  }
}

TEST(SGD, ParametersWithoutGradientAreSkippedAndGetAFreshBufferLater) {
  SGDConfig cfg;
  cfg.lr = 0.1f;
  cfg.momentum = 0.9f;
  cfg.weight_decay = 0.0f;
  Tensor a = Tensor::from_vector({1.0f, 2.0f}, {2}).set_requires_grad(true);
  Tensor b = Tensor::from_vector({3.0f}, {1}).set_requires_grad(true);
  SGD opt({{"a", a}, {"b", b}}, cfg);
  a.set_grad(Tensor::from_vector({1.0f, 1.0f}, {2}));
  opt.step();
  EXPECT_EQ(b.to_vector(), std::vector<float>({3.0f}));  // no gradient: untouched (weight decay would not apply)
  auto st = opt.state_tensors();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].first, "optimizer.momentum.a");
  // Second step: a's buffer continues (0.9 * 1 + 2), b's first update takes the gradient as its buffer.
  opt.zero_grad();
  a.set_grad(Tensor::from_vector({2.0f, 2.0f}, {2}));
  b.set_grad(Tensor::from_vector({4.0f}, {1}));
  opt.step();
  EXPECT_TRUE(test::all_close(a, {1.0f - 0.1f - 0.1f * 2.9f, 2.0f - 0.1f - 0.1f * 2.9f}, 1e-6f, 0));
  EXPECT_TRUE(test::all_close(b, {3.0f - 0.4f}, 1e-6f, 0));
  EXPECT_EQ(opt.step_count(), 2);
}

TEST(SGD, ExportedStateResumesBitIdentically) {
  SGDConfig cfg;
  cfg.lr = 0.07f;
  cfg.momentum = 0.9f;
  cfg.weight_decay = 5e-4f;
  cfg.nesterov = true;
  auto init = init_values();
  auto grads = grad_values();
  auto full = run_engine(cfg, kShapes, init, grads);

  // First half, export, then a new optimizer over fresh parameter tensors continues from the exported state.
  std::vector<std::pair<std::string, Tensor>> named;
  for (size_t k = 0; k < kShapes.size(); ++k)
    named.emplace_back("p" + std::to_string(k), Tensor::from_vector(init[k], kShapes[k]).set_requires_grad(true));
  std::map<std::string, Tensor> state;
  std::vector<std::vector<float>> mid;
  int64_t steps_done = 0;
  {
    SGD opt(named, cfg);
    for (int s = 0; s < kSteps / 2; ++s) {
      for (size_t k = 0; k < kShapes.size(); ++k)
        named[k].second.set_grad(Tensor::from_vector(grads[k][static_cast<size_t>(s)], kShapes[k]));
      opt.step();
    }
    for (auto& [n, t] : opt.state_tensors()) state[n] = t;
    for (auto& [n, t] : named) mid.push_back(t.to_vector());
    steps_done = opt.step_count();
  }
  ASSERT_EQ(state.size(), 2u);
  state["fc.weight"] = Tensor::zeros({1});  // a model entry in the same dict is not the optimizer's business
  std::vector<std::pair<std::string, Tensor>> fresh;
  for (size_t k = 0; k < kShapes.size(); ++k)
    fresh.emplace_back("p" + std::to_string(k), Tensor::from_vector(mid[k], kShapes[k]).set_requires_grad(true));
  SGD opt2(fresh, cfg);
  opt2.load_state(state, steps_done);
  for (int s = kSteps / 2; s < kSteps; ++s) {
    for (size_t k = 0; k < kShapes.size(); ++k)
      fresh[k].second.set_grad(Tensor::from_vector(grads[k][static_cast<size_t>(s)], kShapes[k]));
    opt2.step();
  }
  EXPECT_EQ(opt2.step_count(), kSteps);
  for (size_t k = 0; k < kShapes.size(); ++k) EXPECT_EQ(fresh[k].second.to_vector(), full[k]) << "param " << k;
}

TEST(SGD, LoadStateRejectsUnknownNamesAndWrongShapes) {
  Tensor a = Tensor::zeros({4}).set_requires_grad(true);
  SGD opt({{"a", a}}, SGDConfig{});
  try {
    opt.load_state({{"optimizer.momentum.zz", Tensor::zeros({4})}}, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer.momentum.zz"), std::string::npos) << e.what();
  }
  try {
    opt.load_state({{"optimizer.momentum.a", Tensor::zeros({5})}}, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[5]"), std::string::npos) << e.what();
  }
}

// Same element count, other shape: refused (it used to be loaded as a flat copy, scrambling the momentum).
TEST(SGD, LoadStateRejectsAMomentumOfTheSameSizeButAnotherShape) {
  Tensor a = Tensor::zeros({4, 3}).set_requires_grad(true);
  SGD opt({{"a", a}}, SGDConfig{});
  const std::string msg = test::error_of([&] { opt.load_state({{"optimizer.momentum.a", Tensor::zeros({3, 4})}}, 1); });
  EXPECT_NE(msg.find("has shape [3, 4], expected [4, 3]"), std::string::npos) << msg;
}

TEST(SGD, NesterovWithoutMomentumIsAnError) {
  SGDConfig cfg;
  cfg.momentum = 0.0f;
  cfg.nesterov = true;
  EXPECT_THROW(SGD({{"a", Tensor::zeros({1})}}, cfg), Error);
}

TEST(SGD, LargeTensorUpdateMatchesReference) {
  // Above the kernel's parallel threshold, so the OpenMP path is exercised.
  const int64_t n = 100003;
  SGDConfig cfg;
  cfg.lr = 0.1f;
  cfg.momentum = 0.9f;
  cfg.weight_decay = 1e-3f;
  std::vector<float> p0 = test::random_vector(static_cast<size_t>(n), 5);
  std::vector<std::vector<float>> g = {test::random_vector(static_cast<size_t>(n), 6),
                                       test::random_vector(static_cast<size_t>(n), 7)};
  auto got = run_engine(cfg, {{n}}, {p0}, {g});
  EXPECT_TRUE(test::all_close(got[0], reference_sgd(p0, g, cfg), 1e-6f, 1e-5f));
}

TEST(SGDConfig, DescribesItselfAsJson) {
  SGDConfig cfg;
  cfg.nesterov = true;
  nlohmann::json j = cfg.to_json();
  EXPECT_EQ(j.at("type"), "sgd");
  EXPECT_EQ(j.at("nesterov"), true);
  EXPECT_EQ(j.at("momentum").get<double>(), 0.9);  // the float's shortest decimal, not 0.899999976
  EXPECT_EQ(j.at("weight_decay").get<double>(), 5e-4);
}
