#include "components/distill/losses/ft_loss.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
torch::Tensor factor(const torch::Tensor& x) {
  auto flat = x.reshape({x.size(0), -1});
  return flat / flat.norm(2, 1, true).clamp_min(1e-12);
}
}  // namespace

FTLoss::FTLoss(double loss_weight) : DistillLoss("FTLoss", loss_weight) {}

std::shared_ptr<DistillLoss> FTLoss::from_args(Args& args, const BuildContext&) {
  return std::make_shared<FTLoss>(args.get<double>("loss_weight", 1.0));
}

std::vector<LossArgument> FTLoss::arguments() const { return {{"s_feature"}, {"t_feature"}}; }

torch::Tensor FTLoss::forward(const LossInputs& inputs) {
  const auto& s = loss_input(inputs, "s_feature", name());
  const auto& t = loss_input(inputs, "t_feature", name());
  return loss_weight_ * (factor(s) - factor(t)).abs().mean();
}

}  // namespace razor::distill
