#pragma once
// 2-D batch normalisation with PyTorch's parameter and buffer names ("weight", "bias",
// "running_mean", "running_var", "num_batches_tracked"), so state dicts match PyTorch's.
#include <cstdint>

#include "components/nn/module.h"

namespace razor::nn {

/// Training mode normalises with batch statistics and updates the running ones
/// (running = (1 - momentum) * running + momentum * batch, unbiased variance), exactly as
/// torch::batch_norm does; eval mode normalises with the running statistics.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  void pretty_print(std::ostream& stream) const override;

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t num_features_;
  double eps_, momentum_;
};

}  // namespace razor::nn
