#include "components/nn/activation.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

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

// Activations: ReLU and ReLU6 keep their input's quantisation parameters and end the chain
// before them; the others are quantised ops. MMRazor counts the ReLU family (one FLOP per
// element) and nothing for the others, and so does razor, so that constraints tuned on
// MMRazor stay valid.

const OpDescription* ReLU::description() const {
  static const OpDescription d{
      {QuantRole::kSharesInput, ChainRole::kActivation, {}, /*keeps_grid=*/true},
      count_per_output_element,
      [](OnnxEmitter& onnx, Module&, const std::vector<std::string>& inputs) {
        const std::string out = onnx.output();
        onnx.node("Relu", inputs, out);
        return out;
      },
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

const OpDescription* ReLU6::description() const {
  static const OpDescription d{
      {QuantRole::kSharesInput, ChainRole::kClampedActivation},
      count_per_output_element,
      [](OnnxEmitter& onnx, Module&, const std::vector<std::string>& inputs) {
        const std::string out = onnx.output();
        if (onnx.for_opencv()) {
          // relu(x) - relu(x - 6): OpenCV 4.6's DNN reads no Clip with min/max inputs (opset >= 11).
          const std::string positive = onnx.value("/relu"), shifted = onnx.value("/minus6"),
                            excess = onnx.value("/excess");
          onnx.node("Relu", inputs, positive);
          onnx.node("Sub", {positive, onnx.constant(".six", torch::tensor(6.0f))}, shifted);
          onnx.node("Relu", {shifted}, excess);
          onnx.node("Sub", {positive, excess}, out);
        } else {
          // The exact clip (in quantised forms the quantiser after it sees razor's values).
          onnx.node("Clip", {inputs.at(0), onnx.constant(".min", torch::tensor(0.0f)),
                             onnx.constant(".max", torch::tensor(6.0f))},
                    out);
        }
        return out;
      },
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

namespace {
void hard_sigmoid(OnnxEmitter& onnx, const std::string& input, const std::string& out) {
  onnx.node("HardSigmoid", {input}, out, {{"alpha", 1.0f / 6.0f}, {"beta", 0.5f}});
}

/// An op ONNX has under the same name (Sigmoid, Tanh).
OnnxRule onnx_same_op(const std::string& op_type) {
  return [op_type](OnnxEmitter& onnx, Module&, const std::vector<std::string>& inputs) {
    const std::string out = onnx.output();
    onnx.node(op_type, inputs, out);
    return out;
  };
}
}  // namespace

const OpDescription* Hardswish::description() const {
  static const OpDescription d{{QuantRole::kQuantised}, nullptr,
                               [](OnnxEmitter& onnx, Module&, const std::vector<std::string>& inputs) {
                                 const std::string out = onnx.output();
                                 // HardSwish is opset 14; x * hardsigmoid(x) is the same function.
                                 const std::string gate = onnx.value("/hardsigmoid");
                                 hard_sigmoid(onnx, inputs.at(0), gate);
                                 onnx.node("Mul", {inputs.at(0), gate}, out);
                                 return out;
                               },
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

const OpDescription* Hardsigmoid::description() const {
  static const OpDescription d{{QuantRole::kQuantised}, nullptr,
                               [](OnnxEmitter& onnx, Module&, const std::vector<std::string>& inputs) {
                                 const std::string out = onnx.output();
                                 hard_sigmoid(onnx, inputs.at(0), out);
                                 return out;
                               },
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

const OpDescription* Sigmoid::description() const {
  static const OpDescription d{{QuantRole::kQuantised}, nullptr, onnx_same_op("Sigmoid"),
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

const OpDescription* Tanh::description() const {
  static const OpDescription d{{QuantRole::kQuantised}, nullptr, onnx_same_op("Tanh"),
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

}  // namespace razor::nn
