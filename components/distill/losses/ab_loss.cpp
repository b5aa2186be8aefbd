#include "components/distill/losses/ab_loss.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

ABLoss::ABLoss(double loss_weight, double margin)
    : DistillLoss("ABLoss", loss_weight), margin_(margin) {}

std::shared_ptr<DistillLoss> ABLoss::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 1.0);
  return std::make_shared<ABLoss>(loss_weight, args.get<double>("margin", 1.0));
}

std::vector<LossArgument> ABLoss::arguments() const { return {{"s_feature"}, {"t_feature"}}; }

torch::Tensor ABLoss::forward(const LossInputs& inputs) {
  const auto& s = loss_input(inputs, "s_feature", name());
  const auto& t = loss_input(inputs, "t_feature", name());
  const double m = margin_;
  auto below = ((s > -m) & (t <= 0)).to(s.scalar_type());
  auto above = ((s <= m) & (t > 0)).to(s.scalar_type());
  auto loss = ((s + m).pow(2) * below + (s - m).pow(2) * above).abs().sum();
  return loss_weight_ * loss / static_cast<double>(s.size(0)) / 1000.0 * 3.0;
}

}  // namespace razor::distill
