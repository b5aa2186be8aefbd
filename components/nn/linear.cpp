#include "components/nn/linear.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

#include <torch/torch.h>

#include <cmath>
#include <ostream>

#include "engine/error.h"

namespace razor::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias)
    : WeightedOp("Linear"), in_features_(in_features), out_features_(out_features) {
  RAZOR_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got ",
              in_features, " -> ", out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = register_parameter("weight",
                              torch::empty({out_features, in_features}).uniform_(-bound, bound));
  if (with_bias)
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
}

torch::Tensor Linear::apply(const torch::Tensor& input, const torch::Tensor& weight,
                            const torch::Tensor& bias) const {
  return torch::linear(input, weight, bias);
}

void Linear::pretty_print(std::ostream& stream) const {
  stream << "Linear(in_features=" << in_features_ << ", out_features=" << out_features_
         << ", bias=" << (bias.defined() ? "true" : "false") << ")";
}

// MMRazor's LinearCounter: input elements x output features.
const OpDescription* Linear::description() const {
  static const OpDescription d{
      {QuantRole::kWeighted},
      [](Module& op, const Inputs& inputs, const torch::Tensor& output) {
        const auto& linear = static_cast<Linear&>(op);
        // At a narrower width, the parameters the call used.
        const int64_t params = linear.has_active_channels()
                                   ? inputs.at(0).size(-1) * output.size(-1) + (linear.bias.defined() ? output.size(-1) : 0)
                                   : trainable_numel(op);
        return OpCost{static_cast<double>(inputs.at(0).numel()) * static_cast<double>(output.size(-1)), params};
      },
      [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
        const auto shape = onnx.input_shape(0);
        if (shape.size() != 2) {
          onnx.fail("a Linear is written as Gemm, which needs a 2-D input; this one reads " +
                    std::to_string(shape.size()) + "-D");
        }
        const std::string out = onnx.output();
        const auto [w, b] = onnx.weight_and_bias(static_cast<Linear&>(op));
        std::vector<std::string> args = {inputs.at(0), w};
        if (!b.empty()) args.push_back(b);
        onnx.node("Gemm", args, out, {{"transB", int64_t{1}}});
        return out;
      },
      [](const Module&, const std::vector<std::vector<int64_t>>& shapes) {
        ChannelRule rule;
        rule.member = true;
        // Features on dimension 1 only: a Linear over the last of more dimensions is not followed.
        if (shapes.at(0).size() == 2) rule.flow = ChannelFlow::kMix;
        return rule;
      }};
  return &d;
}

}  // namespace razor::nn
