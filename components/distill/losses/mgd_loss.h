#pragma once
// MGDLoss, Masked Generative Distillation (MMRazor mgd_loss.py): alpha_mgd * sum((S - T)^2) / N.
// The masking and generation happen in MGDConnector. MMRazor's MGDLoss has no loss_weight
// (alpha_mgd is its weight); razor accepts one too, default 1, multiplying alpha_mgd's result.
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: preds_S, preds_T (the same shape).
class MGDLoss : public DistillLoss {
 public:
  explicit MGDLoss(double alpha_mgd = 2e-5, double loss_weight = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  double alpha_mgd() const { return alpha_mgd_; }

 private:
  double alpha_mgd_;
};

}  // namespace razor::distill
