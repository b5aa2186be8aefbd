#pragma once
// FTLoss, Factor Transfer (MMRazor factor_transfer_loss.py): the mean absolute difference of
// the row-L2-normalised, flattened factors of student and teacher.
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: s_feature, t_feature (usually a Translator's and a Paraphraser's outputs).
class FTLoss : public DistillLoss {
 public:
  explicit FTLoss(double loss_weight = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
};

}  // namespace razor::distill
