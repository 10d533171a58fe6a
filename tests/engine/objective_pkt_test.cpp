// The `pkt` objective: RepDistiller's defaults (CE weight 1, beta 30000, no KD term), the feature it asks for after bind
// (feat[-1], the pooled vector), and its loss and gradients against the PyTorch reference of RepDistiller's total.
#include <gtest/gtest.h>

#include "engine/distill/objective.h"
#include "kernels/common/error.h"
#include "tests/engine/relational_objective_check.h"

using namespace islkd;

TEST(ObjectivePKT, DefaultsAreRepDistillersAndItAsksForFeat4AfterBind) {
  auto o = distill::make_objective("pkt");
  EXPECT_EQ(o->config(), (nlohmann::json{{"beta", 30000.0}, {"ce_weight", 1.0}}));
  EXPECT_TRUE(o->needs().needs_teacher());
  EXPECT_FALSE(o->needs().teacher_logits);
  EXPECT_TRUE(o->parameters().empty());
  EXPECT_EQ(distill::make_objective("pkt", o->config())->config(), o->config());
  EXPECT_THROW(distill::make_objective("pkt", {{"beta", -1.0}}), Error);
  EXPECT_THROW(distill::make_objective("pkt", {{"alpha", 1.0}}), Error);
  models::ModelConfig c;
  c.num_classes = 5, c.in_channels = 1;
  auto student = models::create_model("resnet8", c), teacher = models::create_model("resnet8x4", c);
  o->bind({student.get(), teacher.get(), {1, 16, 16}, 0});
  EXPECT_EQ(o->needs().student_features, std::vector<std::string>{"feat4"});
  EXPECT_EQ(o->needs().teacher_features, std::vector<std::string>{"feat4"});
}

TEST(ObjectivePKT, LossAndGradientsMatchRepDistillerInPyTorch) {
  EXPECT_LE(test::check_relational_objective_against_torch("pkt", "pkt", 30000.0), 1e-4);
}
