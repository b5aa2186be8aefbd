#include "components/architectures/image_classifier.h"

#include <torch/torch.h>

#include "components/nn/tap.h"
#include "engine/error.h"

namespace razor {

ImageClassifier::ImageClassifier(std::shared_ptr<nn::Module> backbone,
                                 std::shared_ptr<nn::Module> neck, std::shared_ptr<ClsHead> head)
    : Model() {
  RAZOR_ASSERT(backbone != nullptr && head != nullptr);
  backbone_ = register_module("backbone", std::move(backbone));
  typed_backbone_ = dynamic_cast<Backbone*>(backbone_.get());
  if (neck) neck_ = register_module("neck", std::move(neck));
  head_ = register_module("head", std::move(head));
}

torch::Tensor ImageClassifier::extract_feat(const torch::Tensor& inputs) {
  torch::Tensor x = (*backbone_)(inputs);
  return neck_ ? (*neck_)(x) : x;
}

BackboneOutputs ImageClassifier::extract_feats(const torch::Tensor& inputs) {
  if (!typed_backbone_) return {{extract_feat(inputs)}, torch::Tensor()};
  BackboneOutputs feats = typed_backbone_->forward_outputs(inputs);
  if (neck_) {
    for (auto& out : feats.outs) out = (*neck_)(out);
    if (feats.aux.defined()) feats.aux = (*neck_)(feats.aux);
  }
  return feats;
}

LossMap ImageClassifier::head_loss(const torch::Tensor& inputs, const torch::Tensor& targets) {
  if (typed_backbone_ && typed_backbone_->has_multiple_outputs()) {
    return head_->loss(extract_feats(inputs), targets);
  }
  return head_->loss(extract_feat(inputs), targets);
}

LossMap ImageClassifier::loss(const Batch& batch) {
  RAZOR_CHECK(batch.targets.defined(), "ImageClassifier.loss: the batch has no targets");
  // Positions in the dataset, for losses with memory banks (CRD): a "Tap" recorder of "sample_idx".
  if (batch.indices.defined()) tap("sample_idx", batch.indices);
  if (augments_) {
    const Batch mixed = (*augments_)(batch);
    return head_loss(mixed.inputs, mixed.targets);
  }
  return head_loss(batch.inputs, batch.targets);
}

torch::Tensor ImageClassifier::predict(const Batch& batch) {
  return torch::softmax(forward_tensor(batch.inputs), 1);
}

std::vector<PredictStage> ImageClassifier::predict_stages() {
  if (!typed_backbone_) return {};
  std::vector<PredictStage> stages;
  for (nn::Module* module : typed_backbone_->sequential_stages()) {
    stages.push_back({{module}, [module](const torch::Tensor& x) { return (*module)(x); }});
  }
  if (stages.empty()) return {};
  PredictStage last{{head_.get()}, [this](const torch::Tensor& x) {
                      return torch::softmax((*head_)(neck_ ? (*neck_)(x) : x), 1);
                    }};
  if (neck_) last.modules.insert(last.modules.begin(), neck_.get());
  stages.push_back(std::move(last));
  return stages;
}

torch::Tensor ImageClassifier::forward_tensor(const torch::Tensor& inputs) {
  return (*head_)(extract_feat(inputs));
}

}  // namespace razor
