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
  if (neck) neck_ = register_module("neck", std::move(neck));
  head_ = register_module("head", std::move(head));
}

torch::Tensor ImageClassifier::extract_feat(const torch::Tensor& inputs) {
  torch::Tensor x = (*backbone_)(inputs);
  return neck_ ? (*neck_)(x) : x;
}

LossMap ImageClassifier::loss(const Batch& batch) {
  RAZOR_CHECK(batch.targets.defined(), "ImageClassifier.loss: the batch has no targets");
  // Positions in the dataset, for losses with memory banks (CRD): a "Tap" recorder of "sample_idx".
  if (batch.indices.defined()) tap("sample_idx", batch.indices);
  if (augments_) {
    const Batch mixed = (*augments_)(batch);
    return head_->loss(extract_feat(mixed.inputs), mixed.targets);
  }
  return head_->loss(extract_feat(batch.inputs), batch.targets);
}

torch::Tensor ImageClassifier::predict(const Batch& batch) {
  return torch::softmax(forward_tensor(batch.inputs), 1);
}

torch::Tensor ImageClassifier::forward_tensor(const torch::Tensor& inputs) {
  return (*head_)(extract_feat(inputs));
}

}  // namespace razor
