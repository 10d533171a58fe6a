// TOML config files for CLI11 (`train_kd --config run.toml`): top-level keys (and keys inside any [section], which
// only groups them for readability) are option names without the dashes, `_` and `-` alike; arrays give repeated
// values. Command-line flags override the file. Parsed by toml++, not by hand.
// Strict, because a config typo must not silently change a run: a key that is no option of the app is an error
// naming it, and a flag (`nesterov`, `augment`) takes a TOML boolean only (`nesterov = "yes"` or `= 7` is refused
// instead of turning it on). The file itself is read with read_regular_file (no FIFO, device or huge file).
#pragma once
#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/common/regular_file.h"

namespace islkd::app {

class TomlConfig : public CLI::Config {
 public:
  // `app`: the options keys are checked against (nullptr: no check; the fuzzer parses without an app).
  explicit TomlConfig(const CLI::App* app) : app_(app) {}

  std::string to_config(const CLI::App*, bool, bool, std::string) const override {
    throw CLI::ConfigError("writing TOML configs is not supported");
  }
  std::vector<CLI::ConfigItem> from_config(std::istream& in) const override {
    std::stringstream ss;
    ss << in.rdbuf();
    return parse(ss.str());
  }

  std::vector<CLI::ConfigItem> parse(const std::string& text) const {
    check_ascii_outside_strings(text);
    toml::table root;
    try {
      root = toml::parse(text);
    } catch (const toml::parse_error& e) {
      std::ostringstream msg;
      msg << "TOML config: " << e.description() << " at line " << e.source().begin.line << ", column "
          << e.source().begin.column;
      throw CLI::ConfigError(msg.str());
    }
    std::vector<CLI::ConfigItem> items;
    add_table(root, items);
    return items;
  }

