#pragma once
// PKDLoss, Pearson-correlation feature distillation (MMRazor pkd_loss.py): both maps are
// standardised per channel over (N, H, W) with the unbiased std (+1e-6), and the loss is
// MSE(norm S, norm T) / 2. MMRazor also takes tuples of levels (summing the levels); razor's
// inputs are single tensors, so a multi-level PKD is one PKDLoss per level.
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: preds_S, preds_T (N x C x H x W). When the heights differ, the student is
/// bilinearly resized to the teacher's size (resize_stu, default), or the teacher to the
/// student's.
class PKDLoss : public DistillLoss {
 public:
  explicit PKDLoss(double loss_weight = 1.0, bool resize_stu = true);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;

 private:
  bool resize_stu_;
};

}  // namespace razor::distill
