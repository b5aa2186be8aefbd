#pragma once
// Relational Knowledge Distillation (MMRazor relational_kd.py): DistanceWiseRKD matches the
// mean-normalised pairwise distances of a batch, AngleWiseRKD the angles of every triplet,
// both with smooth L1 (beta 1, mean).
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: preds_S, preds_T (flattened per sample). loss_weight defaults to 25.
class DistanceWiseRKD : public DistillLoss {
 public:
  explicit DistanceWiseRKD(double loss_weight = 25.0, bool with_l2_norm = true);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;

 private:
  bool with_l2_norm_;
};

/// Arguments: preds_S, preds_T (flattened per sample). loss_weight defaults to 50.
class AngleWiseRKD : public DistillLoss {
 public:
  explicit AngleWiseRKD(double loss_weight = 50.0, bool with_l2_norm = true);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;

 private:
  bool with_l2_norm_;
};

}  // namespace razor::distill
