#include "components/nn/flatten.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

#include <torch/torch.h>

namespace razor::nn {

torch::Tensor Flatten::forward(const torch::Tensor& input) {
  return torch::flatten(input, start_dim_, end_dim_);
}

// A reshape: its output is its input's values, on their grid; MMRazor counts nothing for it.
const OpDescription* Flatten::description() const {
  static const OpDescription d{{QuantRole::kSharesInput, ChainRole::kNone, {}, /*keeps_grid=*/true}, nullptr,
                               [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
                                 auto& flatten = static_cast<Flatten&>(op);
                                 const auto rank = static_cast<int64_t>(onnx.input_shape(0).size());
                                 const int64_t end = flatten.end_dim() < 0 ? flatten.end_dim() + rank : flatten.end_dim();
                                 if (end != rank - 1) onnx.fail("only a Flatten to the last dimension is written");
                                 const std::string out = onnx.output();
                                 onnx.node("Flatten", inputs, out, {{"axis", flatten.start_dim()}});
                                 return out;
                               },
      [](const Module& op, const std::vector<std::vector<int64_t>>& shapes) {
        const auto& flatten = static_cast<const Flatten&>(op);
        const auto rank = static_cast<int64_t>(shapes.at(0).size());
        const int64_t end = flatten.end_dim() < 0 ? flatten.end_dim() + rank : flatten.end_dim();
        ChannelRule rule;
        if (flatten.start_dim() == 1 && end == rank - 1) rule.flow = rank > 2 ? ChannelFlow::kFlatten : ChannelFlow::kPass;
        return rule;
      }};
  return &d;
}

}  // namespace razor::nn
