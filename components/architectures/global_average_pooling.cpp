#include "components/architectures/global_average_pooling.h"

#include <torch/torch.h>

namespace razor {

GlobalAveragePooling::GlobalAveragePooling() : nn::Module("GlobalAveragePooling") {
  gap_ = register_module("gap", std::make_shared<nn::AdaptiveAvgPool2d>(1));
  flatten_ = register_module("flatten", std::make_shared<nn::Flatten>(1));
}

torch::Tensor GlobalAveragePooling::forward(const torch::Tensor& input) {
  return (*flatten_)((*gap_)(input));
}

}  // namespace razor
