#pragma once
// KDSoftCELoss (MMRazor kd_soft_ce_loss.py, mmcls soft_cross_entropy): the cross-entropy of
// S/tau against the soft label softmax(T/tau), summed over the last dimension, optionally
// weighted per sample, reduced, and multiplied by tau^2 when mult_tem_square.
#include <memory>
#include <string>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

struct KDSoftCELossOptions {
  /// Temperature.
  double tau = 1.0;
  /// "mean" (over samples), "sum" or "none" (one value per sample, not a scalar: the caller
  /// must reduce it).
  std::string reduction = "mean";
  /// Multiply by tau^2.
  bool mult_tem_square = true;
  /// Multiplies the loss.
  double loss_weight = 1.0;

  // clang-format off
  KDSoftCELossOptions& with_tau(double v) { tau = v; return *this; }
  KDSoftCELossOptions& with_reduction(std::string v) { reduction = std::move(v); return *this; }
  KDSoftCELossOptions& with_mult_tem_square(bool v) { mult_tem_square = v; return *this; }
  KDSoftCELossOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  // clang-format on
};

/// Arguments: preds_S, preds_T (N x C), and optionally weight (N per-sample weights).
/// MMRazor's avg_factor and reduction_override forward arguments are not tensors and are
/// not supported.
class KDSoftCELoss : public DistillLoss {
 public:
  explicit KDSoftCELoss(KDSoftCELossOptions options = {});
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const KDSoftCELossOptions& options() const { return options_; }

 private:
  KDSoftCELossOptions options_;
};

}  // namespace razor::distill
