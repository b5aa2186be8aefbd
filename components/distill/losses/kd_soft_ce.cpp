#include "components/distill/losses/kd_soft_ce.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
const std::vector<std::string> kSoftCeReductions = {"none", "mean", "sum"};
}

KDSoftCELoss::KDSoftCELoss(KDSoftCELossOptions options)
    : DistillLoss("KDSoftCELoss", options.loss_weight), options_(std::move(options)) {
  check_choice("KDSoftCELoss", "reduction", options_.reduction, kSoftCeReductions);
}

std::shared_ptr<DistillLoss> KDSoftCELoss::from_args(Args& args, const BuildContext&) {
  KDSoftCELossOptions options;
  options.tau = args.get<double>("tau", options.tau);
  options.reduction = read_choice(args, "reduction", options.reduction, kSoftCeReductions);
  options.mult_tem_square = args.get<bool>("mult_tem_square", options.mult_tem_square);
  options.loss_weight = args.get<double>("loss_weight", options.loss_weight);
  return std::make_shared<KDSoftCELoss>(options);
}

std::vector<LossArgument> KDSoftCELoss::arguments() const {
  return {{"preds_S"}, {"preds_T"}, {"weight", false}};
}

torch::Tensor KDSoftCELoss::forward(const LossInputs& inputs) {
  const auto& preds_s = loss_input(inputs, "preds_S", name());
  const auto& preds_t = loss_input(inputs, "preds_T", name());
  const auto weight = optional_input(inputs, "weight");
  const double tau = options_.tau;
  auto soft_label = torch::softmax(preds_t / tau, -1);
  auto loss = -(soft_label * torch::log_softmax(preds_s / tau, -1)).sum(-1);
  if (weight.defined()) loss = loss * weight.to(loss.scalar_type());
  loss = reduce_loss(loss, options_.reduction) * loss_weight_;
  if (options_.mult_tem_square) loss = loss * (tau * tau);
  return loss;
}

}  // namespace razor::distill
