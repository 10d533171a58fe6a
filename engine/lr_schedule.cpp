// Learning-rate schedules: closed-form functions of the fractional epoch (no internal state, so a resumed run
// gets the same rates without saving anything).
#include "engine/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "kernels/common/error.h"

namespace islkd {

double LRSchedule::lr_at_step(int64_t epoch, int64_t step, int64_t steps_per_epoch) const {
  ISLKD_CHECK(steps_per_epoch > 0, "lr schedule: steps per epoch must be > 0, got ", steps_per_epoch);
  return lr_at(static_cast<double>(epoch) + static_cast<double>(step) / static_cast<double>(steps_per_epoch));
}

ConstantLR::ConstantLR(double lr) : lr_(lr) {
  ISLKD_CHECK(lr >= 0.0 && std::isfinite(lr), "constant schedule: learning rate must be >= 0, got ", lr);
}
double ConstantLR::lr_at(double) const { return lr_; }
nlohmann::json ConstantLR::config() const { return {{"type", "constant"}, {"lr", lr_}}; }

MultiStepLR::MultiStepLR(double base_lr, std::vector<double> milestones, double gamma)
    : base_(base_lr), gamma_(gamma), milestones_(std::move(milestones)) {
  ISLKD_CHECK(base_lr >= 0.0 && std::isfinite(base_lr), "multistep schedule: base learning rate must be >= 0, got ",
              base_lr);
  ISLKD_CHECK(gamma > 0.0 && std::isfinite(gamma), "multistep schedule: gamma must be > 0, got ", gamma);
  for (size_t i = 0; i < milestones_.size(); ++i) {
    ISLKD_CHECK(milestones_[i] >= 0.0, "multistep schedule: milestone ", milestones_[i], " is negative");
    ISLKD_CHECK(i == 0 || milestones_[i] > milestones_[i - 1], "multistep schedule: milestones must increase, got ",
                milestones_[i - 1], " then ", milestones_[i]);
  }
}
double MultiStepLR::lr_at(double epoch) const {
  double lr = base_;
  for (double m : milestones_)
    if (epoch >= m) lr *= gamma_;
  return lr;
}
nlohmann::json MultiStepLR::config() const {
  return {{"type", "multistep"}, {"base_lr", base_}, {"milestones", milestones_}, {"gamma", gamma_}};
}

CosineLR::CosineLR(double base_lr, double min_lr, double start_epoch, double end_epoch)
    : base_(base_lr), min_(min_lr), start_(start_epoch), end_(end_epoch) {
  ISLKD_CHECK(base_lr >= 0.0 && std::isfinite(base_lr), "cosine schedule: base learning rate must be >= 0, got ",
              base_lr);
  ISLKD_CHECK(min_lr >= 0.0 && min_lr <= base_lr, "cosine schedule: floor ", min_lr, " must be in [0, base ",
              base_lr, "]");
  ISLKD_CHECK(end_epoch > start_epoch, "cosine schedule: end epoch ", end_epoch, " must be after start epoch ",
              start_epoch);
}
double CosineLR::lr_at(double epoch) const {
  if (epoch <= start_) return base_;
  if (epoch >= end_) return min_;
  const double pi = std::acos(-1.0);
  double t = (epoch - start_) / (end_ - start_);
  return min_ + (base_ - min_) * 0.5 * (1.0 + std::cos(pi * t));
}
nlohmann::json CosineLR::config() const {
  return {{"type", "cosine"}, {"base_lr", base_}, {"min_lr", min_}, {"start_epoch", start_}, {"end_epoch", end_}};
}

WarmupLR::WarmupLR(double warmup_epochs, double start_factor, std::unique_ptr<LRSchedule> then)
    : warmup_(warmup_epochs), start_factor_(start_factor), then_(std::move(then)) {
  ISLKD_CHECK(then_, "warm-up schedule: needs a schedule to hand over to");
  ISLKD_CHECK(warmup_epochs > 0.0 && std::isfinite(warmup_epochs), "warm-up schedule: epochs must be > 0, got ",
              warmup_epochs);
  ISLKD_CHECK(start_factor >= 0.0 && start_factor <= 1.0, "warm-up schedule: start factor must be in [0, 1], got ",
              start_factor);
}
double WarmupLR::lr_at(double epoch) const {
  if (epoch >= warmup_) return then_->lr_at(epoch);
  double target = then_->lr_at(warmup_);
  double f = start_factor_ + (1.0 - start_factor_) * std::max(0.0, epoch) / warmup_;
  return target * f;
}
nlohmann::json WarmupLR::config() const {
  return {{"type", "warmup"}, {"epochs", warmup_}, {"start_factor", start_factor_}, {"then", then_->config()}};
}

ScheduleSpec kd_literature_preset() {
  ScheduleSpec s;
  s.kind = "multistep";
  s.base_lr = 0.05;
  s.epochs = 240;
  s.milestones = {150, 180, 210};
  s.gamma = 0.1;
  return s;
}

std::unique_ptr<LRSchedule> make_schedule(const ScheduleSpec& spec) {
  ISLKD_CHECK(spec.epochs > 0, "schedule: epochs must be > 0, got ", spec.epochs);
  ISLKD_CHECK(spec.warmup_epochs >= 0.0 && spec.warmup_epochs < static_cast<double>(spec.epochs),
              "schedule: warm-up of ", spec.warmup_epochs, " epochs must be shorter than the run (", spec.epochs,
              " epochs)");
  std::unique_ptr<LRSchedule> s;
  if (spec.kind == "kd" || spec.kind == "multistep") {
    std::vector<double> ms = spec.milestones;
    double gamma = spec.gamma;
    if (ms.empty()) {
      // The KD literature's 150/180/210 of 240, scaled to this run's length.
      double f = static_cast<double>(spec.epochs) / 240.0;
      ms = {150.0 * f, 180.0 * f, 210.0 * f};
      if (spec.kind == "kd") gamma = 0.1;
    }
    for (double m : ms)
      ISLKD_CHECK(m < static_cast<double>(spec.epochs), "schedule: milestone ", m, " is not inside the run of ",
                  spec.epochs, " epochs");
    s = std::make_unique<MultiStepLR>(spec.base_lr, ms, gamma);
  } else if (spec.kind == "cosine") {
    s = std::make_unique<CosineLR>(spec.base_lr, spec.min_lr, spec.warmup_epochs, static_cast<double>(spec.epochs));
  } else if (spec.kind == "constant") {
    s = std::make_unique<ConstantLR>(spec.base_lr);
  } else {
    ISLKD_FAIL("unknown schedule '", spec.kind, "' (expected kd, multistep, cosine or constant)");
  }
  if (spec.warmup_epochs > 0.0)
    s = std::make_unique<WarmupLR>(spec.warmup_epochs, spec.warmup_start_factor, std::move(s));
  return s;
}

std::unique_ptr<LRSchedule> schedule_from_json(const nlohmann::json& c) {
  try {
    std::string type = c.at("type").get<std::string>();
    if (type == "constant") return std::make_unique<ConstantLR>(c.at("lr").get<double>());
    if (type == "multistep")
      return std::make_unique<MultiStepLR>(c.at("base_lr").get<double>(),
                                           c.at("milestones").get<std::vector<double>>(), c.at("gamma").get<double>());
    if (type == "cosine")
      return std::make_unique<CosineLR>(c.at("base_lr").get<double>(), c.at("min_lr").get<double>(),
                                        c.at("start_epoch").get<double>(), c.at("end_epoch").get<double>());
    if (type == "warmup")
      return std::make_unique<WarmupLR>(c.at("epochs").get<double>(), c.at("start_factor").get<double>(),
                                        schedule_from_json(c.at("then")));
    ISLKD_FAIL("schedule config: unknown type '", type, "'");
  } catch (const nlohmann::json::exception& e) {
    ISLKD_FAIL("schedule config ", c.dump(), ": ", e.what());
  }
}

}  // namespace islkd
