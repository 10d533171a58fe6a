// Checkpoints: a Module's state round-trips as a PyTorch-style state dict (I64 num_batches_tracked included),
// extras and metadata come back to the caller, and strict loading rejects missing/extra/mis-shaped tensors.
#include "engine/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <filesystem>

#include "engine/ops.h"
#include "kernels/common/regular_file.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

namespace islkd {
namespace {

namespace st = safetensors;

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()))).string();
}

// A resnet8 after one training forward: BN statistics and counters differ from their initial values.
std::shared_ptr<Module> trained_resnet8(uint64_t seed) {
  auto m = models::create_model("resnet8", {10, 3, seed});
  m->train();
  NoGradGuard no_grad;
  m->forward(test::random_tensor({4, 3, 32, 32}, 11));
  return m;
}

std::string read_all(const std::string& path) {
  std::vector<uint8_t> b = read_regular_file(path, uint64_t(1) << 30, "test file");
  return std::string(b.begin(), b.end());
}

void expect_error_containing(const std::function<void()>& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << p << " not in " << e.what();
  }
}

TEST(CheckpointRoundTrip, ParametersBuffersCountersExtrasAndMetadataSurvive) {
  auto a = trained_resnet8(1);
  const std::string path = temp_path("islkd_ckpt.safetensors");
  std::vector<st::Entry> extra = {st::Entry::from_f32("optimizer.momentum.fc.weight", {2}, {0.5f, -1.0f}),
                                  st::Entry::from_i64("curriculum.order", {3}, {2, 0, 1})};
  checkpoint::save(path, *a, extra, {{"epoch", "3"}, {"rng", "123 456"}});

  auto b = models::create_model("resnet8", {10, 3, 2});
  checkpoint::Contents c = checkpoint::load(path, *b);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].second.to_vector(), pb[i].second.to_vector()) << pa[i].first;
  auto ba = a->named_buffers(), bb = b->named_buffers();
  for (size_t i = 0; i < ba.size(); ++i) EXPECT_EQ(ba[i].second.to_vector(), bb[i].second.to_vector()) << ba[i].first;
  for (auto& [n, cnt] : b->named_counters()) EXPECT_EQ(*cnt, 1) << n;
  ASSERT_EQ(c.extra.size(), 2u);
  EXPECT_EQ(c.extra[0].name, "optimizer.momentum.fc.weight");
  EXPECT_EQ(c.extra[0].f32, (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(c.extra[1].i64, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(c.metadata.at("epoch"), "3");
  EXPECT_EQ(c.metadata.at("rng"), "123 456");
  std::remove(path.c_str());
}

TEST(CheckpointRoundTrip, CountersAreWrittenAsInt64ScalarsLikePyTorch) {
  auto a = trained_resnet8(1);
  const std::vector<uint8_t> bytes = [&] {
    st::File f;
    for (auto& e : checkpoint::state_dict(*a)) f.add(e);
    return st::serialize(f);
  }();
  st::File f = st::parse(bytes.data(), bytes.size(), "mem");
  const st::Entry* e = f.find("layer1.0.bn2.num_batches_tracked");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, st::DType::I64);
  EXPECT_TRUE(e->shape.empty());
  EXPECT_EQ(e->i64, (std::vector<int64_t>{1}));
  EXPECT_EQ(f.find("fc.weight")->dtype, st::DType::F32);
  EXPECT_EQ(f.entries.size(), 56u);  // len(resnet8.state_dict()) in PyTorch
}

// State dict of resnet8 with one entry changed by `edit`.
st::File edited_state(const std::function<void(st::File&)>& edit) {
  auto a = trained_resnet8(1);
  st::File f;
  for (auto& e : checkpoint::state_dict(*a)) f.add(e);
  edit(f);
  return f;
}

TEST(CheckpointLoad, MissingNameIsAnErrorInStrictMode) {
  st::File f = edited_state([](st::File& f) {
    f.entries.erase(std::remove_if(f.entries.begin(), f.entries.end(),
                                   [](const st::Entry& e) { return e.name == "layer1.0.bn1.running_var"; }),
                    f.entries.end());
  });
  auto m = models::create_model("resnet8", {10, 3, 0});
  expect_error_containing([&] { checkpoint::load_from(f, *m, true, "w.safetensors"); },
                          {"w.safetensors", "layer1.0.bn1.running_var", "missing"});
}

TEST(CheckpointLoad, ExtraNameIsAnErrorInStrictMode) {
  st::File f = edited_state([](st::File& f) { f.add(st::Entry::from_f32("layer4.0.conv1.weight", {1}, {0.f})); });
  auto m = models::create_model("resnet8", {10, 3, 0});
  expect_error_containing([&] { checkpoint::load_from(f, *m, true, "w.safetensors"); },
                          {"layer4.0.conv1.weight", "not part of the model"});
}

TEST(CheckpointLoad, WrongShapeIsAnErrorNamingBothShapes) {
  auto m = models::create_model("resnet8", {100, 3, 0});  // file has 10 classes
  st::File f = edited_state([](st::File&) {});
  expect_error_containing([&] { checkpoint::load_from(f, *m, true, "w.safetensors"); },
                          {"fc.weight", "[10, 64]", "[100, 64]"});
}

TEST(CheckpointLoad, WrongDtypeIsAnError) {
  st::File f = edited_state([](st::File& f) {
    for (auto& e : f.entries)
      if (e.name == "bn1.num_batches_tracked") e = st::Entry::from_f32(e.name, {}, {1.0f});
  });
  auto m = models::create_model("resnet8", {10, 3, 0});
  expect_error_containing([&] { checkpoint::load_from(f, *m, true, "w.safetensors"); },
                          {"bn1.num_batches_tracked", "F32", "I64"});
}

TEST(CheckpointLoad, FailedLoadLeavesTheModelUntouched) {
  st::File f = edited_state([](st::File& f) { f.add(st::Entry::from_f32("bogus", {1}, {0.f})); });
  auto m = models::create_model("resnet8", {10, 3, 5});
  const std::vector<float> before = m->named_parameters()[0].second.to_vector();
  EXPECT_THROW(checkpoint::load_from(f, *m, true, "w"), Error);
  EXPECT_EQ(m->named_parameters()[0].second.to_vector(), before);
}

TEST(CheckpointLoad, NonStrictSkipsMissingAndUnexpectedNamesButNotWrongShapes) {
  st::File f = edited_state([](st::File& f) {
    f.entries.erase(f.entries.begin());
    f.add(st::Entry::from_f32("bogus", {1}, {0.f}));
  });
  auto m = models::create_model("resnet8", {10, 3, 0});
  EXPECT_NO_THROW(checkpoint::load_from(f, *m, false, "w"));
  auto wide = models::create_model("resnet8", {100, 3, 0});
  EXPECT_THROW(checkpoint::load_from(f, *wide, false, "w"), Error);
}

TEST(CheckpointLoad, OptimizerEntriesAreReturnedNotLoadedEvenInStrictMode) {
  st::File f = edited_state([](st::File& f) { f.add(st::Entry::from_f32("optimizer.momentum.conv1.weight", {1}, {2.f})); });
  auto m = models::create_model("resnet8", {10, 3, 0});
  checkpoint::Contents c = checkpoint::load_from(f, *m, true, "w");
  ASSERT_EQ(c.extra.size(), 1u);
  EXPECT_EQ(c.extra[0].name, "optimizer.momentum.conv1.weight");
}

TEST(CheckpointSave, ExtraEntryWithoutReservedPrefixIsAnError) {
  auto m = models::create_model("resnet8", {10, 3, 0});
  expect_error_containing(
      [&] { checkpoint::save(temp_path("never.safetensors"), *m, {st::Entry::from_f32("momentum", {1}, {0.f})}); },
      {"momentum", "optimizer."});
}

// A diverged run (`train --lr 1e30`) must not write its nan parameters over the last good checkpoint.
TEST(CheckpointSave, NonFiniteParametersAreRefusedAndTheFileThereIsKept) {
  auto m = trained_resnet8(1);
  const std::string path = temp_path("good.safetensors");
  checkpoint::save(path, *m);
  const std::string before = read_all(path);
  {
    NoGradGuard no_grad;
    Tensor w = m->named_parameters()[0].second;
    std::vector<float> v = w.to_vector();
    v[3] = std::nanf("");
    v[4] = INFINITY;
    w.copy_from(Tensor::from_vector(v, w.shape()));
  }
  expect_error_containing([&] { checkpoint::save(path, *m); },
                          {"not written", "hold nan or inf", "conv1.weight", "the file already there is kept"});
  EXPECT_EQ(read_all(path), before);
  std::remove(path.c_str());
}

// A teacher or resume file with nan weights or a negative running variance is refused by name, on load.
TEST(CheckpointLoad, NonFiniteValuesOrANegativeRunningVarianceAreRefused) {
  auto m = trained_resnet8(2);
  st::File f;
  for (auto& e : checkpoint::state_dict(*m)) f.add(std::move(e));
  st::File nan_file = f, var_file = f;
  for (auto& e : nan_file.entries)
    if (e.name == "layer1.0.conv2.weight") e.f32[7] = std::nanf("");
  for (auto& e : var_file.entries)
    if (e.name == "layer1.0.bn1.running_var") e.f32[2] = -0.5f;
  auto fresh = models::create_model("resnet8", {10, 3, 0});
  expect_error_containing([&] { checkpoint::load_from(nan_file, *fresh, true, "t.safetensors"); },
                          {"t.safetensors: not loaded: 1 of", "'layer1.0.conv2.weight'"});
  expect_error_containing([&] { checkpoint::load_from(var_file, *fresh, true, "t.safetensors"); },
                          {"'layer1.0.bn1.running_var' holds the negative variance -0.5"});
  EXPECT_NO_THROW(checkpoint::load_from(f, *fresh, true, "t.safetensors"));
}

}  // namespace
}  // namespace islkd
