#pragma once
// Batch augments of a classifier's training batches (mmpretrain's Mixup, CutMix and
// RandomBatchAugment): each mixes the batch with a permutation of itself and mixes the
// one-hot labels by the same proportion. The random draw goes through the deliverable
// "batch_augments", so that a distillation delivery can give teacher and student the same
// mixed images and labels.
//
//   [model.train_cfg]
//   augments = [{ type = "Mixup", alpha = 0.8 }, { type = "CutMix", alpha = 1.0 }]
//   probs = [0.5, 0.5]       # optional; if they sum below 1, the rest is "no augment"
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/args.h"
#include "engine/data.h"

namespace razor {

class BatchAugment {
 public:
  virtual ~BatchAugment() = default;
  virtual std::string name() const = 0;
  /// The random choices for a batch of `n` images of `height` x `width`.
  virtual std::vector<torch::Tensor> draw(int64_t n, int64_t height, int64_t width) const = 0;
  /// Mixes `inputs` (N x C x H x W) and `scores` (N x classes) with the drawn choices.
  virtual std::pair<torch::Tensor, torch::Tensor> mix(const torch::Tensor& inputs, const torch::Tensor& scores,
                                                      const std::vector<torch::Tensor>& choices) const = 0;
};

/// x = λ·x + (1-λ)·x[perm], y likewise, λ ~ Beta(α, α).
class Mixup : public BatchAugment {
 public:
  explicit Mixup(double alpha);
  std::string name() const override { return "Mixup"; }
  std::vector<torch::Tensor> draw(int64_t n, int64_t height, int64_t width) const override;
  std::pair<torch::Tensor, torch::Tensor> mix(const torch::Tensor& inputs, const torch::Tensor& scores,
                                              const std::vector<torch::Tensor>& choices) const override;

 private:
  double alpha_;
};

/// A box of area about (1-λ) of the image is pasted from x[perm]; λ is then corrected to
/// the box's true area (mmpretrain's correct_lam).
class CutMix : public BatchAugment {
 public:
  explicit CutMix(double alpha);
  std::string name() const override { return "CutMix"; }
  std::vector<torch::Tensor> draw(int64_t n, int64_t height, int64_t width) const override;
  std::pair<torch::Tensor, torch::Tensor> mix(const torch::Tensor& inputs, const torch::Tensor& scores,
                                              const std::vector<torch::Tensor>& choices) const override;

 private:
  double alpha_;
};

/// One of several augments per batch, chosen with `probs`.
class BatchAugments {
 public:
  BatchAugments(std::vector<std::unique_ptr<BatchAugment>> augments, std::vector<double> probs, int64_t num_classes);
  /// The batch with mixed inputs and soft (N x classes) targets.
  Batch operator()(const Batch& batch) const;

 private:
  std::vector<std::unique_ptr<BatchAugment>> augments_;
  std::vector<double> probs_;
  int64_t num_classes_;
};

/// From a `train_cfg` table (see above); the number of classes comes from the head.
std::unique_ptr<BatchAugments> build_batch_augments(Args& train_cfg, int64_t num_classes);

/// A λ ~ Beta(α, α) from torch's global generator.
double sample_beta(double alpha);

}  // namespace razor
