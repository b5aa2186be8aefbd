#include "components/distill/losses/mgd_loss.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

MGDLoss::MGDLoss(double alpha_mgd, double loss_weight)
    : DistillLoss("MGDLoss", loss_weight), alpha_mgd_(alpha_mgd) {}

std::shared_ptr<DistillLoss> MGDLoss::from_args(Args& args, const BuildContext&) {
  const double alpha_mgd = args.get<double>("alpha_mgd", 2e-5);
  return std::make_shared<MGDLoss>(alpha_mgd, args.get<double>("loss_weight", 1.0));
}

std::vector<LossArgument> MGDLoss::arguments() const { return {{"preds_S"}, {"preds_T"}}; }

torch::Tensor MGDLoss::forward(const LossInputs& inputs) {
  const auto& s = loss_input(inputs, "preds_S", name());
  const auto& t = loss_input(inputs, "preds_T", name());
  RAZOR_CHECK(s.sizes() == t.sizes(), "MGDLoss: student and teacher shapes differ: ", s.sizes(),
              " vs ", t.sizes());
  auto loss = (s - t).pow(2).sum() / static_cast<double>(t.size(0));
  return loss_weight_ * alpha_mgd_ * loss;
}

}  // namespace razor::distill
