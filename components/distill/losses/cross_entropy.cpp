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

}  // namespace razor::distill
