#pragma once
// Fully connected layer over razor's module base ("weight" out x in, "bias"), as
// torch.nn.Linear, so state dicts match PyTorch's.
#include <cstdint>

#include "components/nn/weighted_op.h"

namespace razor::nn {

/// Initialised as PyTorch does: weight and bias uniform in +-1/sqrt(in_features).
class Linear : public WeightedOp {
 public:
  const OpDescription* description() const override;
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor apply(const torch::Tensor& input, const torch::Tensor& weight,
                      const torch::Tensor& bias) const override;
  int64_t out_width() const override { return out_features_; }
  int64_t in_width() const override { return in_features_; }

 protected:
  void resize_to(const torch::Tensor& weight) override {
    out_features_ = weight.size(0);
    in_features_ = weight.size(1);
  }

 private:
  int64_t in_features_, out_features_;
};

}  // namespace razor::nn
