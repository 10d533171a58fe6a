// The Trainer's metrics gain the top-5 accuracy and the best epoch beside the last, and apps/plot_metrics.py turns
// the metrics of short train_kd runs into PNGs that are really plots (size, many colours).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "data/formats.h"
#include "engine/tensor.h"
#include "engine/train/run_log.h"
#include "tests/common/test_util.h"

#ifndef ISLKD_PYTHON
#define ISLKD_PYTHON "/usr/bin/python3"
#endif

namespace islkd {
namespace {

TEST(RunLogTopK, TopOneIsTheArgmaxAndTiesRankByClassIndex) {
  // rows: label 2 is 2nd; label 0 ties class 1 (index 0 first, so it is 1st); label 3 is last of 6
  Tensor logits = Tensor::from_vector({1, 5, 4, 0, 0, 0,   //
                                       3, 3, 1, 0, 0, 0,   //
                                       6, 5, 4, 0.5f, 1, 2},
                                      {3, 6});
  const std::vector<int32_t> labels = {2, 0, 3};
  EXPECT_EQ(train::count_top_k(logits, labels, 1), train::count_correct(logits, labels));
  EXPECT_EQ(train::count_top_k(logits, labels, 1), 1);
  EXPECT_EQ(train::count_top_k(logits, labels, 2), 2);
  EXPECT_EQ(train::count_top_k(logits, labels, 5), 2);
  EXPECT_EQ(train::count_top_k(logits, labels, 6), 3);
}

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(PlotMetrics, ShortTrainKdRunsGiveTopFiveBestEpochAndNonTrivialPngs) {
  const std::string dir = std::string(ISLKD_BINARY_DIR) + "/tests/apps/plot_metrics";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto [rc, out] = test::run_command("cd " + std::string(ISLKD_SOURCE_DIR) + " && " + ISLKD_BINARY_DIR +
                                     "/apps/train_kd --method kd,isl --epochs 3 --limit 512 --test-limit 200 "
                                     "--eval-every 3 --threads 1 --device cpu --out " + dir + "/s.safetensors "
                                     "--metrics " + dir + "/m.jsonl");
  ASSERT_EQ(rc, 0) << out;
  for (const char* method : {"kd", "isl"}) {
    const auto lines = read_lines(dir + "/m_" + method + ".jsonl");
    double best = -1;
    int64_t best_epoch = 0;
    int epochs = 0;
    for (const auto& j : lines) {
      if (j.contains("config") || j.contains("epoch_step")) continue;
      if (j.value("final", false)) {
        EXPECT_EQ(j["best_epoch"], best_epoch) << method;
        EXPECT_EQ(j["best_test_accuracy"], best) << method;
        EXPECT_GE(j["test_top5_accuracy"].get<double>(), j["test_accuracy"].get<double>()) << method;
        continue;
      }
      ++epochs;
      const double acc = j["test_accuracy"];
      if (acc > best) best = acc, best_epoch = j["epoch"];
      EXPECT_EQ(j["best_epoch"], best_epoch) << method << " epoch " << j["epoch"];
      EXPECT_EQ(j["best_test_accuracy"], best) << method;
      EXPECT_GE(j["test_top5_accuracy"].get<double>(), acc) << method;
    }
    EXPECT_EQ(epochs, 3) << method;
    // the summary keeps "<method> <last>" and adds the best epoch beside it
    EXPECT_NE(out.find(std::string(method) + " top-5 "), std::string::npos) << out;
    char best_text[64];
    std::snprintf(best_text, sizeof best_text, "best %.2f at epoch %lld of 3", best, static_cast<long long>(best_epoch));
    EXPECT_NE(out.find(best_text), std::string::npos) << best_text << "\n" << out;
  }
  auto [rc2, out2] = test::run_command(std::string(ISLKD_PYTHON) + " " + ISLKD_SOURCE_DIR +
                                       "/apps/plot_metrics.py " + dir + "/m_kd.jsonl " + dir + "/m_isl.jsonl --out-dir " +
                                       dir + "/plots --title 'kd vs isl'");
  ASSERT_EQ(rc2, 0) << "matplotlib (python3-matplotlib) must be installed:\n" << out2;
  for (const char* png : {"accuracy.png", "loss.png"}) {
    const std::string path = dir + "/plots/" + png;
    ASSERT_TRUE(std::filesystem::exists(path)) << path << "\n" << out2;
    EXPECT_GT(std::filesystem::file_size(path), 20000u) << path;
    const std::vector<uint8_t> bytes = data::read_file_bytes(path);
    const data::RgbImage img = data::decode_image_rgb(bytes.data(), bytes.size(), path);
    EXPECT_GE(img.w, 600);
    EXPECT_GE(img.h, 400);
    std::set<uint32_t> colours;
    for (size_t i = 0; i + 2 < img.rgb.size(); i += 3)
      colours.insert(uint32_t(img.rgb[i]) << 16 | uint32_t(img.rgb[i + 1]) << 8 | img.rgb[i + 2]);
    EXPECT_GT(colours.size(), 50u) << path << ": a blank or nearly blank image";
  }
  EXPECT_NE(out2.find("kd: 3 epochs"), std::string::npos) << out2;
  EXPECT_NE(out2.find("isl: 3 epochs"), std::string::npos) << out2;
}

}  // namespace
}  // namespace islkd
