// train_kd's TOML config reader (apps/toml_config.h): strict keys, flags that take booleans only, and text that
// would drive Debian's toml++ into undefined behaviour refused before it is parsed.
#include "apps/toml_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace islkd::app {
namespace {

struct Fixture {
  CLI::App app{"t"};
  double lr = 0;
  std::vector<double> milestones;
  bool nesterov = false;
  Fixture() {
    app.add_option("--lr", lr);
    app.add_option("--milestones", milestones);
    app.add_flag("--nesterov", nesterov);
  }
  std::string error_of(const std::string& text) {
    try {
      TomlConfig(&app).parse(text);
    } catch (const CLI::ConfigError& e) {
      return e.what();
    }
    return "";
  }
};

TEST(TomlConfig, KeysInSectionsAndArraysBecomeOptionItems) {
  Fixture f;
  auto items = TomlConfig(&f.app).parse("[optim]\nlr = 0.5\nmilestones = [2, 3]\nnesterov = true\n");
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].name, "lr");
  EXPECT_EQ(items[0].inputs, std::vector<std::string>{"0.5"});
  EXPECT_EQ(items[1].inputs, (std::vector<std::string>{"2", "3"}));
  EXPECT_EQ(items[2].inputs, std::vector<std::string>{"true"});
}

TEST(TomlConfig, AFlagTakesABooleanOnly) {
  Fixture f;
  EXPECT_NE(f.error_of("nesterov = \"yes\"\n").find("'nesterov' is a flag: give true or false, not a string"),
            std::string::npos);
  EXPECT_NE(f.error_of("nesterov = 7\n").find("not an integer"), std::string::npos);
  EXPECT_EQ(f.error_of("nesterov = false\n"), "");
}

TEST(TomlConfig, AnUnknownKeyIsNamed) {
  Fixture f;
  EXPECT_NE(f.error_of("bogus_key = 1\n").find("unknown key 'bogus_key' (no option --bogus-key"), std::string::npos);
}

TEST(TomlConfig, NonAsciiOutsideStringsIsRefusedBeforeTomlPlusPlusSeesIt) {
  Fixture f;
  // fuzz_toml's input: U+0424 inside an inline table's whitespace position.
  EXPECT_NE(f.error_of("a = { b =\xd0\xa4\xdf\x97quy\" = 20\n").find("non-ASCII byte at line 1, column 10"),
            std::string::npos);
  EXPECT_EQ(f.error_of("lr = 0.5 # \xd0\xa4 comment\nmilestones = [1] # \xc3\xa9\n"), "");
  Fixture g;
  EXPECT_EQ(TomlConfig(nullptr).parse("s = \"\xd0\xa4\\\"\"\nt = '\xc3\xa9'\nu = \"\"\"\n\xc3\xa9\n\"\"\"\n").size(), 3u);
}

}  // namespace
}  // namespace islkd::app
