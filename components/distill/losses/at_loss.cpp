#include "components/distill/losses/at_loss.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
torch::Tensor attention(const torch::Tensor& x) {
  auto a = x.pow(2).mean(1).reshape({x.size(0), -1});
  // F.normalize: x / max(||x||, 1e-12).
  return a / a.norm(2, 1, true).clamp_min(1e-12);
}
}  // namespace

ATLoss::ATLoss(double loss_weight) : DistillLoss("ATLoss", loss_weight) {}

std::shared_ptr<DistillLoss> ATLoss::from_args(Args& args, const BuildContext&) {
  return std::make_shared<ATLoss>(args.get<double>("loss_weight", 1.0));
}

std::vector<LossArgument> ATLoss::arguments() const { return {{"s_feature"}, {"t_feature"}}; }

torch::Tensor ATLoss::forward(const LossInputs& inputs) {
  const auto& s = loss_input(inputs, "s_feature", name());
  const auto& t = loss_input(inputs, "t_feature", name());
  return loss_weight_ * (attention(s) - attention(t)).pow(2).mean();
}

}  // namespace razor::distill
