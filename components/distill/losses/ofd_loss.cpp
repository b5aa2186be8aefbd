#include "components/distill/losses/ofd_loss.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

OFDLoss::OFDLoss(double loss_weight, double mul_factor)
    : DistillLoss("OFDLoss", loss_weight), mul_factor_(mul_factor) {
  RAZOR_CHECK(mul_factor_ != 0.0, "OFDLoss: mul_factor must not be 0");
}

std::shared_ptr<DistillLoss> OFDLoss::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 1.0);
  const double mul_factor = args.get<double>("mul_factor", 1000.0);
  if (mul_factor == 0.0) args.fail("mul_factor", "must not be 0");
  return std::make_shared<OFDLoss>(loss_weight, mul_factor);
}

std::vector<LossArgument> OFDLoss::arguments() const { return {{"s_feature"}, {"t_feature"}}; }

torch::Tensor OFDLoss::forward(const LossInputs& inputs) {
  const auto& s = loss_input(inputs, "s_feature", name());
  const auto& t = loss_input(inputs, "t_feature", name());
  auto mask = ((s > t) | (t > 0)).to(s.scalar_type());
  auto loss = ((s - t).pow(2) * mask).sum() / static_cast<double>(s.size(0)) / mul_factor_;
  return loss_weight_ * loss;
}

}  // namespace razor::distill
