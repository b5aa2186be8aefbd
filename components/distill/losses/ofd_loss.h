#pragma once
// OFDLoss, "A Comprehensive Overhaul of Feature Distillation" (MMRazor ofd_loss.py): the
// partial L2 loss sum((S - T)^2 where S > T or T > 0) / N / mul_factor. The teacher feature
// usually comes through OFDTeacherConnector (max(T, margin)).
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// Arguments: s_feature, t_feature (the same shape).
class OFDLoss : public DistillLoss {
 public:
  explicit OFDLoss(double loss_weight = 1.0, double mul_factor = 1000.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  double mul_factor() const { return mul_factor_; }

 private:
  double mul_factor_;
};

}  // namespace razor::distill
