// Libraries loaded at run time and resolved by name (dlopen / dlsym): Open MPI (dist.cpp) and NCCL (nccl.cpp), so
// that no app links either and every app starts on a machine without them. Errors are one line naming the file.
#pragma once
#include <dlfcn.h>

#include <string>

#include "kernels/common/error.h"

namespace islkd::dist {

// dlopen(path, flags), or an islkd::Error "<context><path> cannot be loaded (<dlerror>); <fix>".
inline void* open_library(const std::string& path, int flags, const std::string& context, const std::string& fix) {
  void* lib = dlopen(path.c_str(), flags);
  if (!lib) {
    const char* why = dlerror();
    ISLKD_FAIL(context, path, " cannot be loaded (", why ? why : "unknown reason", "); ", fix);
  }
  return lib;
}

// The address of `name` in `lib` (a function or a predefined object), or an islkd::Error
// "<context><path> has no <name> (<need>)".
inline void* library_symbol(void* lib, const char* name, const std::string& context, const std::string& path,
                            const std::string& need) {
  void* p = dlsym(lib, name);
  ISLKD_CHECK(p, context, path, " has no ", name, " (", need, ")");
  return p;
}

template <typename F>
void resolve_function(void* lib, const char* name, F& fn, const std::string& context, const std::string& path,
                      const std::string& need) {
  fn = reinterpret_cast<F>(library_symbol(lib, name, context, path, need));
}

}  // namespace islkd::dist