  // Reads the file given to `--config` the safe way before CLI11 opens it (CLI11 would block on a FIFO and read a
  // symlink to /dev/zero without end). Returns quietly when argv has no --config.
  static void check_config_file(int argc, char** argv, const std::string& flag = "--config") {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i], path;
      if (arg == flag && i + 1 < argc)
        path = argv[i + 1];
      else if (arg.rfind(flag + "=", 0) == 0)
        path = arg.substr(flag.size() + 1);
      else
        continue;
      (void)read_regular_file(path, kMaxConfigFileBytes, "TOML config");
    }
  }

 private:
  // TOML allows non-ASCII bytes only inside strings and comments (bare keys, values and whitespace are ASCII).
  // Checked here, before toml++ sees the text: Debian's toml++ 3.3 reaches __builtin_unreachable (undefined
  // behaviour) in is_non_ascii_horizontal_whitespace for characters such as U+00A1..U+0499 wherever it asks "is
  // this whitespace?" of a non-ASCII character (found by fuzz_toml). It asks that outside strings, and inside a
  // multi-line basic string after a backslash (line-ending backslashes skip the whitespace that follows). So a
  // non-ASCII byte is allowed only where toml++ is certainly inside a string or comment and will not ask:
  // - a quote opens a string only where toml++ reads a string: the first character of a value (after `=`, `[`, or
  //   `,` in an array), of a key (line start, after `{` or `,` in an inline table, after `[`/`[[` of a header) or
  //   of a dotted key's segment (after `.` while reading a key). A value that starts otherwise is bare: toml++
  //   scans it character by character up to a value terminator (whitespace, `]`, `}`, `,`, `#`), so quotes,
  //   brackets and `=` inside it (`a = 19'Ж`, `a = 0{"Ж"`) open nothing and what follows them stays "outside";
  // - in a basic string, a non-ASCII byte right after `\`, or while a line-ending backslash skips whitespace, is
  //   refused.
  // The check is conservative: text it refuses is invalid TOML or (a quote inside a bare value) an error anyway.
  static void check_ascii_outside_strings(const std::string& text) {
    size_t line = 1, col = 0;
    enum { Plain, Comment, Basic, Literal, MultiBasic, MultiLiteral } st = Plain;
    bool skipping = false;  // a multi-line basic string's line-ending backslash skips whitespace
    // Plain: the last significant character ('\n' at a line start), and the open brackets: 'h' a table header,
    // 'a' an array, 't' an inline table. `in_key`: a key is being read (a `.` is then a dotted key's separator).
    char last = '\n';
    std::string open;
    bool in_key = true;
    bool bare = false;  // toml++ is scanning a bare value up to a value terminator
    auto refuse = [&](const char* where) {
      throw CLI::ConfigError("TOML config: non-ASCII byte at line " + std::to_string(line) + ", column " +
                             std::to_string(col) + " " + where);
    };
    for (size_t i = 0; i < text.size(); ++i) {
      const char ch = text[i];
      const bool high = static_cast<unsigned char>(ch) >= 0x80;
      ++col;
      auto starts = [&](const char* s) { return text.compare(i, std::char_traits<char>::length(s), s) == 0; };
      if (ch == '\n') {
        ++line;
        col = 0;
      }
      switch (st) {
        case Plain: {
          if (high) refuse("outside a string or comment");
          if (ch == '\n') {
            bare = false;
            if (open.empty() || open.back() == 'h') last = '\n', in_key = open.empty();
            continue;
          }
          const bool terminator = ch == ' ' || ch == '\t' || (ch >= '\v' && ch <= '\r') || ch == ']' ||
                                  ch == '}' || ch == ',' || ch == '#';
          const bool at_value = last == '=' || ((last == '[' || last == ',') && !open.empty() && open.back() == 'a');
          if (bare && !terminator) continue;  // inside a bare value even quotes, `=` and brackets are its bytes
          bare = false;
          if (at_value && !terminator && ch != '"' && ch != '\'' && ch != '[' && ch != '{') {
            bare = true, last = 'x';  // a bare value (number, date, boolean, junk): toml++ scans to a terminator
            continue;
          }
          if (ch == ' ' || ch == '\t' || (ch >= '\v' && ch <= '\r')) continue;
          if (ch == '#') {
            st = Comment;
            continue;
          }
          if (ch == '"' || ch == '\'') {
            const bool value_start = at_value;
            const bool key_start = (last == '\n' && open.empty()) || last == '{' ||
                                   (last == ',' && !open.empty() && open.back() == 't') ||
                                   (last == '[' && !open.empty() && open.back() == 'h') || (last == '.' && in_key);
            if (value_start || key_start) {
              if (starts("\"\"\"")) st = MultiBasic, i += 2, col += 2;
              else if (starts("'''")) st = MultiLiteral, i += 2, col += 2;
              else st = ch == '"' ? Basic : Literal;
              last = ch;
              continue;
            }
          }
          if (ch == '[') {
            // At a line start outside brackets: a table header (`[[` too); otherwise an array value.
            if ((last == '\n' && open.empty()) || (last == '[' && !open.empty() && open.back() == 'h' && in_key))
              open += 'h', in_key = true;
            else
              open += 'a', in_key = false;
          } else if (ch == '{') {
            open += 't', in_key = true;
          } else if ((ch == ']' || ch == '}') && !open.empty()) {
            open.pop_back(), in_key = false;
          } else if (ch == '=') {
            in_key = false;
          } else if (ch == ',' && !open.empty() && open.back() == 't') {
            in_key = true;
          }
          last = ch;
          break;
        }
        case Comment:
          if (ch == '\n') st = Plain, last = open.empty() || open.back() == 'h' ? '\n' : last, in_key = open.empty();
          break;
        case Basic:
        case MultiBasic:
          if (skipping) {
            if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') break;
            if (high) refuse("after a line-ending backslash");
            skipping = false;
          }
          if (high) break;
          if (ch == '\\' && i + 1 < text.size()) {
            const char next = text[i + 1];
            if (static_cast<unsigned char>(next) >= 0x80) ++col, refuse("after a backslash");
            if (st == MultiBasic && (next == ' ' || next == '\t' || next == '\r' || next == '\n')) skipping = true;
            else ++i, ++col;  // an escape: the next byte cannot close the string
          } else if (st == Basic && (ch == '"' || ch == '\n')) {
            st = Plain;  // a newline in a single-line string is toml++'s error
          } else if (st == MultiBasic && starts("\"\"\"")) {
            st = Plain, i += 2, col += 2;
          }
          break;
        case Literal:
          if (ch == '\'' || ch == '\n') st = Plain;
          break;
        case MultiLiteral:
          if (starts("'''")) st = Plain, i += 2, col += 2;
          break;
      }
    }
  }

  static std::string type_name(const toml::node& n) {
    if (n.is_string()) return "a string";
    if (n.is_integer()) return "an integer";
    if (n.is_floating_point()) return "a number";
    if (n.is_array()) return "an array";
    return "a value of another type";
  }
  static std::string scalar(const toml::node& n, const std::string& key) {
    // By node type: toml++'s value<T>() converts permissively (an integer reads as a bool).
    if (n.is_boolean()) return n.value<bool>().value() ? "true" : "false";
    if (n.is_integer()) return std::to_string(n.value<int64_t>().value());
    if (n.is_floating_point()) {
      std::ostringstream os;
      os.precision(17);
      os << n.value<double>().value();
      return os.str();
    }
    if (n.is_string()) return n.value<std::string>().value();
    throw CLI::ConfigError("TOML config: key '" + key + "' has a value of an unsupported type");
  }
  void check_key(const std::string& key, const std::string& name, const toml::node& node) const {
    if (!app_) return;
    const CLI::Option* opt = app_->get_option_no_throw("--" + name);
    if (!opt) throw CLI::ConfigError("TOML config: unknown key '" + key + "' (no option --" + name + "; see --help)");
    if (opt->get_expected_min() == 0 && !node.is_boolean())  // a flag
      throw CLI::ConfigError("TOML config: key '" + key + "' is a flag: give true or false, not " + type_name(node));
  }
  void add_table(const toml::table& t, std::vector<CLI::ConfigItem>& items) const {
    for (const auto& [k, node] : t) {
      std::string key(k.str());
      if (const toml::table* sub = node.as_table()) {
        add_table(*sub, items);
        continue;
      }
      CLI::ConfigItem item;
      item.name = key;
      std::replace(item.name.begin(), item.name.end(), '_', '-');
      check_key(key, item.name, node);
      if (const toml::array* arr = node.as_array()) {
        for (const auto& e : *arr) item.inputs.push_back(scalar(e, key));
      } else {
        item.inputs.push_back(scalar(node, key));
      }
      items.push_back(std::move(item));
    }
  }

  const CLI::App* app_;
};

}  // namespace islkd::app
