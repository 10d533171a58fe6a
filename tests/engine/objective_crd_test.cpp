// The `crd` objective: RepDistiller's defaults (CE 1, KD 0, beta 0.8, feat_dim 128, nce_k 16384, nce_t 0.07,
// nce_m 0.5), its settings and errors, the Embed parameters and memory buffers it builds at bind, its seeded negatives
// ("exact" mode: other classes only, without replacement, a pure function of seed, epoch, step and row), and two
// consecutive steps against the PyTorch reference of RepDistiller's CRDLoss / ContrastMemory / ContrastLoss / Embed
// (tests/kernels/relational_losses_torch_ref.py) fed the same weights, memories and contrast indices: loss and the
// gradients w.r.t. the logits, the student's feature and the Embed parameters within 1e-4 relative, the memories
// after each update and Z within 1e-5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/autograd.h"
#include "engine/distill/crd_negatives.h"
#include "engine/distill/objective.h"
#include "kernels/common/error.h"
#include "models/registry.h"
#include "tests/common/relational_torch.h"

using namespace islkd;

namespace {

std::shared_ptr<Module> model(const std::string& name, uint64_t seed) {
  models::ModelConfig c;
  c.num_classes = 5, c.in_channels = 1, c.seed = seed;
  return models::create_model(name, c);
}

std::vector<int32_t> round_robin_labels(int64_t n, int32_t classes) {
  std::vector<int32_t> l;
  for (int64_t i = 0; i < n; ++i) l.push_back(static_cast<int32_t>((i * 7) % classes));
  return l;
}

double worst_abs(const std::vector<float>& got, const std::vector<float>& want) {
  double w = 0;
  for (size_t i = 0; i < got.size(); ++i) w = std::max(w, std::fabs(double(got[i]) - double(want[i])));
  return w;
}

}  // namespace

TEST(ObjectiveCRD, DefaultsAreRepDistillersAndBindBuildsEmbedsAndMemories) {
  auto o = distill::make_objective("crd");
  EXPECT_EQ(o->config(), (nlohmann::json{{"beta", 0.8f}, {"ce_weight", 1.0}, {"kd_weight", 0.0}, {"feat_dim", 128},
                                         {"nce_k", 16384}, {"nce_t", 0.07f}, {"nce_m", 0.5}}));
  EXPECT_TRUE(o->needs().needs_teacher());
  EXPECT_TRUE(o->needs().instances);
  EXPECT_FALSE(o->needs().teacher_logits);
  EXPECT_TRUE(o->parameters().empty() && o->buffers().empty());
  EXPECT_NE(test::error_of([] { distill::make_objective("crd", {{"gamma", 1.0}}); }).find("expected beta, ce_weight"),
            std::string::npos);
  EXPECT_THROW(distill::make_objective("crd", {{"nce_k", 0}}), Error);
  EXPECT_THROW(distill::make_objective("crd", {{"nce_k", 2.5}}), Error);
  EXPECT_THROW(distill::make_objective("crd", {{"nce_t", 0.0}}), Error);
  EXPECT_THROW(distill::make_objective("crd", {{"nce_m", 1.5}}), Error);
  EXPECT_TRUE(distill::make_objective("crd", {{"kd_weight", 0.5}})->needs().teacher_logits);
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  const auto labels = round_robin_labels(100, 5);
  // The default nce_k needs more instances than this set has: refused with the way out.
  const std::string small = test::error_of([&] { o->bind({student.get(), teacher.get(), {1, 16, 16}, 0, &labels}); });
  EXPECT_NE(small.find("pass a smaller nce_k"), std::string::npos) << small;
  EXPECT_NE(test::error_of([&] { o->bind({student.get(), teacher.get(), {1, 16, 16}, 0}); }).find("labels"),
            std::string::npos);
  o = distill::make_objective("crd", {{"nce_k", 30}});
  o->bind({student.get(), teacher.get(), {1, 16, 16}, 0, &labels});
  EXPECT_EQ(o->needs().student_features, (std::vector<std::string>{"feat4"}));
  const auto ps = o->parameters();
  ASSERT_EQ(ps.size(), 4u);
  EXPECT_EQ(ps[0].first, "crd.embed_s.linear.weight");
  EXPECT_EQ(ps[1].first, "crd.embed_s.linear.bias");
  EXPECT_EQ(ps[2].first, "crd.embed_t.linear.weight");
  EXPECT_EQ(ps[0].second.shape(), (Shape{128, 64}));   // resnet8's pooled vector: 64
  EXPECT_EQ(ps[2].second.shape(), (Shape{128, 256}));  // resnet8x4's: 256
  const auto bs = o->buffers();
  ASSERT_EQ(bs.size(), 4u);
  EXPECT_EQ(bs[0].first, "crd.contrast.memory_v1");
  EXPECT_EQ(bs[0].second.shape(), (Shape{100, 128}));
  EXPECT_EQ(bs[2].first, "crd.contrast.z_v1");
  EXPECT_EQ(bs[2].second.item(), -1.0f);
  const float stdv = static_cast<float>(1.0 / std::sqrt(128.0 / 3.0));
  for (float v : bs[1].second.to_vector()) ASSERT_TRUE(v >= -stdv && v <= stdv);
}

