// islkd_emu_rewrite: the build step of islkd_add_emulated_cuda_library. Copies a .cu file into a C++ file for the
// emulator, turning each `__shared__ T name[dims];` inside a function body into a reference to a per-block heap
// array, so every block gets its own copy, ASan sees overruns and the 48 KiB limit counts it. Line numbers are
// kept (#line + one-line replacements padded with the original newlines). Anything it does not recognise is left
// alone and falls back to cuda_emu.h's `static thread_local` __shared__.
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Token {
  std::string text;
  size_t begin, end;  // byte offsets in the source
  bool ident;
};

struct Replacement {
  size_t begin, end;
  std::string text;
};

// Splits into tokens, skipping comments, string/char literals and preprocessor lines (which are never rewritten).
std::vector<Token> tokenize(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  bool line_start = true;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (c == '#' && line_start) {  // directive, with backslash continuations
      while (i < s.size() && s[i] != '\n') i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;
      continue;
    }
    line_start = false;
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '/') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      const size_t e = s.find("*/", i + 2);
      i = e == std::string::npos ? s.size() : e + 2;
      continue;
    }
    if (c == 'R' && i + 1 < s.size() && s[i + 1] == '"') {  // raw string R"delim( ... )delim"
      const size_t open = s.find('(', i + 2);
      if (open != std::string::npos) {
        const std::string close = ")" + s.substr(i + 2, open - i - 2) + "\"";
        const size_t e = s.find(close, open + 1);
        const size_t end = e == std::string::npos ? s.size() : e + close.size();
        out.push_back({"\"\"", i, end, false});
        i = end;
        continue;
      }
    }
    if (c == '"' || c == '\'') {
      const size_t b = i++;
      while (i < s.size() && s[i] != c) i += (s[i] == '\\') ? 2 : 1;
      i = std::min(i + 1, s.size());
      out.push_back({s.substr(b, i - b), b, i, false});
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const size_t b = i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      out.push_back({s.substr(b, i - b), b, i, true});
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      const size_t b = i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == '\'')) ++i;
      out.push_back({s.substr(b, i - b), b, i, false});
      continue;
    }
    out.push_back({std::string(1, c), i, i + 1, false});
    ++i;
  }
  return out;
}

std::string join(const std::vector<Token>& t, size_t from, size_t to) {
  std::string r;
  for (size_t k = from; k < to; ++k) {
    if (!r.empty() && (t[k].ident || std::isdigit(static_cast<unsigned char>(t[k].text[0]))) &&
        (std::isalnum(static_cast<unsigned char>(r.back())) || r.back() == '_'))
      r += ' ';
    r += t[k].text;
  }
  return r;
}

std::vector<Replacement> find_rewrites(const std::string& src, const std::vector<Token>& tok) {
  std::vector<Replacement> out;
  std::vector<bool> braces;  // per open '{': inside a function body?
  int site = 0;
  for (size_t k = 0; k < tok.size(); ++k) {
    const std::string& t = tok[k].text;
    if (t == "{") {
      const std::string prev = k ? tok[k - 1].text : "";
      const bool function_body = (!braces.empty() && braces.back()) || prev == ")" || prev == "const" ||
                                 prev == "noexcept" || prev == "override" || prev == "mutable";
      braces.push_back(function_body);
      continue;
    }
    if (t == "}") {
      if (!braces.empty()) braces.pop_back();
      continue;
    }
    if (t != "__shared__" || braces.empty() || !braces.back()) continue;
    const std::string prev = k ? tok[k - 1].text : "";
    if (prev != ";" && prev != "{" && prev != "}" && prev != ":") continue;  // not a statement start, or extern
    // Collect `T name dims ;` and give up on anything else (initialisers, several declarators, attributes).
    size_t end = k + 1, bracket = tok.size();
    int depth = 0;
    bool ok = true;
    for (; end < tok.size(); ++end) {
      const std::string& u = tok[end].text;
      if (u == ";" && depth == 0) break;
      if (u == "[") {
        if (depth == 0 && bracket == tok.size()) bracket = end;
        ++depth;
      } else if (u == "]") {
        --depth;
      } else if (depth == 0 && (u == "=" || u == "(" || u == "," || u == "{" || u == "}" || u == "extern")) {
        ok = false;
        break;
      } else if (bracket != tok.size() && depth == 0) {
        ok = false;  // tokens after the dims
        break;
      }
    }
    if (!ok || end >= tok.size()) continue;
    if (bracket == tok.size()) bracket = end;  // a scalar: no dims
    const size_t name = bracket - 1;
    if (name <= k + 1 || !tok[name].ident) continue;  // needs a type and a name
    const std::string type = join(tok, k + 1, name);
    const std::string dims = join(tok, bracket, end);
    const std::string tag = "islkd_shared_site_" + std::to_string(site++);
    const std::string ref = dims.empty() ? "& " + tok[name].text : "(&" + tok[name].text + ")";
    std::string text = "static char " + tag + "; " + type + " " + ref + dims +
                       " = ::islkd_emu::detail::static_shared_object<" + type + dims + " >(&" + tag + ");";
    for (size_t p = tok[k].begin; p < tok[end].end; ++p)
      if (src[p] == '\n') text += '\n';  // keep the following lines where they were
    out.push_back({tok[k].begin, tok[end].end, text});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: islkd_emu_rewrite <input.cu> <output.cpp>\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::cerr << "islkd_emu_rewrite: cannot read " << argv[1] << "\n";
    return 1;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string src = buf.str();
  const std::vector<Replacement> reps = find_rewrites(src, tokenize(src));

  std::string out = "// Generated by islkd_emu_rewrite from " + std::string(argv[1]) +
                    " for the CUDA execution emulator. Do not edit.\n#include \"kernels/emu/cuda_emu.h\"\n#line 1 \"" +
                    argv[1] + "\"\n";
  size_t pos = 0;
  for (const auto& r : reps) {
    out.append(src, pos, r.begin - pos);
    out += r.text;
    pos = r.end;
  }
  out.append(src, pos, std::string::npos);

  // Write only on change, so an unchanged rewrite does not recompile its users.
  std::ifstream old(argv[2], std::ios::binary);
  if (old) {
    std::stringstream ob;
    ob << old.rdbuf();
    if (ob.str() == out) return 0;
  }
  std::ofstream o(argv[2], std::ios::binary | std::ios::trunc);
  o << out;
  if (!o) {
    std::cerr << "islkd_emu_rewrite: cannot write " << argv[2] << "\n";
    return 1;
  }
  return 0;
}
