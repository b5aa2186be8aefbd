#include "components/nn/activation.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor::nn {

torch::Tensor ReLU::forward(const torch::Tensor& input) { return torch::relu(input); }

torch::Tensor ReLU6::forward(const torch::Tensor& input) {
  return torch::hardtanh(input, 0.0, 6.0);
}

torch::Tensor Hardswish::forward(const torch::Tensor& input) { return torch::hardswish(input); }

torch::Tensor Hardsigmoid::forward(const torch::Tensor& input) { return torch::hardsigmoid(input); }

torch::Tensor Sigmoid::forward(const torch::Tensor& input) { return torch::sigmoid(input); }

torch::Tensor Tanh::forward(const torch::Tensor& input) { return torch::tanh(input); }

std::vector<std::string> activation_names() {
  return {"ReLU", "ReLU6", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh"};
}

std::shared_ptr<Module> make_activation(const std::string& type) {
  if (type == "ReLU") return std::make_shared<ReLU>();
  if (type == "ReLU6") return std::make_shared<ReLU6>();
  if (type == "Hardswish" || type == "HSwish") return std::make_shared<Hardswish>();
  if (type == "Hardsigmoid" || type == "HSigmoid") return std::make_shared<Hardsigmoid>();
  if (type == "Sigmoid") return std::make_shared<Sigmoid>();
  if (type == "Tanh") return std::make_shared<Tanh>();
  const auto names = activation_names();
  throw config_error("unknown activation \"", type, "\"", did_you_mean(type, names),
                     " (known: ", join(names, ", "), ")");
}

}  // namespace razor::nn
