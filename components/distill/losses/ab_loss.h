#pragma once
// ABLoss, activation-boundary transfer (MMRazor ab_loss.py): a piecewise quadratic that
// pushes student pre-activations past +-margin on the teacher's side of zero;
// sum / N / 1000 * 3.
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: s_feature, t_feature (the same shape).
class ABLoss : public DistillLoss {
 public:
  explicit ABLoss(double loss_weight = 1.0, double margin = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  double margin() const { return margin_; }

 private:
  double margin_;
};

}  // namespace razor::distill
