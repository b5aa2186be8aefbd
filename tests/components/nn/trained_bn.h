#pragma once
// A BatchNorm2d with non-trivial running statistics and affine parameters, for the tests
// where an identity BN would hide a wrong fold or slice.
#include <torch/torch.h>

#include <memory>

#include "components/nn/batch_norm.h"

namespace razor::test {

inline std::shared_ptr<nn::BatchNorm2d> trained_bn(int64_t c) {
  auto bn = std::make_shared<nn::BatchNorm2d>(c);
  torch::NoGradGuard no_grad;
  bn->weight.copy_(torch::rand({c}) + 0.5);
  bn->bias.copy_(torch::randn({c}));
  bn->running_mean.copy_(torch::randn({c}));
  bn->running_var.copy_(torch::rand({c}) + 0.1);
  return bn;
}

}  // namespace razor::test
