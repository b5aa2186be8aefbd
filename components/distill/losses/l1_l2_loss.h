#pragma once
// L1Loss and L2Loss between a student and a teacher feature (MMRazor l1_loss.py, l2_loss.py).
#include <memory>
#include <string>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// |S - T| reduced by "mean" (default), "sum" or "none" (elementwise, not a scalar: the caller
/// must reduce it). MMRazor also lists "batchmean", which torch's l1_loss then rejects at the
/// first call; razor rejects it at construction. The deprecated size_average/reduce are not
/// supported. Arguments: s_feature, t_feature.
class L1Loss : public DistillLoss {
 public:
  explicit L1Loss(double loss_weight = 1.0, std::string reduction = "mean");
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const std::string& reduction() const { return reduction_; }

 private:
  std::string reduction_;
};

struct L2LossOptions {
  /// Multiplies the loss.
  double loss_weight = 1.0;
  /// Flatten each sample and scale it to unit L2 norm (times mult) first.
  bool normalize = true;
  /// Multiplier of the normalised features.
  double mult = 1.0;
  /// Divide the summed squares by the number of elements instead of by N.
  bool div_element = false;
  /// Return sqrt of the summed squares (torch.dist, p=2) instead of dividing.
  bool dist = false;

  // clang-format off
  L2LossOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  L2LossOptions& with_normalize(bool v) { normalize = v; return *this; }
  L2LossOptions& with_mult(double v) { mult = v; return *this; }
  L2LossOptions& with_div_element(bool v) { div_element = v; return *this; }
  L2LossOptions& with_dist(bool v) { dist = v; return *this; }
  // clang-format on
};

/// sum((S - T)^2), then sqrt (dist), / numel (div_element) or / N. Arguments: s_feature,
/// t_feature.
class L2Loss : public DistillLoss {
 public:
  explicit L2Loss(L2LossOptions options = {});
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const L2LossOptions& options() const { return options_; }

 private:
  L2LossOptions options_;
};

}  // namespace razor::distill
