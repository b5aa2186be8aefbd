#pragma once
// Classification heads (mmcls ClsHead / LinearClsHead). A head maps features to logits
// (forward) and computes its losses through its `loss_module` child, called with
// {logits, targets} so that recorders can take either.
#include <cstdint>
#include <memory>

#include "components/architectures/backbone.h"
#include "components/nn/linear.h"
#include "components/nn/module.h"
#include "engine/model.h"

namespace razor {

/// The features are the logits (no layer of its own), as mmcls's ClsHead.
class ClsHead : public nn::Module {
 public:
  explicit ClsHead(std::shared_ptr<nn::Module> loss_module, const std::string& name = "ClsHead");

  /// {"loss": loss_module({head(features), targets})}, MMEngine's head loss key.
  virtual LossMap loss(const torch::Tensor& features, const torch::Tensor& targets);
  /// The losses on every output of a multi-output backbone (after the neck). The default is
  /// the loss on the last of `outs` (mmcls's heads classify feats[-1]); `aux` is ignored.
  virtual LossMap loss(const BackboneOutputs& features, const torch::Tensor& targets);
  /// Channels of the auxiliary features the head classifies (0: it ignores them).
  virtual int64_t aux_in_channels() const { return 0; }
  nn::Module& loss_module() const { return *loss_module_; }
  /// The features the logits are computed from, published as the tap "<path>.pre_logits"
  /// ("head.pre_logits" in a classifier) for distillation recorders.
  torch::Tensor pre_logits(const torch::Tensor& features) const;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override { return pre_logits(input); }

 private:
  std::shared_ptr<nn::Module> loss_module_;
};

/// One fully connected layer `fc` (in_channels -> num_classes), initialised normal(0, 0.01)
/// with zero bias as in mmcls.
class LinearClsHead : public ClsHead {
 public:
  LinearClsHead(int64_t num_classes, int64_t in_channels, std::shared_ptr<nn::Module> loss_module);
  int64_t num_classes() const { return fc_->out_features(); }
  int64_t in_channels() const { return fc_->in_features(); }
  nn::Linear& fc() const { return *fc_; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace razor
