#pragma once
// The base of every compression algorithm (MMRazor's BaseAlgorithm): it owns an
// `architecture` (any razor Model) as a child, so weights appear as "architecture.*", and
// by default delegates loss, predict and forward to it. Algorithms (distillation, NAS,
// pruning, quantisation) derive from it and override train_step or loss.
#include <memory>

#include "components/mutators/subnet_mutator.h"
#include "engine/model.h"

namespace razor {

class BaseAlgorithm : public Model {
 public:
  explicit BaseAlgorithm(std::shared_ptr<Model> architecture);

  LossMap loss(const Batch& batch) override { return architecture_->loss(batch); }
  torch::Tensor predict(const Batch& batch) override { return architecture_->predict(batch); }
  torch::Tensor forward_tensor(const torch::Tensor& inputs) override {
    return architecture_->forward_tensor(inputs);
  }

  Model& architecture() { return *architecture_; }
  /// The mutator whose subnets SubnetValLoop evaluates (a NAS algorithm's, a pruning
  /// algorithm's channel mutator); null for algorithms without one.
  virtual SubnetMutator* subnet_mutator() { return nullptr; }
  std::shared_ptr<Model> architecture_ptr() const { return architecture_; }

 protected:
  std::shared_ptr<Model> architecture_;
};

}  // namespace razor
