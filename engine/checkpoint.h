// Checkpoints: a Module's state written exactly as a PyTorch state_dict (parameters and BN running statistics as
// F32, num_batches_tracked as I64 scalars, same names), plus optional extra tensors (optimizer state, curriculum)
// and string metadata (epoch, step, RNG state, config) — one safetensors file for weights exchange and resuming.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/module.h"
#include "engine/safetensors.h"

namespace islkd::checkpoint {

// Names that are not model state start with one of these prefixes (e.g. `optimizer.momentum.fc.weight`,
// `curriculum.order`). The model loader hands them back to the caller instead of treating them as extra names.
const std::vector<std::string>& extra_prefixes();
bool is_extra_name(const std::string& name);

// The model's state dict (parameters, buffers, counters), copied to the host.
std::vector<safetensors::Entry> state_dict(Module& model);

struct Contents {
  std::vector<safetensors::Entry> extra;        // entries named with an extra prefix, in file order
  std::map<std::string, std::string> metadata;  // __metadata__
};

// Writes model state + extra entries (each must be named with an extra prefix) + metadata, atomically.
void save(const std::string& path, Module& model, const std::vector<safetensors::Entry>& extra = {},
          const std::map<std::string, std::string>& metadata = {});

// Loads model state into `model` (its tensors keep their devices). Strict (the default): every model name must be
// present with the right dtype and shape, and no other non-extra name may appear; non-strict skips missing and
// unexpected names but still rejects a wrong shape or dtype. Errors name the file and the tensor.
Contents load(const std::string& path, Module& model, bool strict = true);
Contents load_from(const safetensors::File& file, Module& model, bool strict, const std::string& name_for_errors);

}  // namespace islkd::checkpoint
