// Runs tests/kernels/relational_losses_torch_ref.py (the PyTorch references of RepDistiller's relational losses) on
// a list of cases, for the op tests and the objective tests. A missing torch is a failure, never a skip.
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/common/test_util.h"

namespace islkd::test {

inline nlohmann::json run_relational_torch(const nlohmann::json& cases) {
  const std::string in_path = (std::filesystem::temp_directory_path() /
                               ("islkd_relational_torch_" + std::to_string(getpid()) + ".json"))
                                  .string();
  {
    std::ofstream f(in_path);
    f << cases.dump();
  }
  const auto [status, output] = run_command("/usr/bin/python3 " ISLKD_SOURCE_DIR
                                            "/tests/kernels/relational_losses_torch_ref.py " + in_path);
  std::filesystem::remove(in_path);
  if (status != 0) ADD_FAILURE() << "the PyTorch reference failed (python3-torch for /usr/bin/python3?):\n" << output;
  return status == 0 ? nlohmann::json::parse(output)["cases"] : nlohmann::json::array();
}

inline std::vector<float> json_floats(const nlohmann::json& j) {
  std::vector<float> v;
  for (double x : j) v.push_back(static_cast<float>(x));
  return v;
}

}  // namespace islkd::test
