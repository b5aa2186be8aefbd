#include "components/nn/multi_input.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/error.h"

namespace razor::nn {

torch::Tensor Add::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() >= 2);
  torch::Tensor out = inputs[0] + inputs[1];
  for (size_t i = 2; i < inputs.size(); ++i) out = out + inputs[i];
  return out;
}

torch::Tensor Concat::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() >= 2);
  return torch::cat(inputs, dim_);
}

void Concat::pretty_print(std::ostream& stream) const { stream << "Concat(dim=" << dim_ << ")"; }

torch::Tensor Mul::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() == 2);
  return inputs[0] * inputs[1];
}

namespace {
/// ONNX's Add and Mul are binary: a chain of them for more inputs.
OnnxRule onnx_binary_chain(const std::string& op_type) {
  return [op_type](OnnxEmitter& onnx, Module&, const std::vector<std::string>& inputs) {
    const std::string out = onnx.output();
    std::string acc = inputs.at(0);
    for (size_t k = 1; k < inputs.size(); ++k) {
      const std::string next = k + 1 == inputs.size() ? out : onnx.value("/partial");
      onnx.node(op_type, {acc, inputs[k]}, next);
      acc = next;
    }
    if (inputs.size() == 1) onnx.node("Identity", inputs, out);
    return out;
  };
}
}  // namespace

// A residual Add has an output quantiser, and a ReLU after it shares that one.
const OpDescription* Add::description() const {
  static const OpDescription d = [] {
    OpDescription add{{QuantRole::kQuantised}, nullptr, onnx_binary_chain("Add")};
    add.quant.fuses_activation = true;
    add.channel = channel_flow(ChannelFlow::kBind);
    return add;
  }();
  return &d;
}

const OpDescription* Mul::description() const {
  static const OpDescription d{{QuantRole::kQuantised}, nullptr, onnx_binary_chain("Mul"),
      channel_flow(ChannelFlow::kBind)};
  return &d;
}

const OpDescription* Concat::description() const {
  static const OpDescription d{{QuantRole::kConcat}, nullptr,
                               [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
                                 const std::string out = onnx.output();
                                 onnx.node("Concat", inputs, out, {{"axis", static_cast<Concat&>(op).dim()}});
                                 return out;
                               },
      [](const Module& op, const std::vector<std::vector<int64_t>>&) {
        ChannelRule rule;
        if (static_cast<const Concat&>(op).dim() == 1) rule.flow = ChannelFlow::kConcat;
        return rule;
      }};
  return &d;
}

}  // namespace razor::nn
