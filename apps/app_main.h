// The apps' error boundary: any error becomes one printable line on stderr and exit code 1, never an abort or
// raw bytes of a hostile file on the terminal. Light (no engine headers) so every app uses it.
#pragma once
#include <cstdio>
#include <exception>
#include <functional>
#include <new>
#include <string>

#include "kernels/common/error.h"

namespace islkd::app {

// An error message made safe for a terminal and kept on one line: control bytes (a newline, an escape sequence
// from a hostile file's header) and bytes that are not valid UTF-8 become \xNN; valid UTF-8 (a path) is kept.
inline std::string printable(const std::string& in) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  auto escape = [&](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  };
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xc0) == 0x80;
    if (ok) {
      out.append(in, i, len);
      i += len;
    } else {
      escape(c);
      ++i;
    }
  }
  return out;
}

// Called with the exit code after an error line was printed (a data-parallel app sets it to end the other ranks at
// once: dist::abort_world_after_error), so no rank waits forever for one that stopped.
inline void (*g_after_error)(int code) = nullptr;

// Runs the app body; any error becomes one line on stderr and exit code 1 (never an abort on user input).
inline int guarded_main(const char* app_name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", app_name, printable(e.what()).c_str());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory (an allocation failed; lower --batch-size or --workers, or check "
                 "the input files' sizes)\n", app_name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", app_name, printable(e.what()).c_str());
  }
  if (g_after_error) {
    std::fflush(stderr);
    g_after_error(1);
  }
  return 1;
}

}  // namespace islkd::app
