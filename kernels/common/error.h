// The one exception type of the project, and the check macros that build its messages.
// Lives at the bottom of the dependency graph (kernels/) so every layer above can throw it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace islkd {

// Every error a user can cause or act on is an islkd::Error; apps catch it at main, print one line, exit 1.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace islkd

// ISLKD_CHECK(cond, parts...): throw islkd::Error with the streamed parts when cond is false.
#define ISLKD_CHECK(cond, ...)                                               \
  do {                                                                       \
    if (!(cond)) throw ::islkd::Error(::islkd::detail::concat(__VA_ARGS__)); \
  } while (0)

#define ISLKD_FAIL(...) throw ::islkd::Error(::islkd::detail::concat(__VA_ARGS__))
