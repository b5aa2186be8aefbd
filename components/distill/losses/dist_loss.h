#pragma once
// DISTLoss, "Knowledge Distillation from A Stronger Teacher" (MMRazor dist_loss.py):
// tau^2 * (inter_loss_weight * (1 - mean row Pearson) + intra_loss_weight * (1 - mean column
// Pearson)) between softmax(S/tau) and softmax(T/tau).
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

struct DISTLossOptions {
  /// Weight of the inter-class (per-sample, over classes) relation.
  double inter_loss_weight = 1.0;
  /// Weight of the intra-class (per-class, over the batch) relation.
  double intra_loss_weight = 1.0;
  /// Temperature.
  double tau = 1.0;
  /// Multiplies the loss.
  double loss_weight = 1.0;
  /// Detach the teacher's logits.
  bool teacher_detach = true;

  // clang-format off
  DISTLossOptions& with_inter_loss_weight(double v) { inter_loss_weight = v; return *this; }
  DISTLossOptions& with_intra_loss_weight(double v) { intra_loss_weight = v; return *this; }
  DISTLossOptions& with_tau(double v) { tau = v; return *this; }
  DISTLossOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  DISTLossOptions& with_teacher_detach(bool v) { teacher_detach = v; return *this; }
  // clang-format on
};

/// Arguments: logits_S, logits_T (N x C).
class DISTLoss : public DistillLoss {
 public:
  explicit DISTLoss(DISTLossOptions options = {});
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const DISTLossOptions& options() const { return options_; }

 private:
  DISTLossOptions options_;
};

}  // namespace razor::distill
