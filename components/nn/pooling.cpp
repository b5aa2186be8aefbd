#include "components/nn/pooling.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/error.h"

namespace razor::nn {

namespace {
Pool2dOptions checked(Pool2dOptions options, const char* what) {
  if (options.stride == 0) options.stride = options.kernel_size;
  RAZOR_CHECK(options.kernel_size > 0 && options.stride > 0, what,
              ": kernel_size and stride must be positive, got ", options.kernel_size, " and ",
              options.stride);
  // PyTorch's own rule: padding at most half the kernel.
  RAZOR_CHECK(options.padding >= 0 && 2 * options.padding <= options.kernel_size, what,
              ": padding must be in [0, kernel_size / 2], got ", options.padding);
  return options;
}
}  // namespace

MaxPool2d::MaxPool2d(const Pool2dOptions& options)
    : Module("MaxPool2d"), options_(checked(options, "MaxPool2d")) {}

torch::Tensor MaxPool2d::forward(const torch::Tensor& input) {
  return torch::max_pool2d(input, options_.kernel_size, options_.stride, options_.padding,
                           /*dilation=*/1, options_.ceil_mode);
}

void MaxPool2d::pretty_print(std::ostream& stream) const {
  stream << "MaxPool2d(kernel_size=" << options_.kernel_size << ", stride=" << options_.stride
         << ", padding=" << options_.padding << ")";
}

AvgPool2d::AvgPool2d(const Pool2dOptions& options)
    : Module("AvgPool2d"), options_(checked(options, "AvgPool2d")) {}

torch::Tensor AvgPool2d::forward(const torch::Tensor& input) {
  return torch::avg_pool2d(input, options_.kernel_size, options_.stride, options_.padding,
                           options_.ceil_mode, options_.count_include_pad);
}

void AvgPool2d::pretty_print(std::ostream& stream) const {
  stream << "AvgPool2d(kernel_size=" << options_.kernel_size << ", stride=" << options_.stride
         << ", padding=" << options_.padding << ")";
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t height, int64_t width)
    : Module("AdaptiveAvgPool2d"), height_(height), width_(width) {
  RAZOR_CHECK(height > 0 && width > 0, "AdaptiveAvgPool2d: output size must be positive, got ",
              height, " x ", width);
}

torch::Tensor AdaptiveAvgPool2d::forward(const torch::Tensor& input) {
  // The native kernel, not torch::adaptive_avg_pool2d: for a 1 x 1 output that one takes a
  // mean, whose backward hands a channels_last input a contiguous gradient, and every op
  // before it (ReLU, BN and conv backward) then runs its slow mixed-layout path.
  if (input.layout() == torch::kStrided && !input.is_quantized()) {
    return torch::_adaptive_avg_pool2d(input, {height_, width_});
  }
  return torch::adaptive_avg_pool2d(input, {height_, width_});
}

void AdaptiveAvgPool2d::pretty_print(std::ostream& stream) const {
  stream << "AdaptiveAvgPool2d(output_size=(" << height_ << ", " << width_ << "))";
}

namespace {
std::string onnx_pool(OnnxEmitter& onnx, const std::string& op_type, const Pool2dOptions& o,
                      const std::vector<std::string>& inputs) {
  const std::string out = onnx.output();
  const int64_t stride = o.stride > 0 ? o.stride : o.kernel_size;
  OnnxEmitter::Attributes attributes = {{"kernel_shape", std::vector<int64_t>{o.kernel_size, o.kernel_size}},
                                        {"strides", std::vector<int64_t>{stride, stride}},
                                        {"pads", std::vector<int64_t>{o.padding, o.padding, o.padding, o.padding}},
                                        {"ceil_mode", int64_t{o.ceil_mode}}};
  if (op_type == "AveragePool") attributes.emplace_back("count_include_pad", int64_t{o.count_include_pad});
  onnx.node(op_type, inputs, out, attributes);
  return out;
}

/// Average pools keep their input's quantisation parameters, except in onnxruntime, whose
/// QLinearAveragePool and QLinearGlobalAveragePool requantise their output.
QuantTraits average_pool_quant() {
  QuantTraits quant{QuantRole::kSharesInput};
  quant.own_output_on = {"onnxruntime"};
  return quant;
}
}  // namespace

// Pools: MMRazor's pooling counters, one FLOP per input element.

const OpDescription* MaxPool2d::description() const {
  static const OpDescription d{{QuantRole::kSharesInput, ChainRole::kNone, {}, /*keeps_grid=*/true},
                               count_per_input_element,
                               [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
                                 return onnx_pool(onnx, "MaxPool", static_cast<MaxPool2d&>(op).options(), inputs);
                               },
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

const OpDescription* AvgPool2d::description() const {
  static const OpDescription d{average_pool_quant(), count_per_input_element,
                               [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
                                 return onnx_pool(onnx, "AveragePool", static_cast<AvgPool2d&>(op).options(),
                                                  inputs);
                               },
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

const OpDescription* AdaptiveAvgPool2d::description() const {
  static const OpDescription d{
      average_pool_quant(), count_per_input_element,
      [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
        auto& pool = static_cast<AdaptiveAvgPool2d&>(op);
        const std::string out = onnx.output();
        if (pool.output_height() == 1 && pool.output_width() == 1) {
          onnx.node("GlobalAveragePool", inputs, out);
          return out;
        }
        const auto shape = onnx.input_shape(0);
        const int64_t h = shape.at(2), w = shape.at(3);
        if (h % pool.output_height() != 0 || w % pool.output_width() != 0) {
          onnx.fail("adaptive pooling of " + std::to_string(h) + "x" + std::to_string(w) + " to " +
                    std::to_string(pool.output_height()) + "x" + std::to_string(pool.output_width()) +
                    " has no fixed kernel");
        }
        const std::vector<int64_t> kernel = {h / pool.output_height(), w / pool.output_width()};
        onnx.node("AveragePool", inputs, out, {{"kernel_shape", kernel}, {"strides", kernel}});
        return out;
      },
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

}  // namespace razor::nn
