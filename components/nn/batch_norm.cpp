#include "components/nn/batch_norm.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/error.h"

namespace razor::nn {

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum)
    : Module("BatchNorm2d"), num_features_(num_features), eps_(eps), momentum_(momentum) {
  RAZOR_CHECK(num_features > 0, "BatchNorm2d: num_features must be positive, got ", num_features);
  RAZOR_CHECK(eps > 0, "BatchNorm2d: eps must be positive, got ", eps);
  RAZOR_CHECK(momentum >= 0 && momentum <= 1, "BatchNorm2d: momentum must be in [0, 1], got ",
              momentum);
  weight = register_parameter("weight", torch::ones({num_features}));
  bias = register_parameter("bias", torch::zeros({num_features}));
  running_mean = register_buffer("running_mean", torch::zeros({num_features}));
  running_var = register_buffer("running_var", torch::ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

torch::Tensor BatchNorm2d::forward(const torch::Tensor& input) {
  const bool training = is_training();
  if (training) num_batches_tracked.add_(1);
  return torch::batch_norm(input, weight, bias, running_mean, running_var, training, momentum_,
                           eps_,
                           /*cudnn_enabled=*/true);
}

void BatchNorm2d::pretty_print(std::ostream& stream) const {
  stream << "BatchNorm2d(" << num_features_ << ", eps=" << eps_ << ", momentum=" << momentum_
         << ")";
}

}  // namespace razor::nn