TEST(ObjectiveCRD, NegativesAreOtherClassesWithoutReplacementAndAPureFunctionOfSeedEpochStepRow) {
  const auto labels = round_robin_labels(103, 4);
  distill::CRDNegatives neg(labels, 60, 11);
  const std::vector<int64_t> batch = {5, 0, 102, 77};
  const auto rows = neg.rows(2, 9, batch);
  ASSERT_EQ(rows.size(), 4u * 61u);
  for (size_t b = 0; b < batch.size(); ++b) {
    EXPECT_EQ(rows[b * 61], batch[b]);
    std::set<int32_t> seen;
    for (int k = 1; k <= 60; ++k) {
      const int32_t i = rows[b * 61 + k];
      ASSERT_TRUE(i >= 0 && i < 103);
      EXPECT_NE(labels[i], labels[batch[b]]) << "a negative of the anchor's class";
      seen.insert(i);
    }
    EXPECT_EQ(seen.size(), 60u) << "drawn without replacement";
  }
  EXPECT_EQ(neg.rows(2, 9, batch), rows);  // the swaps were undone: the same rows again
  EXPECT_EQ(distill::CRDNegatives(labels, 60, 11).rows(2, 9, batch), rows);  // a fresh sampler (a resumed run)
  EXPECT_NE(neg.rows(2, 10, batch), rows);
  EXPECT_NE(neg.rows(3, 9, batch), rows);
  EXPECT_NE(distill::CRDNegatives(labels, 60, 12).rows(2, 9, batch), rows);
  // Fewer than k instances of other classes (77 here): with replacement, as upstream's np.random.choice.
  distill::CRDNegatives many(labels, 90, 11);
  const auto r = many.rows(0, 0, {1});
  for (int k = 1; k <= 90; ++k) EXPECT_NE(labels[r[k]], labels[1]);
  // Uniform over the pool: every other-class instance shows up over many rows.
  std::set<int32_t> all;
  for (int64_t s = 0; s < 20; ++s)
    for (int32_t i : neg.rows(0, s, {4})) all.insert(i);
  int64_t others = 0;
  for (int32_t l : labels) others += l != labels[4];
  EXPECT_EQ(static_cast<int64_t>(all.size()), others + 1);
  EXPECT_THROW(distill::CRDNegatives(std::vector<int32_t>(10, 2), 3, 0), Error);
}

