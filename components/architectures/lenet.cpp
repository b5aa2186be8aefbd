#include "components/architectures/lenet.h"

#include <torch/torch.h>

#include "components/nn/activation.h"
#include "components/nn/conv.h"
#include "components/nn/pooling.h"
#include "engine/error.h"

namespace razor {

LeNet5::LeNet5(int64_t in_channels) : Backbone("LeNet5") {
  RAZOR_CHECK(in_channels > 0, "LeNet5: in_channels must be positive, got ", in_channels);
  features_ = register_module("features", std::make_shared<nn::Sequential>());
  features_->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in_channels, 6, 5)));
  features_->push_back(std::make_shared<nn::Tanh>());
  features_->push_back(std::make_shared<nn::AvgPool2d>(nn::Pool2dOptions(2)));
  features_->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(6, 16, 5)));
  features_->push_back(std::make_shared<nn::Tanh>());
  features_->push_back(std::make_shared<nn::AvgPool2d>(nn::Pool2dOptions(2)));
  features_->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(16, 120, 5)));
  features_->push_back(std::make_shared<nn::Tanh>());
}

torch::Tensor LeNet5::forward(const torch::Tensor& input) { return (*features_)(input); }

}  // namespace razor
