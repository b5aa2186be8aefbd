#include "components/distill/losses/cross_entropy.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

CrossEntropyLoss::CrossEntropyLoss(double loss_weight)
    : DistillLoss("CrossEntropyLoss", loss_weight) {}

std::shared_ptr<DistillLoss> CrossEntropyLoss::from_args(Args& args, const BuildContext&) {
  return std::make_shared<CrossEntropyLoss>(args.get<double>("loss_weight", 1.0));
}

std::vector<LossArgument> CrossEntropyLoss::arguments() const {
  return {{"preds_S"}, {"preds_T"}};
}

torch::Tensor CrossEntropyLoss::forward(const LossInputs& inputs) {
  const auto& preds_s = loss_input(inputs, "preds_S", name());
  const auto labels = loss_input(inputs, "preds_T", name()).detach().argmax(1);
  return loss_weight_ * torch::nll_loss(torch::log_softmax(preds_s, 1), labels);
}

LabelCrossEntropy::LabelCrossEntropy(double loss_weight) : DistillLoss("LabelCrossEntropy", loss_weight) {}

std::shared_ptr<DistillLoss> LabelCrossEntropy::from_args(Args& args, const BuildContext&) {
  return std::make_shared<LabelCrossEntropy>(args.get<double>("loss_weight", 1.0));
}

std::vector<LossArgument> LabelCrossEntropy::arguments() const { return {{"cls_score"}, {"label"}}; }

torch::Tensor LabelCrossEntropy::forward(const LossInputs& inputs) {
  const auto& score = loss_input(inputs, "cls_score", name());
  const auto& label = loss_input(inputs, "label", name());
  const auto log_p = torch::log_softmax(score, 1);
  if (label.is_floating_point()) return loss_weight_ * -(label * log_p).sum(1).mean();
  return loss_weight_ * torch::nll_loss(log_p, label);
}

}  // namespace razor::distill
