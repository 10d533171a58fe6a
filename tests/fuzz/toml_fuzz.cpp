// libFuzzer target: train_kd's TOML config reader (apps/toml_config.h, toml++ underneath) on arbitrary text, once
// without an app and once checked against a small CLI11 app with an option, a vector option and a flag. It must
// either return items or throw CLI::ConfigError (toml++'s parse errors and our key/type checks); never crash.
#include <cstdint>
#include <string>
#include <vector>

#include "apps/toml_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static CLI::App* app = [] {
    auto* a = new CLI::App("fuzz");
    static double lr = 0;
    static std::vector<double> milestones;
    static bool nesterov = false;
    a->add_option("--lr", lr);
    a->add_option("--milestones", milestones);
    a->add_flag("--nesterov", nesterov);
    return a;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const CLI::App* checked : {static_cast<const CLI::App*>(nullptr), static_cast<const CLI::App*>(app)}) {
    try {
      std::vector<CLI::ConfigItem> items = islkd::app::TomlConfig(checked).parse(text);
      for (const auto& it : items)
        if (it.name.empty() && checked) __builtin_trap();  // a checked item names an option of the app
    } catch (const CLI::ConfigError&) {
    }
  }
  return 0;
}
