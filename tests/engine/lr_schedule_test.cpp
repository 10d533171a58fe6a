// Learning-rate schedules: exact values at and around the milestones, cosine end points and midpoint, the warm-up
// ramp, per-step fractional epochs, the KD preset, config tables that rebuild the same schedule, bad settings.
#include <cmath>

#include "engine/lr_schedule.h"
#include "kernels/common/error.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(MultiStepLR, KDPresetDropsTenfoldAtEpochs150_180_210Of240) {
  ScheduleSpec spec = kd_literature_preset();
  EXPECT_EQ(spec.epochs, 240);
  auto s = make_schedule(spec);
  EXPECT_DOUBLE_EQ(s->lr_at(0), 0.05);
  EXPECT_DOUBLE_EQ(s->lr_at(149.999), 0.05);
  EXPECT_NEAR(s->lr_at(150), 0.005, 1e-12);
  EXPECT_NEAR(s->lr_at(179.5), 0.005, 1e-12);
  EXPECT_NEAR(s->lr_at(180), 0.0005, 1e-12);
  EXPECT_NEAR(s->lr_at(210), 0.00005, 1e-12);
  EXPECT_NEAR(s->lr_at(239.99), 0.00005, 1e-12);
}

TEST(MultiStepLR, KDKindScalesMilestonesToTheRunLength) {
  ScheduleSpec spec;
  spec.kind = "kd";
  spec.base_lr = 0.1;
  spec.epochs = 24;  // milestones 15, 18, 21
  auto s = make_schedule(spec);
  EXPECT_DOUBLE_EQ(s->lr_at(14.99), 0.1);
  EXPECT_NEAR(s->lr_at(15), 0.01, 1e-12);
  EXPECT_NEAR(s->lr_at(18), 0.001, 1e-12);
  EXPECT_NEAR(s->lr_at(21), 0.0001, 1e-12);
  EXPECT_EQ(s->config().at("milestones"), nlohmann::json({15.0, 18.0, 21.0}));
}

TEST(MultiStepLR, PerStepValuesUseFractionalEpochs) {
  MultiStepLR s(1.0, {2.5}, 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at_step(2, 49, 100), 1.0);  // epoch 2.49
  EXPECT_DOUBLE_EQ(s.lr_at_step(2, 50, 100), 0.5);  // epoch 2.5
  EXPECT_THROW(s.lr_at_step(0, 0, 0), Error);
}

TEST(CosineLR, FallsFromBaseToFloorWithHalfwayMean) {
  CosineLR s(0.1, 0.001, 0.0, 10.0);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_NEAR(s.lr_at(5), (0.1 + 0.001) / 2, 1e-12);
  EXPECT_NEAR(s.lr_at(10), 0.001, 1e-15);
  EXPECT_NEAR(s.lr_at(12), 0.001, 1e-15);
  EXPECT_NEAR(s.lr_at(2.5), 0.001 + 0.099 * 0.5 * (1 + std::cos(std::acos(-1.0) / 4)), 1e-12);
  for (double e = 0; e < 10; e += 0.25) EXPECT_GT(s.lr_at(e), s.lr_at(e + 0.25)) << e;  // strictly decreasing
}

TEST(WarmupLR, RampsLinearlyToTheWrappedScheduleThenFollowsIt) {
  ScheduleSpec spec;
  spec.kind = "cosine";
  spec.base_lr = 0.2;
  spec.epochs = 12;
  spec.warmup_epochs = 2;
  spec.warmup_start_factor = 0.0;
  auto s = make_schedule(spec);
  EXPECT_DOUBLE_EQ(s->lr_at(0), 0.0);
  EXPECT_NEAR(s->lr_at(0.5), 0.05, 1e-12);
  EXPECT_NEAR(s->lr_at(1.0), 0.1, 1e-12);
  EXPECT_NEAR(s->lr_at(2.0), 0.2, 1e-12);           // the cosine starts after the warm-up
  EXPECT_NEAR(s->lr_at(7.0), 0.1, 1e-12);           // cosine midpoint over [2, 12]
  EXPECT_NEAR(s->lr_at(12.0), 0.0, 1e-12);
  EXPECT_EQ(s->config().at("type"), "warmup");
  EXPECT_EQ(s->config().at("then").at("type"), "cosine");
}

TEST(WarmupLR, InFrontOfMultistepUsesTheFirstRate) {
  ScheduleSpec spec = kd_literature_preset();
  spec.warmup_epochs = 5;
  spec.warmup_start_factor = 0.1;
  auto s = make_schedule(spec);
  EXPECT_NEAR(s->lr_at(0), 0.005, 1e-12);
  EXPECT_NEAR(s->lr_at(2.5), 0.05 * 0.55, 1e-12);
  EXPECT_DOUBLE_EQ(s->lr_at(5), 0.05);
  EXPECT_NEAR(s->lr_at(200), 0.0005, 1e-12);
}

TEST(LRSchedule, ConfigTableRebuildsTheSameSchedule) {
  std::vector<ScheduleSpec> specs;
  specs.push_back(kd_literature_preset());
  ScheduleSpec c;
  c.kind = "cosine";
  c.base_lr = 0.1;
  c.min_lr = 1e-4;
  c.epochs = 30;
  c.warmup_epochs = 1.5;
  c.warmup_start_factor = 0.01;
  specs.push_back(c);
  ScheduleSpec k;
  k.kind = "constant";
  k.base_lr = 0.3;
  specs.push_back(k);
  for (const ScheduleSpec& spec : specs) {
    auto a = make_schedule(spec);
    auto b = schedule_from_json(nlohmann::json::parse(a->config().dump()));
    EXPECT_EQ(a->config(), b->config());
    for (double e = 0; e < static_cast<double>(spec.epochs); e += 0.37) EXPECT_EQ(a->lr_at(e), b->lr_at(e)) << e;
  }
}

TEST(LRSchedule, BadSettingsAreErrorsNamingTheProblem) {
  ScheduleSpec s;
  s.kind = "triangle";
  EXPECT_THROW(make_schedule(s), Error);
  s = kd_literature_preset();
  s.milestones = {150, 140};
  EXPECT_THROW(make_schedule(s), Error);
  s = kd_literature_preset();
  s.milestones = {300};
  EXPECT_THROW(make_schedule(s), Error);
  s = kd_literature_preset();
  s.warmup_epochs = 240;
  EXPECT_THROW(make_schedule(s), Error);
  s.kind = "cosine";
  s.warmup_epochs = 0;
  s.min_lr = 1.0;  // above the base rate
  try {
    make_schedule(s);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("floor"), std::string::npos) << e.what();
  }
  EXPECT_THROW(schedule_from_json(nlohmann::json{{"type", "multistep"}}), Error);
}
