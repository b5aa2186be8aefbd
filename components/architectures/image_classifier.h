#pragma once
// mmcls's ImageClassifier: backbone -> [neck] -> head, as a razor Model the runner trains.
// Children are named "backbone", "neck", "head", so parameters read
// "backbone.layer1.0.conv1.weight", "head.fc.bias", as in mmcls checkpoints.
#include <functional>
#include <memory>
#include <vector>

#include "components/architectures/batch_augments.h"
#include "components/architectures/cls_head.h"
#include "components/nn/module.h"
#include "engine/model.h"

namespace razor {

/// One step of a chained predict: `run` applies `modules` (whose parameters, BatchNorms and
/// mutables it uses) to the previous step's output.
struct PredictStage {
  std::vector<nn::Module*> modules;
  std::function<torch::Tensor(const torch::Tensor&)> run;
};

class ImageClassifier : public Model {
 public:
  /// `neck` may be null.
  ImageClassifier(std::shared_ptr<nn::Module> backbone, std::shared_ptr<nn::Module> neck,
                  std::shared_ptr<ClsHead> head);

  /// backbone, then neck if any.
  torch::Tensor extract_feat(const torch::Tensor& inputs);
  /// Every output of the backbone (Backbone::forward_outputs), each through the neck if any,
  /// as mmcls's necks map a tuple; {extract_feat(inputs)} for a backbone that is not a razor
  /// Backbone.
  BackboneOutputs extract_feats(const torch::Tensor& inputs);
  /// The head's losses on the batch's targets: {"loss": cross entropy}. Batch augments, if
  /// set, mix the batch first (mmcls applies them in the loss pass, in train and eval mode).
  /// A backbone with several outputs in the current mode (DARTS's auxiliary head in
  /// training) hands the head all of them (ClsHead::loss of BackboneOutputs).
  LossMap loss(const Batch& batch) override;
  /// Softmax scores, N x num_classes.
  torch::Tensor predict(const Batch& batch) override;
  /// Logits, N x num_classes.
  torch::Tensor forward_tensor(const torch::Tensor& inputs) override;

  /// predict as a chain: one step per stage of the backbone (Backbone::sequential_stages),
  /// then neck, head and softmax as the last step. Empty when the backbone is no chain.
  std::vector<PredictStage> predict_stages();

  nn::Module& backbone() const { return *backbone_; }
  /// Null without a neck.
  nn::Module* neck() const { return neck_.get(); }
  ClsHead& head() const { return *head_; }
  /// Mixup/CutMix for the loss pass (null: none).
  void set_batch_augments(std::shared_ptr<BatchAugments> augments) { augments_ = std::move(augments); }
  BatchAugments* batch_augments() const { return augments_.get(); }

 private:
  /// The head's losses on the features of `inputs`.
  LossMap head_loss(const torch::Tensor& inputs, const torch::Tensor& targets);

  std::shared_ptr<nn::Module> backbone_;
  Backbone* typed_backbone_ = nullptr;  // backbone_ when it is a razor Backbone
  std::shared_ptr<nn::Module> neck_;
  std::shared_ptr<ClsHead> head_;
  std::shared_ptr<BatchAugments> augments_;
};

}  // namespace razor
