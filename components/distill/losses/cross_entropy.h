#pragma once
// CrossEntropyLoss of the distill registry (MMRazor losses/cross_entropy_loss.py): the
// student's cross-entropy against the teacher's argmax as a hard label. (The models registry
// has a different CrossEntropyLoss, razor::nn::CrossEntropyLoss, for ground-truth labels.)
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: preds_S, preds_T (N x C). The teacher is always detached.
class CrossEntropyLoss : public DistillLoss {
 public:
  explicit CrossEntropyLoss(double loss_weight = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
};

/// Cross entropy of `cls_score` against the true `label` (class indices, or soft labels
/// N x C): mmcls's CrossEntropyLoss, which BYOT uses on each auxiliary head.
class LabelCrossEntropy : public DistillLoss {
 public:
  explicit LabelCrossEntropy(double loss_weight = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
};

}  // namespace razor::distill