TEST(ObjectiveCRD, TwoStepsMatchRepDistillersCrdLossInPyTorch) {
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  const int64_t N = 50, K = 20, B = 4;
  const auto labels = round_robin_labels(N, 5);
  auto o = distill::make_objective("crd", {{"nce_k", K}});
  o->bind({student.get(), teacher.get(), {1, 16, 16}, 3, &labels});
  const std::string sname = o->needs().student_features[0], tname = o->needs().teacher_features[0];
  auto params = o->parameters();
  const auto buffers = o->buffers();
  // The embeds away from their initial values so every gradient term is seen.
  {
    NoGradGuard no_grad;
    uint32_t seed = 30;
    for (auto& [n, t] : params) {
      std::vector<float> v = t.to_vector();
      const auto r = test::random_vector(v.size(), ++seed, -0.05f, 0.05f);
      for (size_t i = 0; i < v.size(); ++i) v[i] += r[i];
      t.copy_from(Tensor::from_vector(v, t.shape()));
    }
  }
  nlohmann::json c = {{"kind", "crd_objective"}, {"ce_weight", 1.0}, {"beta", 0.8}, {"nce_t", 0.07},
                      {"nce_m", 0.5},           {"steps", nlohmann::json::array()}};
  const char* pkeys[] = {"ws", "bs", "wt", "bt"};
  for (int k = 0; k < 4; ++k) {
    c[pkeys[k]] = params[k].second.to_vector();
    c[std::string(pkeys[k]) + "_shape"] = params[k].second.shape();
  }
  c["memory_v1"] = buffers[0].second.to_vector(), c["memory_v1_shape"] = buffers[0].second.shape();
  c["memory_v2"] = buffers[1].second.to_vector(), c["memory_v2_shape"] = buffers[1].second.shape();
  const std::vector<std::vector<int64_t>> batches = {{3, 17, 42, 8}, {5, 0, 33, 17}};
  distill::CRDNegatives negatives(labels, K, 3);  // the objective's own draws (same labels, nce_k, seed)
  struct Got {
    float loss;
    std::vector<float> grad_logits, grad_fs, memory_v1, memory_v2;
    std::vector<std::vector<float>> grad_params;
    float z_v1, z_v2;
  };
  std::vector<Got> got;
  for (size_t s = 0; s < batches.size(); ++s) {
    FeaturesOutput sf, tf;
    {
      NoGradGuard no_grad;
      student->train(), teacher->eval();
      const Tensor x = Tensor::from_vector(test::random_vector(B * 256, 9 + s, -2, 2), {B, 1, 16, 16});
      sf = student->forward_features(x, {{sname}, false});
      tf = teacher->forward_features(x, {{tname}, false});
    }
    const Tensor f0 = sf.features.at(sname).to_plain(), t = tf.features.at(tname).to_plain();
    Tensor fs = Tensor::from_vector(f0.to_vector(), f0.shape()).set_requires_grad(true);
    const std::vector<int32_t> y = {0, 3, 2, 4};
    const auto logits = test::random_vector(B * 5, 5 + s, -3, 3);
    Tensor lg = Tensor::from_vector(logits, {B, 5}).set_requires_grad(true);
    distill::ObjectiveInputs in;
    in.student_features[sname] = fs, in.teacher_features[tname] = t;
    in.student_logits = lg, in.labels = Tensor::from_labels(y);
    in.epoch = 1, in.step = static_cast<int64_t>(s), in.indices = batches[s];
    for (auto& [n, p] : params) p.zero_grad();
    Tensor loss = o->loss(in);
    loss.backward();
    Got g{loss.item(), lg.grad().to_vector(), fs.grad().to_vector(), buffers[0].second.to_vector(),
          buffers[1].second.to_vector(), {}, buffers[2].second.item(), buffers[3].second.item()};
    for (auto& [n, p] : params) g.grad_params.push_back(p.grad().to_vector());
    got.push_back(g);
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t i = 0; i < B; ++i)
      rows.push_back(std::vector<float>(logits.begin() + i * 5, logits.begin() + i * 5 + 5));
    std::vector<int32_t> yi(batches[s].begin(), batches[s].end());
    c["steps"].push_back({{"fs", f0.to_vector()}, {"fs_shape", f0.shape()}, {"ft", t.to_vector()},
                          {"ft_shape", t.shape()}, {"logits", rows}, {"labels", y}, {"y", yi},
                          {"idx", negatives.rows(1, static_cast<int64_t>(s), batches[s])}});
  }
  const nlohmann::json res = test::run_relational_torch(nlohmann::json::array({c}));
  ASSERT_EQ(res.size(), 1u);
  double worst = 0, worst_state = 0;
  for (size_t s = 0; s < got.size(); ++s) {
    SCOPED_TRACE(::testing::Message() << "step " << s + 1);
    const nlohmann::json& r = res[0]["steps"][s];
    double w = test::max_relative_error({got[s].loss}, {r["total"].get<float>()});
    w = std::max(w, test::max_relative_error(got[s].grad_logits, test::json_floats(r["grad_logits"])));
    w = std::max(w, test::max_relative_error(got[s].grad_fs, test::json_floats(r["grad_fs"])));
    for (int k = 0; k < 4; ++k) {
      const double e = test::max_relative_error(got[s].grad_params[k], test::json_floats(r["grad_params"][k]));
      EXPECT_LE(e, 1e-4) << params[k].first;
      w = std::max(w, e);
    }
    EXPECT_LE(w, 1e-4);
    worst = std::max(worst, w);
    double st = std::max(worst_abs(got[s].memory_v1, test::json_floats(r["memory_v1"])),
                         worst_abs(got[s].memory_v2, test::json_floats(r["memory_v2"])));
    st = std::max(st, std::fabs(got[s].z_v1 / r["z"][0].get<double>() - 1.0));
    st = std::max(st, std::fabs(got[s].z_v2 / r["z"][1].get<double>() - 1.0));
    EXPECT_LE(st, 1e-5);
    worst_state = std::max(worst_state, st);
  }
  EXPECT_EQ(got[0].z_v1, got[1].z_v1) << "Z is fixed on the first step";
  EXPECT_EQ(got[0].z_v2, got[1].z_v2);
  std::printf("[ torch ] objective crd, 2 steps: loss %.6f / %.6f, Z %.1f / %.1f; worst relative error over loss, "
              "logits, feature and embed gradients %.3e; worst memory / Z error %.3e\n",
              got[0].loss, got[1].loss, got[0].z_v1, got[0].z_v2, worst, worst_state);
}

