#pragma once
// KLDivergence (MMRazor kl_divergence.py): tau^2 * KL(softmax(T/tau) || softmax(S/tau)),
// the softmax taken over dimension 1 of (N, C) or (N, C, H, W) logits.
#include <memory>
#include <string>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

struct KLDivergenceOptions {
  /// Temperature.
  double tau = 1.0;
  /// "batchmean" (sum / N), "sum", "mean" (sum / numel) or "none" (elementwise, not a scalar:
  /// the caller must reduce it).
  std::string reduction = "batchmean";
  /// Detach the teacher's logits (false in data-free distillation, where the generator
  /// learns through the teacher).
  bool teacher_detach = true;
  /// Multiplies the loss.
  double loss_weight = 1.0;

  // clang-format off
  KLDivergenceOptions& with_tau(double v) { tau = v; return *this; }
  KLDivergenceOptions& with_reduction(std::string v) { reduction = std::move(v); return *this; }
  KLDivergenceOptions& with_teacher_detach(bool v) { teacher_detach = v; return *this; }
  KLDivergenceOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  // clang-format on
};

/// Arguments: preds_S, preds_T.
class KLDivergence : public DistillLoss {
 public:
  explicit KLDivergence(KLDivergenceOptions options = {});
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const KLDivergenceOptions& options() const { return options_; }

 private:
  KLDivergenceOptions options_;
};

}  // namespace razor::distill
