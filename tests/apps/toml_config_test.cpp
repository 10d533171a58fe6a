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

TEST(TomlConfig, NonAsciiWhereTomlPlusPlusScansABareValueOrSkipsWhitespaceIsRefused) {
  TomlConfig c(nullptr);
  auto error_of = [&](const std::string& text) {
    try {
      c.parse(text);
      return std::string();
    } catch (const CLI::ConfigError& e) {
      return std::string(e.what());
    }
  };
  // fuzz_toml's second input (CI, 2026-12-01): a quote inside a bare value opens no string; toml++ scans on to
  // U+041C asking whether it ends the value.
  EXPECT_NE(error_of("a = { b.5= 19'9-02-27T97:32:0\xd0\x9c\n").find("outside a string"), std::string::npos);
  EXPECT_NE(error_of("a = 1.'\xd0\x9c'\n").find("outside a string"), std::string::npos);
  EXPECT_NE(error_of("a=2:(=[00{\"q\xef\xbb\xb8,b =:aa").find("outside a string"), std::string::npos);
  EXPECT_NE(error_of("a =00{\"\xd0\x9c\" = 1\n").find("outside a string"), std::string::npos);
  EXPECT_NE(error_of("a = [1, 2.\"\xd0\x9c\"]\n").find("outside a string"), std::string::npos);
  EXPECT_NE(error_of("a = \"x\"\"\xd0\x9c\"\n").find("outside a string"), std::string::npos);
  // A multi-line basic string's line-ending backslash makes toml++ test the next characters for whitespace.
  EXPECT_NE(error_of("a = \"\"\"x\\\n  \xd0\x9c\"\"\"\n").find("after a line-ending backslash"), std::string::npos);
  EXPECT_NE(error_of("a = \"\"\"x\\ \xd0\x9c\"\"\"\n").find("after a line-ending backslash"), std::string::npos);
  EXPECT_NE(error_of("a = \"\"\"x\\\xd0\x9c\"\"\"\n").find("after a backslash"), std::string::npos);
  // Non-ASCII where toml++ reads a string stays allowed: quoted keys, dotted keys, headers, arrays, inline tables
  // (the scan passes and toml++ parses it; the options check then refuses the nested tables, as it should).
  const std::string valid =
      error_of("\"\xd0\x9c\" = 1\na.'\xd0\x9c' = \"\xd0\x9c\"\n[\"\xd0\x9d\"]\nx = ['\xd0\x9c', \"\xd0\x9c\"]\n"
               "y = { \"\xd0\x9c\" = 1, z.\"\xd0\x9c\" = '\xd0\x9c' }\n[[t.'\xd0\x9c']]\nv = [\n  \"\xd0\x9c\",\n]\n"
               "w = \"\"\"x\\\n  y\xd0\x9c\"\"\" # \xd0\x9c\n");
  EXPECT_EQ(valid.find("non-ASCII"), std::string::npos) << valid;
  EXPECT_EQ(valid.find("while parsing"), std::string::npos) << valid;
  EXPECT_NE(valid.find("unsupported type"), std::string::npos) << valid;
}

}  // namespace
}  // namespace islkd::app
