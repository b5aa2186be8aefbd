#pragma once
// ATLoss, attention transfer (MMRazor at_loss.py): A(x) = the row-L2-normalised channel mean
// of x^2, flattened per sample; loss = mean((A(S) - A(T))^2).
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: s_feature, t_feature (N x C x H x W; channels may differ, H x W may not).
class ATLoss : public DistillLoss {
 public:
  explicit ATLoss(double loss_weight = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
};

}  // namespace razor::distill
