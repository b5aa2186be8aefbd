#pragma once
// Cross-entropy as a hookable module, called with {logits, target} so that recorders can
// take the target (data_idx 1) as well as the logits (data_idx 0).
#include <string>

#include "components/nn/module.h"

namespace razor::nn {

struct CrossEntropyLossOptions {
  /// mmcls label smoothing: the target becomes (1 - e) * onehot + e / num_classes.
  double label_smooth_val = 0.0;
  /// Multiplies the reduced loss.
  double loss_weight = 1.0;
  /// "mean" (over the batch), "sum" or "none" (one value per sample).
  std::string reduction = "mean";

  // clang-format off
  CrossEntropyLossOptions& with_label_smooth_val(double v) { label_smooth_val = v; return *this; }
  CrossEntropyLossOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  CrossEntropyLossOptions& with_reduction(std::string v) { reduction = std::move(v); return *this; }
  // clang-format on
};

/// Inputs: logits N x C and a target that is either N class indices (int64) or N x C soft
/// probabilities (floating point, e.g. mixup or a teacher's scores).
class CrossEntropyLoss : public Module {
 public:
  explicit CrossEntropyLoss(CrossEntropyLossOptions options = {});
  const CrossEntropyLossOptions& options() const { return options_; }

  /// The same as `(*this)({logits, target})`.
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& target) {
    return Module::operator()(Inputs{logits, target});
  }
  using Module::operator();

 protected:
  torch::Tensor forward_inputs(const Inputs& inputs) override;

 private:
  CrossEntropyLossOptions options_;
  int64_t reduction_;  // at::Reduction value
};

}  // namespace razor::nn
