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

ChannelRuleOf channel_flow(ChannelFlow flow, bool member) {
  ChannelRule rule;
  rule.flow = flow;
  rule.member = member;
  return [rule](const Module&, const std::vector<std::vector<int64_t>>&) { return rule; };
}

std::string onnx_pass_through(OnnxEmitter& /*onnx*/, Module& /*op*/, const std::vector<std::string>& inputs) {
  return inputs.at(0);
}

}  // namespace razor::nn
