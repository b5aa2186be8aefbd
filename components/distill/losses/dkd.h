#pragma once
// DKDLoss, Decoupled Knowledge Distillation (MMRazor decoupled_kd.py):
// alpha * TCKD + beta * NCKD, each a tau^2-scaled KL divergence.
//
// MMRazor calls kl_div with size_average=False, which makes every reduction 'sum', and torch
// then divides by N only for 'batchmean': its 'mean' silently means 'sum'. razor implements
// the reductions as their names say: 'batchmean' = sum / N (MMRazor's default, unchanged),
// 'sum' = sum, 'mean' = the mean over the elements of each KL term (N x 2 for TCKD, N x C for
// NCKD). 'none' is rejected, as the two terms have different shapes.
#include <memory>
#include <string>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

struct DKDLossOptions {
  /// Temperature.
  double tau = 1.0;
  /// Weight of the target-class term (TCKD).
  double alpha = 1.0;
  /// Weight of the non-target-class term (NCKD).
  double beta = 1.0;
  /// "batchmean", "sum" or "mean" (see above).
  std::string reduction = "batchmean";
  /// Multiplies the loss.
  double loss_weight = 1.0;

  // clang-format off
  DKDLossOptions& with_tau(double v) { tau = v; return *this; }
  DKDLossOptions& with_alpha(double v) { alpha = v; return *this; }
  DKDLossOptions& with_beta(double v) { beta = v; return *this; }
  DKDLossOptions& with_reduction(std::string v) { reduction = std::move(v); return *this; }
  DKDLossOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  // clang-format on
};

/// Arguments: preds_S, preds_T (N x C logits), gt_labels (N class indices, int64).
class DKDLoss : public DistillLoss {
 public:
  explicit DKDLoss(DKDLossOptions options = {});
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const DKDLossOptions& options() const { return options_; }

 private:
  torch::Tensor kl(const torch::Tensor& log_p_s, const torch::Tensor& p_t) const;
  DKDLossOptions options_;
};

}  // namespace razor::distill
