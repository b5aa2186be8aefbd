#include "components/distill/losses/datafree_losses.h"

#include <cmath>

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
const std::vector<std::string> kNormTypes = {"abs", "norm"};
}

OnehotLikeLoss::OnehotLikeLoss(double loss_weight) : DistillLoss("OnehotLikeLoss", loss_weight) {}

std::shared_ptr<DistillLoss> OnehotLikeLoss::from_args(Args& args, const BuildContext&) {
  return std::make_shared<OnehotLikeLoss>(args.get<double>("loss_weight", 1.0));
}

std::vector<LossArgument> OnehotLikeLoss::arguments() const { return {{"preds_T"}}; }

torch::Tensor OnehotLikeLoss::forward(const LossInputs& inputs) {
  const auto& preds_t = loss_input(inputs, "preds_T", name());
  auto fake_labels = preds_t.detach().argmax(1);
  return loss_weight_ * torch::nll_loss(torch::log_softmax(preds_t, 1), fake_labels);
}

InformationEntropyLoss::InformationEntropyLoss(double loss_weight, bool gather)
    : DistillLoss("InformationEntropyLoss", loss_weight), gather_(gather) {}

std::shared_ptr<DistillLoss> InformationEntropyLoss::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 1.0);
  return std::make_shared<InformationEntropyLoss>(loss_weight, args.get<bool>("gather", true));
}

std::vector<LossArgument> InformationEntropyLoss::arguments() const { return {{"preds_T"}}; }

torch::Tensor InformationEntropyLoss::forward(const LossInputs& inputs) {
  // TODO(dist): with gather and world_size > 1, all-gather preds_T (with gradient) first.
  const auto& preds_t = loss_input(inputs, "preds_T", name());
  auto class_prob = torch::softmax(preds_t, 1).mean(0);
  return loss_weight_ * (class_prob * torch::log10(class_prob)).sum();
}

ActivationLoss::ActivationLoss(double loss_weight, std::string norm_type)
    : DistillLoss("ActivationLoss", loss_weight), norm_type_(std::move(norm_type)) {
  check_choice("ActivationLoss", "norm_type", norm_type_, kNormTypes);
}

std::shared_ptr<DistillLoss> ActivationLoss::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 1.0);
  return std::make_shared<ActivationLoss>(loss_weight,
                                          read_choice(args, "norm_type", "abs", kNormTypes));
}

std::vector<LossArgument> ActivationLoss::arguments() const { return {{"feat_T"}}; }

torch::Tensor ActivationLoss::forward(const LossInputs& inputs) {
  const auto& feat = loss_input(inputs, "feat_T", name());
  auto flat = feat.reshape({feat.size(0), -1});
  auto loss = norm_type_ == "norm" ? -flat.norm() : -flat.abs().mean();
  return loss_weight_ * loss;
}

}  // namespace razor::distill
