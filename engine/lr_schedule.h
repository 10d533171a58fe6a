// Learning-rate schedules as functions of the (fractional) epoch: multistep, cosine to a floor, constant, and a
// linear warm-up in front of any of them. Each describes itself as a JSON table for the run log, and can be
// rebuilt from that table, so a run's schedule is reproducible from its log.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace islkd {

class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  // Learning rate at `epoch` (0-based, fractional: step s of an epoch of S steps is epoch e + s/S).
  virtual double lr_at(double epoch) const = 0;
  virtual nlohmann::json config() const = 0;
  // Convenience for per-step updates.
  double lr_at_step(int64_t epoch, int64_t step, int64_t steps_per_epoch) const;
};

// Constant rate.
class ConstantLR : public LRSchedule {
 public:
  explicit ConstantLR(double lr);
  double lr_at(double epoch) const override;
  nlohmann::json config() const override;

 private:
  double lr_;
};

// base * gamma^k, k = number of milestones m with epoch >= m. Milestones are epoch indices (0-based): with
// milestone 150 the epoch numbered 150 (the 151st) is the first at the lower rate, as in PyTorch's MultiStepLR
// stepped per epoch and RepDistiller's `epoch > 150` with 1-based epochs.
class MultiStepLR : public LRSchedule {
 public:
  MultiStepLR(double base_lr, std::vector<double> milestones, double gamma);
  double lr_at(double epoch) const override;
  nlohmann::json config() const override;

 private:
  double base_, gamma_;
  std::vector<double> milestones_;
};

// Half-cosine from base_lr at `start_epoch` down to min_lr at `end_epoch` (then min_lr); base_lr before start.
class CosineLR : public LRSchedule {
 public:
  CosineLR(double base_lr, double min_lr, double start_epoch, double end_epoch);
  double lr_at(double epoch) const override;
  nlohmann::json config() const override;

 private:
  double base_, min_, start_, end_;
};

// Linear ramp over [0, warmup_epochs) from start_factor * target to target, where target is the wrapped
// schedule's rate at the end of the warm-up; the wrapped schedule afterwards.
class WarmupLR : public LRSchedule {
 public:
  WarmupLR(double warmup_epochs, double start_factor, std::unique_ptr<LRSchedule> then);
  double lr_at(double epoch) const override;
  nlohmann::json config() const override;

 private:
  double warmup_, start_factor_;
  std::unique_ptr<LRSchedule> then_;
};

// What the apps' flags describe. kind: "multistep" | "cosine" | "constant" | "kd" (the KD literature's
// preset: 0.05 with x0.1 at 150/180/210 of 240 epochs, milestones scaled by epochs/240 for other lengths).
struct ScheduleSpec {
  std::string kind = "kd";
  double base_lr = 0.05;
  int64_t epochs = 240;
  std::vector<double> milestones;  // multistep; empty = the preset's fractions 150/240, 180/240, 210/240
  double gamma = 0.1;              // multistep
  double min_lr = 0.0;             // cosine floor
  double warmup_epochs = 0.0;      // 0 = no warm-up
  double warmup_start_factor = 0.0;
};

// The KD literature's schedule exactly: 0.05, x0.1 at epochs 150, 180, 210, 240 epochs in total.
ScheduleSpec kd_literature_preset();

// Builds the schedule; checks the settings (positive rates, increasing milestones inside the run, ...).
std::unique_ptr<LRSchedule> make_schedule(const ScheduleSpec& spec);
// Rebuilds a schedule from its config() table.
std::unique_ptr<LRSchedule> schedule_from_json(const nlohmann::json& config);

}  // namespace islkd
