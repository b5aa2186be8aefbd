#pragma once
// The base of every distillation loss. A loss names its forward arguments (MMRazor's
// argument names: "preds_S", "preds_T", "gt_labels", "s_feature", ...) so that a distiller's
// `loss_forward_mappings` can say, per argument, which recorder feeds it; a mapping to an
// argument the loss does not have is a config error naming it.
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "engine/registry.h"

namespace razor {

/// One forward argument of a loss.
struct LossArgument {
  std::string name;
  /// Optional arguments may be left out of the mapping (they have a default in MMRazor).
  bool required = true;
};

/// Named inputs of one loss call.
using LossInputs = std::map<std::string, torch::Tensor>;

class DistillLoss : public torch::nn::Module {
 public:
  explicit DistillLoss(const std::string& name, double loss_weight = 1.0)
      : torch::nn::Module(name), loss_weight_(loss_weight) {}

  /// The forward arguments, in MMRazor's order.
  virtual std::vector<LossArgument> arguments() const = 0;

  /// The weighted loss (a scalar). `inputs` holds every required argument (checked by the
  /// caller against arguments()) and possibly optional ones.
  virtual torch::Tensor forward(const LossInputs& inputs) = 0;

  double loss_weight() const { return loss_weight_; }
  /// Parameter schedulers change it during training (distillation weight warm-up or decay).
  void set_loss_weight(double weight) { loss_weight_ = weight; }

 protected:
  double loss_weight_;
};

/// "distill_losses": KLDivergence, DKDLoss, ... (section 3 of MMRAZOR_SEMANTICS.md).
Registry<DistillLoss>& distill_loss_registry();
void register_distill_losses();

}  // namespace razor
