#pragma once
// ChannelWiseDivergence (MMRazor cwd.py): each channel's H x W map becomes a distribution
// softmax(x/tau); the loss is tau^2 * sum KL(T || S) / (N * C).
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: preds_S, preds_T (N x C x H x W, the same spatial size).
class ChannelWiseDivergence : public DistillLoss {
 public:
  explicit ChannelWiseDivergence(double tau = 1.0, double loss_weight = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  double tau() const { return tau_; }

 private:
  double tau_;
};

}  // namespace razor::distill
