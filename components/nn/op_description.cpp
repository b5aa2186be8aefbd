#include "components/nn/op_description.h"

#include <torch/torch.h>

namespace razor::nn {

int64_t trainable_numel(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

OpCost count_per_output_element(Module& op, const Inputs& /*inputs*/, const torch::Tensor& output) {
  return {static_cast<double>(output.numel()), trainable_numel(op)};
}

OpCost count_per_input_element(Module& op, const Inputs& inputs, const torch::Tensor& /*output*/) {
  return {static_cast<double>(inputs.at(0).numel()), trainable_numel(op)};
}

std::string onnx_pass_through(OnnxEmitter& /*onnx*/, Module& /*op*/, const std::vector<std::string>& inputs) {
  return inputs.at(0);
}

}  // namespace razor::nn
