// The Trainer with an objective that owns trainable parameters (as FitNet's regressor will): they are optimized
// with the student, written to the checkpoint as objective.<name> with their momentum, and a resumed run ends in
// the same checkpoint bytes as an uninterrupted one. Evaluation leaves a model in the mode it found it in.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "data/dataset.h"
#include "engine/checkpoint.h"
#include "engine/distill/objective.h"
#include "engine/lr_schedule.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "engine/train/trainer.h"
#include "models/registry.h"

using namespace islkd;

namespace {

constexpr int64_t kClasses = 3;

// Cross-entropy of the logits through a learned C x C head (identity at the start).
class HeadCe : public distill::Objective {
 public:
  HeadCe() {
    std::vector<float> eye(kClasses * kClasses, 0.0f);
    for (int64_t i = 0; i < kClasses; ++i) eye[static_cast<size_t>(i * kClasses + i)] = 1.0f;
    w_ = Tensor::from_vector(eye, {kClasses, kClasses});
    b_ = Tensor::from_vector(std::vector<float>(kClasses, 0.0f), {kClasses});
    w_.set_requires_grad(true), b_.set_requires_grad(true);
  }
  std::string name() const override { return "head_ce"; }
  nlohmann::json config() const override { return nlohmann::json::object(); }
  std::vector<std::pair<std::string, Tensor>> parameters() const override {
    return {{"head.weight", w_}, {"head.bias", b_}};
  }
  Tensor loss(const distill::ObjectiveInputs& in) override {
    return ops::cross_entropy(ops::linear(in.student_logits, w_, b_), in.labels);
  }

 private:
  Tensor w_, b_;
};

std::shared_ptr<const data::Dataset> tiny_dataset() {
  const int64_t n = 40, hw = 16;
  std::vector<uint8_t> px(static_cast<size_t>(n * hw * hw));
  std::vector<int32_t> labels(static_cast<size_t>(n));
  uint64_t s = 11;
  for (auto& p : px) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p = static_cast<uint8_t>(s >> 56);
  }
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<int32_t>(i % kClasses);
  data::InMemoryDataset::Info info;
  info.class_names = {"a", "b", "c"};
  info.norm = data::standard_normalization("mnist");
  info.source = "tiny";
  return std::make_shared<data::InMemoryDataset>(px, labels, 1, static_cast<int>(hw), static_cast<int>(hw), info);
}

std::string run(int64_t epochs, const std::string& out, const std::string& resume = "") {
  auto ds = tiny_dataset();
  train::TrainerParts p;
  models::ModelConfig mc;
  mc.num_classes = kClasses, mc.in_channels = 1, mc.seed = 4;
  p.student = models::create_model("resnet8", mc);
  p.objective = std::make_unique<HeadCe>();
  p.make_schedule = [](int64_t e) {
    ScheduleSpec spec;
    spec.kind = "constant", spec.base_lr = 0.05, spec.epochs = e;
    return make_schedule(spec);
  };
  p.sgd.lr = 0.05f, p.sgd.momentum = 0.9f, p.sgd.weight_decay = 5e-4f;
  p.train = ds, p.test = ds;
  p.n_train = ds->size(), p.n_test = ds->size(), p.num_classes = kClasses;
  p.train_transform = data::eval_transform(*ds);
  p.loader_options.batch_size = 16, p.loader_options.seed = 3, p.loader_options.workers = 1;
  train::TrainerConfig c;
  c.format = "islkd.trainer_test.v1";
  c.label = "head_ce";
  c.epochs = epochs;
  c.out = out;
  c.resume = resume;
  c.run_config = {{"objective", "head_ce"}};
  c.resume_keys = {"objective"};
  train::Trainer t(std::move(c), std::move(p));
  const std::atomic<bool> no{false};
  EXPECT_FALSE(t.run(no).interrupted);
  std::ifstream f(out, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(Trainer, ObjectiveParametersAreTrainedCheckpointedAndResumedBitForBit) {
  const std::string dir = ::testing::TempDir() + "/islkd_trainer_" + std::to_string(::getpid());
  const std::string whole = dir + "_whole.safetensors", first = dir + "_first.safetensors",
                    resumed = dir + "_resumed.safetensors";
  const std::string a = run(2, whole);
  run(1, first);
  const std::string b = run(2, resumed, first);
  EXPECT_EQ(a, b) << "a run resumed after epoch 1 writes the uninterrupted run's bytes";

  safetensors::File f = safetensors::load(whole);
  std::map<std::string, safetensors::Entry> e;
  for (auto& x : f.entries) e[x.name] = x;
  ASSERT_TRUE(e.count("objective.head.weight"));
  ASSERT_TRUE(e.count("optimizer.momentum.objective.head.weight"));
  const std::vector<float>& w = e.at("objective.head.weight").f32;
  ASSERT_EQ(w.size(), size_t(kClasses * kClasses));
  float off_identity = 0.0f;
  for (int64_t i = 0; i < kClasses * kClasses; ++i)
    off_identity = std::max(off_identity, std::abs(w[static_cast<size_t>(i)] - (i % (kClasses + 1) == 0 ? 1.0f : 0.0f)));
  EXPECT_GT(off_identity, 0.0f) << "the objective's head was trained";
  for (const char* p : {whole.c_str(), first.c_str(), resumed.c_str()}) std::remove(p);
}

TEST(Trainer, EvaluationLeavesAModelInTheModeItFoundItIn) {
  auto ds = tiny_dataset();
  models::ModelConfig mc;
  mc.num_classes = kClasses, mc.in_channels = 1, mc.seed = 4;
  auto m = models::create_model("resnet8", mc);
  data::LoaderOptions lo;
  lo.batch_size = 16, lo.workers = 1;
  data::Loader l = train::sequential_loader(ds, ds->size(), lo);
  m->eval();
  train::evaluate(*m, l, Device::CPU);
  EXPECT_FALSE(m->is_training());
  m->train();
  train::evaluate(*m, l, Device::CPU);
  EXPECT_TRUE(m->is_training());
}
