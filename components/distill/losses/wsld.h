#pragma once
// WSLD, Weighted Soft Label Distillation (MMRazor weighted_soft_label_distillation.py):
// the soft cross-entropy of each sample is weighted by 1 - exp(-max(ce_S / (ce_T + 1e-7), 0)),
// where ce_S and ce_T are the hard-label cross-entropies (tau 1) of the detached logits.
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

struct WSLDOptions {
  /// Temperature.
  double tau = 1.0;
  /// Number of classes; the logits must have exactly this many columns.
  int64_t num_classes = 1000;
  /// Multiplies the loss.
  double loss_weight = 1.0;

  // clang-format off
  WSLDOptions& with_tau(double v) { tau = v; return *this; }
  WSLDOptions& with_num_classes(int64_t v) { num_classes = v; return *this; }
  WSLDOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  // clang-format on
};

/// Arguments: student, teacher (N x C logits), gt_labels (N class indices).
class WSLD : public DistillLoss {
 public:
  explicit WSLD(WSLDOptions options = {});
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const WSLDOptions& options() const { return options_; }

 private:
  WSLDOptions options_;
};

}  // namespace razor::distill
