#include "components/nn/flatten.h"

#include <torch/torch.h>

namespace razor::nn {

torch::Tensor Flatten::forward(const torch::Tensor& input) {
  return torch::flatten(input, start_dim_, end_dim_);
}

}  // namespace razor::nn
