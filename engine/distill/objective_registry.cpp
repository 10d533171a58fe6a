// The objectives by name. Adding one: its file defines make_<name>_objective(options); add its line here.
#include <algorithm>

#include "engine/distill/objective.h"
#include "kernels/common/error.h"

#define ISLKD_OBJECTIVES(X) \
  X(ce)                     \
  X(kd)                     \
  X(dkd)                    \
  X(at)                     \
  X(fitnet)                 \
  X(sp)                     \
  X(pkt)                    \
  X(rkd)                    \
  X(vid)                    \
  X(crd)

namespace islkd::distill {

#define ISLKD_DECLARE_OBJECTIVE(name) std::unique_ptr<Objective> make_##name##_objective(const nlohmann::json& options);
ISLKD_OBJECTIVES(ISLKD_DECLARE_OBJECTIVE)
#undef ISLKD_DECLARE_OBJECTIVE

namespace {

struct Entry {
  const char* name;
  std::unique_ptr<Objective> (*make)(const nlohmann::json&);
};

const std::vector<Entry>& registry() {
#define ISLKD_OBJECTIVE_ENTRY(name) Entry{#name, make_##name##_objective},
  static const std::vector<Entry> r = {ISLKD_OBJECTIVES(ISLKD_OBJECTIVE_ENTRY)};
#undef ISLKD_OBJECTIVE_ENTRY
  return r;
}

}  // namespace

std::vector<std::string> objective_names() {
  std::vector<std::string> names;
  for (const Entry& e : registry()) names.push_back(e.name);
  return names;
}

bool has_objective(const std::string& name) {
  const auto& r = registry();
  return std::any_of(r.begin(), r.end(), [&](const Entry& e) { return name == e.name; });
}

std::unique_ptr<Objective> make_objective(const std::string& name, const nlohmann::json& options) {
  for (const Entry& e : registry())
    if (name == e.name) return e.make(options.is_null() ? nlohmann::json::object() : options);
  std::string list;
  for (const auto& n : objective_names()) list += (list.empty() ? "" : ", ") + n;
  ISLKD_FAIL("unknown objective '", name, "' (expected one of: ", list, ")");
}

}  // namespace islkd::distill
