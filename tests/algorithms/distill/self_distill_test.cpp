#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "algorithms/distill/self_distill.h"
#include "apps/register_all.h"
#include "components/architectures/image_classifier.h"
#include "engine/error.h"

using namespace razor;

namespace {

/// BYOT on a small ResNet-8: an auxiliary head on stage 1 learns from the labels and from
/// the network's own final logits.
Json byot_config() {
  Json classifier = {
      {"type", "ImageClassifier"},
      {"backbone", {{"type", "ResNet_CIFAR"}, {"depth", 8}, {"in_channels", 1}, {"base_channels", 4}}},
      {"neck", {{"type", "GlobalAveragePooling"}}},
      {"head", {{"type", "LinearClsHead"}, {"num_classes", 5}, {"in_channels", 16}}}};
  auto from_aux = [](int64_t idx) {
    return Json{{"from_student", true}, {"recorder", "s1"}, {"record_idx", 1}, {"connector", "aux"}, {"connector_idx", idx}};
  };
  Json distiller = {
      {"type", "BYOTDistiller"},
      {"student_recorders", {{"s1", {{"type", "ModuleOutputs"}, {"source", "backbone.layer1.0.relu"}}}}},
      {"teacher_recorders",
       {{"fc", {{"type", "ModuleOutputs"}, {"source", "head.fc"}}},
        {"gap", {{"type", "ModuleOutputs"}, {"source", "neck"}}},
        {"labels", {{"type", "ModuleInputs"}, {"source", "head.loss_module"}}}}},
      {"connectors",
       {{"aux",
         {{"type", "BYOTConnector"}, {"in_channel", 4}, {"out_channel", 16}, {"expansion", 1}, {"stride", 2}, {"num_classes", 5}}}}},
      {"distill_losses",
       {{"loss_label", {{"type", "LabelCrossEntropy"}, {"loss_weight", 0.7}}},
        {"loss_soft", {{"type", "KLDivergence"}, {"tau", 3.0}, {"loss_weight", 0.3}}},
        {"loss_feat", {{"type", "L2Loss"}, {"normalize", false}, {"dist", true}, {"loss_weight", 0.03}}}}},
      {"loss_forward_mappings",
       {{"loss_label", {{"cls_score", from_aux(1)}, {"label", {{"from_student", false}, {"recorder", "labels"}, {"data_idx", 1}}}}},
        {"loss_soft", {{"preds_S", from_aux(1)}, {"preds_T", {{"from_student", false}, {"recorder", "fc"}}}}},
        {"loss_feat", {{"s_feature", from_aux(0)}, {"t_feature", {{"from_student", false}, {"recorder", "gap"}}}}}}}};
  return {{"type", "SelfDistill"}, {"architecture", classifier}, {"distiller", distiller}};
}

}  // namespace

TEST_CASE("SelfDistill (BYOT): auxiliary heads learn from labels and the network's own outputs", "[distill]") {
  register_all();
  torch::manual_seed(0);
  Json table = byot_config();
  Args args = Args::of(table, "model");
  auto algorithm = build_model_as<SelfDistill>(args, {}, "a self-distillation model");
  algorithm->train();
  Batch batch{torch::randn({6, 1, 16, 16}), torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong), {}};
  LossMap losses = algorithm->loss(batch);
  REQUIRE(losses.size() == 4);
  CHECK(losses[0].first == "student.loss");
  CHECK(losses[1].first == "distill.loss_label");

  // The label loss is the cross entropy of the auxiliary logits, computed here by hand.
  auto& aux = algorithm->distiller().connector("aux");
  auto stage1 = algorithm->distiller().student_recorders().get("s1").get(1);
  auto aux_logits = aux.forward(stage1)[1];
  auto expected = 0.7 * torch::nll_loss(torch::log_softmax(aux_logits, 1), batch.targets);
  const auto& label_loss = std::find_if(losses.begin(), losses.end(), [](auto& l) { return l.first == "distill.loss_label"; })->second;
  CHECK(label_loss.item<double>() == Approx(expected.item<double>()).epsilon(1e-5));

  // Distill losses train the auxiliary head and the shallow stage, not the "teacher" (the
  // network's own final head): its records are detached.
  algorithm->zero_grad();
  LossMap distill_only(losses.begin() + 1, losses.end());
  total_loss(distill_only).backward();
  auto& fc = dynamic_cast<LinearClsHead&>(dynamic_cast<ImageClassifier&>(algorithm->architecture()).head()).fc();
  CHECK((!fc.weight.grad().defined() || fc.weight.grad().abs().sum().item<double>() == 0.0));
  double aux_grad = 0;
  for (auto& p : aux.parameters()) {
    if (p.grad().defined()) aux_grad += p.grad().abs().sum().item<double>();
  }
  CHECK(aux_grad > 0);
}
