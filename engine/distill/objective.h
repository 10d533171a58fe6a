// What the student learns from (the objective: ce, kd, ...) behind one small interface and a name registry, so an
// objective is one file + one line in objective_registry.cpp + one test, and the Trainer never names one.
// The curriculum (in which order the data comes) is a separate choice: any objective runs with or without ISL.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/module.h"
#include "engine/tensor.h"

namespace islkd::distill {

// What an objective needs besides the student's logits and the labels. Feature names are the models' named
// intermediate outputs (Module::forward_features); ce and kd need none. An objective whose feature names depend on
// the models (at: every stage) sets `features` and knows the names only after bind().
struct ObjectiveNeeds {
  bool teacher_logits = false;
  bool features = false;  // named features of the student and the teacher (the lists below are final after bind())
  std::vector<std::string> student_features, teacher_features;
  // The step's instance indices (ObjectiveInputs::indices) and, at bind(), the training set's labels
  // (ObjectiveContext::train_labels): an objective that keeps per-instance state (CRD's memory bank) and samples by
  // label (CRD's negatives).
  bool instances = false;
  bool needs_teacher_features() const { return features || !teacher_features.empty(); }
  bool needs_teacher() const { return teacher_logits || needs_teacher_features(); }
};

// What bind() sees: the student (on the host, before the Trainer moves it), the frozen teacher (eval, folded, on the
// run's device; null when the run has none), one instance's input shape (C x H x W) and the run's seed; when needs()
// asks for `instances`, the training set's labels by instance index (its size is the set's; null otherwise).
struct ObjectiveContext {
  Module* student = nullptr;
  Module* teacher = nullptr;
  Shape input;
  uint64_t seed = 0;
  const std::vector<int32_t>* train_labels = nullptr;
};

// One step's inputs. Absent teacher outputs (not asked for in needs()) are undefined tensors / empty maps.
struct ObjectiveInputs {
  Tensor student_logits;
  Tensor labels;
  Tensor teacher_logits;
  std::map<std::string, Tensor> student_features, teacher_features;
  int64_t epoch = 0, step = 0;  // for objectives whose weight is scheduled (a warm-up), or seeded sampling (crd)
  // The batch's instance indices into the training set (row i is instance indices[i]; distinct within a batch), on
  // the host; filled by the Trainer when needs().instances.
  std::vector<int64_t> indices;
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // Its hyper-parameters as a table (recorded in the run's config under the objective's name; empty: nothing to
  // record). Built from the same table by the registry, so a run can be reproduced from its log.
  virtual nlohmann::json config() const = 0;
  virtual ObjectiveNeeds needs() const { return {}; }
  // Called once before training (before parameters() and resume): an objective whose feature names or own
  // parameters depend on the models (FitNet's regressor sized by the hint features) sets them up here.
  virtual void bind(const ObjectiveContext&) {}
  // Trainable tensors the objective owns (a FitNet regressor): optimized, checkpointed and resumed with the
  // student, under "objective.<name>". Moved to the run's device by to().
  virtual std::vector<std::pair<std::string, Tensor>> parameters() const { return {}; }
  // Non-trainable state the objective owns and changes as it trains (CRD's memory bank and normalisation
  // constants): checkpointed and resumed with the parameters under "objective.<name>" (so --resume is bit-identical),
  // never optimized. Tensors share storage with the objective's own; moved to the run's device by to().
  virtual std::vector<std::pair<std::string, Tensor>> buffers() const { return {}; }
  virtual void to(Device) {}
  // The step's mean loss (a [1] tensor on the autograd tape: backward reaches the student and parameters()).
  virtual Tensor loss(const ObjectiveInputs& in) = 0;
};

// The registry: `options` is the objective's hyper-parameter table (missing keys take the defaults; bad values and
// unknown names are islkd::Error naming the choices).
std::unique_ptr<Objective> make_objective(const std::string& name, const nlohmann::json& options = nlohmann::json::object());
std::vector<std::string> objective_names();
bool has_objective(const std::string& name);

}  // namespace islkd::distill
