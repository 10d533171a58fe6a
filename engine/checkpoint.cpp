// Module <-> safetensors state dict, with strict name/shape/dtype checking on load.
#include "engine/checkpoint.h"

#include <cmath>
#include <set>

#include "engine/autograd.h"

namespace islkd::checkpoint {

const std::vector<std::string>& extra_prefixes() {
  static const std::vector<std::string> p = {"optimizer.", "curriculum.", "train.", "objective."};
  return p;
}

bool is_extra_name(const std::string& name) {
  for (const auto& p : extra_prefixes())
    if (name.compare(0, p.size(), p) == 0) return true;
  return false;
}

std::vector<safetensors::Entry> state_dict(Module& model) {
  std::vector<safetensors::Entry> out;
  for (auto& [name, t] : model.named_parameters()) out.push_back(safetensors::Entry::from_f32(name, t.shape(), t.to_vector()));
  for (auto& [name, t] : model.named_buffers()) out.push_back(safetensors::Entry::from_f32(name, t.shape(), t.to_vector()));
  for (auto& [name, c] : model.named_counters()) out.push_back(safetensors::Entry::from_i64(name, {}, {*c}));
  return out;
}

namespace {

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Refuses entries that no healthy run holds: nan/inf anywhere, a negative batch-norm variance.
// `action` says what was (not) done: "not written" or "not loaded".
void check_entries_sane(const std::vector<const safetensors::Entry*>& entries, const std::string& path,
                        const char* action) {
  int64_t bad = 0, total = 0;
  const safetensors::Entry* first = nullptr;
  for (const safetensors::Entry* e : entries) {
    if (e->dtype != safetensors::DType::F32) continue;
    ++total;
    if (!all_finite(e->f32)) {
      ++bad;
      if (!first) first = e;
    }
  }
  ISLKD_CHECK(bad == 0, path, ": ", action, ": ", bad, " of ", total, " float tensors hold nan or inf (first: '",
              first ? first->name : "", "'); ", std::string(action) == "not written"
                                                    ? "the run diverged, the file already there is kept"
                                                    : "a diverged or corrupt checkpoint");
  const std::string var = "running_var";
  for (const safetensors::Entry* e : entries) {
    if (e->dtype != safetensors::DType::F32 || e->name.size() < var.size() ||
        e->name.compare(e->name.size() - var.size(), var.size(), var) != 0)
      continue;
    for (float x : e->f32)
      ISLKD_CHECK(x >= 0.0f, path, ": ", action, ": '", e->name, "' holds the negative variance ", x,
                  " (a corrupt checkpoint)");
  }
}

}  // namespace

void save(const std::string& path, Module& model, const std::vector<safetensors::Entry>& extra,
          const std::map<std::string, std::string>& metadata) {
  safetensors::File f;
  for (auto& e : state_dict(model)) f.add(std::move(e));
  for (const auto& e : extra) {
    ISLKD_CHECK(is_extra_name(e.name), "checkpoint '", path, "': extra entry '", e.name,
                "' must start with one of optimizer., curriculum., train. (so loaders can tell it from model state)");
    f.add(e);
  }
  f.metadata = metadata;
  std::vector<const safetensors::Entry*> all;
  for (const auto& e : f.entries) all.push_back(&e);
  check_entries_sane(all, path, "not written");
  safetensors::save(path, f);
}

Contents load_from(const safetensors::File& file, Module& model, bool strict, const std::string& where) {
  Contents out;
  out.metadata = file.metadata;
  std::set<std::string> used;
  auto find_checked = [&](const std::string& name, safetensors::DType dtype, const Shape& shape) -> const safetensors::Entry* {
    const safetensors::Entry* e = file.find(name);
    if (!e) {
      ISLKD_CHECK(!strict, where, ": tensor '", name, "' of the model is missing from the checkpoint");
      return nullptr;
    }
    used.insert(name);
    ISLKD_CHECK(e->dtype == dtype, where, ": tensor '", name, "' has dtype ", safetensors::dtype_name(e->dtype),
                ", the model expects ", safetensors::dtype_name(dtype));
    ISLKD_CHECK(e->shape == shape, where, ": tensor '", name, "' has shape ", shape_str(e->shape),
                ", the model expects ", shape_str(shape));
    return e;
  };
  // Validate everything before changing the model, so a bad file leaves it untouched.
  std::vector<std::pair<Tensor, const safetensors::Entry*>> tensors;
  for (auto& [name, t] : model.named_parameters())
    if (auto* e = find_checked(name, safetensors::DType::F32, t.shape())) tensors.emplace_back(t, e);
  for (auto& [name, t] : model.named_buffers())
    if (auto* e = find_checked(name, safetensors::DType::F32, t.shape())) tensors.emplace_back(t, e);
  std::vector<std::pair<int64_t*, const safetensors::Entry*>> counters;
  for (auto& [name, c] : model.named_counters())
    if (auto* e = find_checked(name, safetensors::DType::I64, {})) counters.emplace_back(c, e);
  for (const auto& e : file.entries) {
    if (used.count(e.name)) continue;
    if (is_extra_name(e.name)) {
      out.extra.push_back(e);
      continue;
    }
    ISLKD_CHECK(!strict, where, ": tensor '", e.name, "' in the checkpoint is not part of the model (",
                "wrong architecture or --model?)");
  }
  std::vector<const safetensors::Entry*> checked;
  for (auto& [t, e] : tensors) checked.push_back(e);
  for (const auto& e : out.extra) checked.push_back(&e);
  check_entries_sane(checked, where, "not loaded");
  NoGradGuard no_grad;
  for (auto& [t, e] : tensors) t.copy_from(Tensor::from_vector(e->f32, t.shape()));
  for (auto& [c, e] : counters) *c = e->i64[0];
  return out;
}

Contents load(const std::string& path, Module& model, bool strict) {
  return load_from(safetensors::load(path), model, strict, path);
}

}  // namespace islkd::checkpoint