TEST(ObjectiveCRD, AnInstanceRepeatedInABatchUpdatesItsMemoryRowOnceFromItsLastRow) {
  // ISL's weighted mode draws with replacement: batch {3, 7, 3} writes row 3 from its last row only, as the batch
  // {7, 3} of the same two feature rows does (the update reads only the row's old value and its own embedding).
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  const auto labels = round_robin_labels(30, 5);
  auto run = [&](const std::vector<int64_t>& batch, const std::vector<int64_t>& rows) {
    auto o = distill::make_objective("crd", {{"nce_k", 6}});
    o->bind({student.get(), teacher.get(), {1, 16, 16}, 4, &labels});
    const std::string sn = o->needs().student_features[0], tn = o->needs().teacher_features[0];
    NoGradGuard no_grad;
    student->train(), teacher->eval();
    const int64_t B = static_cast<int64_t>(rows.size());
    std::vector<float> x;
    const auto all = test::random_vector(3 * 256, 17, -2, 2);
    for (int64_t r : rows) x.insert(x.end(), all.begin() + r * 256, all.begin() + (r + 1) * 256);
    const Tensor xt = Tensor::from_vector(x, {B, 1, 16, 16});
    teacher->eval();
    distill::ObjectiveInputs in;
    // Features of each row computed alone: batch norm in train mode would mix the rows of a batch.
    std::vector<float> fs, ft;
    for (int64_t r = 0; r < B; ++r) {
      const Tensor one = Tensor::from_vector(std::vector<float>(x.begin() + r * 256, x.begin() + (r + 1) * 256),
                                             {1, 1, 16, 16});
      student->eval();
      const auto s1 = student->forward_features(one, {{sn}, false}).features.at(sn).to_plain().to_vector();
      const auto t1 = teacher->forward_features(one, {{tn}, false}).features.at(tn).to_plain().to_vector();
      fs.insert(fs.end(), s1.begin(), s1.end()), ft.insert(ft.end(), t1.begin(), t1.end());
    }
    in.student_features[sn] = Tensor::from_vector(fs, {B, static_cast<int64_t>(fs.size()) / B});
    in.teacher_features[tn] = Tensor::from_vector(ft, {B, static_cast<int64_t>(ft.size()) / B});
    in.student_logits = Tensor::from_vector(test::random_vector(B * 5, 3), {B, 5});
    in.labels = Tensor::from_labels(std::vector<int32_t>(static_cast<size_t>(B), 1));
    in.indices = batch;
    o->loss(in);
    return std::make_pair(o->buffers()[0].second.to_vector(), o->buffers()[1].second.to_vector());
  };
  const auto dup = run({3, 7, 3}, {0, 1, 2});
  const auto once = run({7, 3}, {1, 2});
  EXPECT_EQ(dup.first, once.first);
  EXPECT_EQ(dup.second, once.second);
}
