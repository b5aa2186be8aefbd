#pragma once
// The data-free (DAFL) losses on the teacher's outputs for generated images (MMRazor
// dafl_loss.py). They take only teacher inputs: gradients flow through the teacher to the
// generator, so nothing is detached.
#include <memory>
#include <string>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// CE(T, argmax T): how one-hot the teacher's predictions are. Argument: preds_T.
class OnehotLikeLoss : public DistillLoss {
 public:
  explicit OnehotLikeLoss(double loss_weight = 1.0);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
};

/// sum(p * log10 p) of the batch-mean class probabilities p (the negative entropy, in log10,
/// as MMRazor): low when the classes are balanced. Argument: preds_T.
/// `gather` (default true) would gather the predictions of every process first; razor's
/// loss is single-process for now, so it is accepted and has no effect.
class InformationEntropyLoss : public DistillLoss {
 public:
  explicit InformationEntropyLoss(double loss_weight = 1.0, bool gather = true);
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  bool gather() const { return gather_; }

 private:
  bool gather_;
};

/// -mean(|f|) (norm_type "abs", default) or -||f||_2 (norm_type "norm") of the teacher's
/// feature map f. Argument: feat_T.
class ActivationLoss : public DistillLoss {
 public:
  explicit ActivationLoss(double loss_weight = 1.0, std::string norm_type = "abs");
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const std::string& norm_type() const { return norm_type_; }

 private:
  std::string norm_type_;
};

}  // namespace razor::distill
