#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <tuple>

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

/// MMRazor's BYOT auxiliary block (attention mask, then DARTS separable convs down to
/// `out_channel`, average pool, fc) written out in plain LibTorch functions over the
/// connector's parameters, in training mode (BatchNorm on batch statistics).
class PlainByotBlock {
 public:
  PlainByotBlock(const torch::nn::Module& connector, int64_t stride, int64_t pool_size)
      : stride_(stride), pool_size_(pool_size) {
    for (const auto& item : connector.named_parameters()) params_[item.key()] = item.value();
  }

  /// {pooled feature, logits}.
  std::pair<torch::Tensor, torch::Tensor> operator()(const torch::Tensor& x) const {
    auto mask = separable_conv(x, "attention", 0);
    mask = torch::relu(batch_norm(mask, "attention.8"));
    mask = torch::nn::functional::interpolate(
        mask, torch::nn::functional::InterpolateFuncOptions()
                  .scale_factor(std::vector<double>{2.0, 2.0})
                  .mode(torch::kBilinear)
                  .align_corners(false));
    auto y = x * torch::sigmoid(mask);
    // in_channel 4 -> out_channel 16: two doublings of 8 layers each.
    y = separable_conv(y, "scala", 0);
    y = separable_conv(y, "scala", 8);
    auto feature = torch::avg_pool2d(y, {pool_size_, pool_size_}).reshape({x.size(0), -1});
    return {feature, torch::linear(feature, param("fc.weight"), param("fc.bias"))};
  }

 private:
  const torch::Tensor& param(const std::string& name) const { return params_.at(name); }

  torch::Tensor batch_norm(const torch::Tensor& x, const std::string& prefix) const {
    return torch::batch_norm(x, param(prefix + ".weight"), param(prefix + ".bias"), {}, {},
                             /*training=*/true, 0.1, 1e-5, false);
  }

  // ReLU, depthwise 3x3 (stride), 1x1, BN, ReLU, depthwise 3x3, 1x1, BN: layers first..first+7.
  torch::Tensor separable_conv(torch::Tensor x, const std::string& seq, int64_t first) const {
    auto at = [&](int64_t i) { return seq + "." + std::to_string(first + i); };
    x = torch::relu(x);
    x = torch::conv2d(x, param(at(1) + ".weight"), {}, stride_, 1, 1, x.size(1));
    x = torch::conv2d(x, param(at(2) + ".weight"));
    x = torch::relu(batch_norm(x, at(3)));
    x = torch::conv2d(x, param(at(5) + ".weight"), {}, 1, 1, 1, x.size(1));
    x = torch::conv2d(x, param(at(6) + ".weight"));
    return batch_norm(x, at(7));
  }

  int64_t stride_, pool_size_;
  std::map<std::string, torch::Tensor> params_;
};

const torch::Tensor& loss_named(const LossMap& losses, const std::string& name) {
  auto it = std::find_if(losses.begin(), losses.end(),
                         [&](const auto& l) { return l.first == name; });
  REQUIRE(it != losses.end());
  return it->second;
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

  // Each distill loss, computed here from the recorded stage-1 feature, the final logits and
  // the pooled feature, through the auxiliary block written out in plain LibTorch.
  auto& aux = algorithm->distiller().connector("aux");
  const auto& student = algorithm->distiller().student_recorders();
  const auto& teacher = algorithm->distiller().teacher_recorders();
  torch::Tensor stage1 = student.get("s1").get(1);
  torch::Tensor final_logits = teacher.get("fc").get().detach().to(torch::kDouble);
  torch::Tensor pooled = teacher.get("gap").get().detach().to(torch::kDouble);
  REQUIRE(teacher.get("labels").get(0, 1).equal(batch.targets));
  torch::Tensor aux_feature, aux_logits;
  {
    torch::NoGradGuard no_grad;
    std::tie(aux_feature, aux_logits) = PlainByotBlock(aux, /*stride=*/2, /*pool_size=*/4)(stage1);
  }
  aux_feature = aux_feature.to(torch::kDouble);
  aux_logits = aux_logits.to(torch::kDouble);
  const double n = static_cast<double>(batch.targets.size(0));
  double label = 0;
  for (int64_t i = 0; i < batch.targets.size(0); ++i) {
    label -= torch::log_softmax(aux_logits[i], 0)[batch.targets[i].item<int64_t>()].item<double>();
  }
  label = 0.7 * label / n;
  const double tau = 3.0;
  auto p_t = torch::softmax(final_logits / tau, 1);
  const double soft = 0.3 * tau * tau *
                      (p_t * (torch::log_softmax(final_logits / tau, 1) -
                              torch::log_softmax(aux_logits / tau, 1)))
                          .sum()
                          .item<double>() /
                      n;
  const double feat = 0.03 * std::sqrt((aux_feature - pooled).pow(2).sum().item<double>());
  CHECK(loss_named(losses, "distill.loss_label").item<double>() == Approx(label).epsilon(1e-5));
  CHECK(loss_named(losses, "distill.loss_soft").item<double>() == Approx(soft).epsilon(1e-4));
  CHECK(loss_named(losses, "distill.loss_feat").item<double>() == Approx(feat).epsilon(1e-5));

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
