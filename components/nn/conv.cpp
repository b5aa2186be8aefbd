#include "components/nn/conv.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

#include <torch/torch.h>

#include <ostream>
#include <tuple>

#include "engine/error.h"

namespace razor::nn {

Conv2d::Conv2d(const Conv2dOptions& options) : WeightedOp("Conv2d"), options_(options) {
  RAZOR_CHECK(options.in_channels > 0 && options.out_channels > 0 && options.kernel_size > 0,
              "Conv2d: channels and kernel size must be positive, got ", options.in_channels,
              " -> ", options.out_channels, ", kernel ", options.kernel_size);
  RAZOR_CHECK(options.stride > 0 && options.dilation > 0 && options.padding >= 0,
              "Conv2d: stride and dilation must be positive and padding non-negative");
  RAZOR_CHECK(options.groups > 0 && options.in_channels % options.groups == 0 &&
                  options.out_channels % options.groups == 0,
              "Conv2d: groups (", options.groups, ") must divide in_channels (",
              options.in_channels, ") and out_channels (", options.out_channels, ")");
  weight = register_parameter(
      "weight", torch::empty({options.out_channels, options.in_channels / options.groups,
                              options.kernel_size, options.kernel_size}));
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanOut, torch::kReLU);
  }
  if (options.bias) bias = register_parameter("bias", torch::zeros({options.out_channels}));
}

torch::Tensor Conv2d::apply(const torch::Tensor& input, const torch::Tensor& weight,
                            const torch::Tensor& bias) const {
  // A depthwise conv at a narrower width has as many groups as channels active.
  const int64_t groups = depthwise() ? weight.size(0) : options_.groups;
  return torch::conv2d(input, weight, bias, options_.stride, options_.padding, options_.dilation, groups);
}

bool Conv2d::depthwise() const {
  return options_.groups > 1 && options_.groups == options_.in_channels && options_.groups == options_.out_channels;
}

void Conv2d::set_active_channels(torch::Tensor out, torch::Tensor in) {
  if (depthwise()) {
    if (!in.defined()) in = out;
    if (!out.defined()) out = in;
    RAZOR_CHECK(!out.defined() || torch::equal(out.cpu(), in.cpu()), path(),
                ": a depthwise conv's input and output channels are one set; got different active channels");
  } else if (fusion_ && out.defined()) {
    RAZOR_CHECK(out[out.size(0) - 1].item<int64_t>() == out.size(0) - 1, path(),
                ": a fused conv (DCFF) computes its first channels; got other active output channels");
  } else if (options_.groups > 1) {
    // Channel units tie each group's slice to the others': as many active channels per group.
    for (const auto& [index, width, side] : {std::make_tuple(out, options_.out_channels, "output"),
                                             std::make_tuple(in, options_.in_channels, "input")}) {
      if (!index.defined()) continue;
      const torch::Tensor group = index.cpu().div(width / options_.groups, "floor");
      RAZOR_CHECK(torch::equal(torch::bincount(group, {}, options_.groups),
                               torch::full({options_.groups}, index.size(0) / options_.groups, torch::kLong)),
                  path(), ": a grouped conv keeps as many ", side, " channels in each of its ", options_.groups,
                  " groups");
    }
  }
  WeightedOp::set_active_channels(std::move(out), std::move(in));
}

std::pair<torch::Tensor, torch::Tensor> Conv2d::active_weight(const torch::Tensor& w, const torch::Tensor& b) const {
  const torch::Tensor& out = active_out();
  if (fusion_ && out.defined()) {
    // DCFF: the first k rows of the fusion matrix combine all the filters into k.
    const torch::Tensor rows = fusion_matrix_.narrow(0, 0, out.size(0)).to(w.dtype());
    const torch::Tensor& in = active_in();
    const torch::Tensor columns = in.defined() ? w.index_select(1, in) : w;
    std::vector<int64_t> shape = columns.sizes().vec();
    shape[0] = out.size(0);
    return {rows.mm(columns.flatten(1)).view(shape), b.defined() ? rows.mv(b) : b};
  }
  torch::Tensor sliced = out.defined() ? w.index_select(0, out) : w;
  const torch::Tensor& in = active_in();
  if (in.defined() && !depthwise()) {
    // Columns are the inputs of one group; every group keeps the same ones.
    const int64_t per_group = options_.in_channels / options_.groups;
    sliced = sliced.index_select(1, in.narrow(0, 0, in.size(0) / options_.groups).remainder(per_group));
  }
  return {sliced, b.defined() && out.defined() ? b.index_select(0, out) : b};
}

void Conv2d::make_static() {
  WeightedOp::make_static();
  if (fusion_) {
    unregister_module("fusion");
    fusion_.reset();
    fusion_matrix_ = torch::Tensor();
  }
}

void Conv2d::enable_output_fusion() {
  RAZOR_CHECK(options_.groups == 1, path(), ": filter fusion (DCFF) needs a conv with groups = 1, this one has ",
              options_.groups);
  if (fusion_) return;
  fusion_ = register_module("fusion", std::make_shared<Module>("FusionMatrix"));
  fusion_matrix_ =
      fusion_->register_buffer("matrix", torch::eye(options_.out_channels, weight.options().requires_grad(false)));
}

void Conv2d::set_fusion_rows(const torch::Tensor& rows) {
  RAZOR_CHECK(fusion_, path(), ": set_fusion_rows needs enable_output_fusion first");
  RAZOR_CHECK(rows.dim() == 2 && rows.size(0) >= 1 && rows.size(0) <= options_.out_channels &&
                  rows.size(1) == options_.out_channels,
              path(), ": fusion rows must be [k, ", options_.out_channels, "], got ", rows.sizes());
  torch::NoGradGuard no_grad;
  fusion_matrix_.narrow(0, 0, rows.size(0)).copy_(rows);
}

void Conv2d::resize_to(const torch::Tensor& w) {
  const bool was_depthwise = depthwise();
  options_.out_channels = w.size(0);
  options_.in_channels = was_depthwise ? w.size(0) : w.size(1) * options_.groups;
  if (was_depthwise) options_.groups = w.size(0);
}

void Conv2d::pretty_print(std::ostream& stream) const {
  stream << "Conv2d(" << options_.in_channels << ", " << options_.out_channels
         << ", kernel_size=" << options_.kernel_size << ", stride=" << options_.stride;
  if (options_.padding != 0) stream << ", padding=" << options_.padding;
  if (options_.dilation != 1) stream << ", dilation=" << options_.dilation;
  if (options_.groups != 1) stream << ", groups=" << options_.groups;
  if (!options_.bias) stream << ", bias=false";
  stream << ")";
}

namespace {
/// MMRazor's Conv2dCounter: kernel area x in_channels x out_channels / groups per output
/// position, plus one per output element for a bias; at the widths the call ran with (a
/// depthwise conv at a narrower width has as many groups as channels, which MMRazor's
/// dynamic counter misses).
OpCost conv_cost(Module& op, const Inputs& inputs, const torch::Tensor& output) {
  const auto& conv = static_cast<Conv2d&>(op);
  const auto& o = conv.options();
  const int64_t in = inputs.at(0).size(1), out = output.size(1);
  const int64_t groups = conv.depthwise() ? in : o.groups;
  double positions = static_cast<double>(inputs.at(0).size(0));
  for (int64_t d = 2; d < output.dim(); ++d) positions *= static_cast<double>(output.size(d));
  const double per_position = static_cast<double>(o.kernel_size * o.kernel_size) * static_cast<double>(in) *
                              (static_cast<double>(out) / static_cast<double>(groups));
  OpCost c{per_position * positions, static_cast<int64_t>(per_position)};
  if (o.bias) {
    c.flops += static_cast<double>(out) * positions;
    c.params += out;
  }
  return c;
}

std::string conv_onnx(OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
  auto& conv = static_cast<Conv2d&>(op);
  const std::string out = onnx.output();
  const auto [w, b] = onnx.weight_and_bias(conv);
  const auto& o = conv.options();
  std::vector<std::string> args = {inputs.at(0), w};
  if (!b.empty()) args.push_back(b);
  onnx.node("Conv", args, out,
            {{"kernel_shape", std::vector<int64_t>{o.kernel_size, o.kernel_size}},
             {"strides", std::vector<int64_t>{o.stride, o.stride}},
             {"pads", std::vector<int64_t>{o.padding, o.padding, o.padding, o.padding}},
             {"dilations", std::vector<int64_t>{o.dilation, o.dilation}},
             {"group", conv.depthwise() && conv.active_out().defined() ? conv.active_out().size(0) : o.groups}});
  return out;
}
}  // namespace

const OpDescription* Conv2d::description() const {
  static const OpDescription d{{QuantRole::kWeighted}, conv_cost, conv_onnx,
      [](const Module& op, const std::vector<std::vector<int64_t>>&) {
        const auto& o = static_cast<const Conv2d&>(op).options();
        ChannelRule rule;
        rule.member = true;
        const bool depthwise = o.groups > 1 && o.groups == o.in_channels && o.groups == o.out_channels;
        rule.flow = depthwise ? ChannelFlow::kPass : ChannelFlow::kMix;
        rule.groups = depthwise ? 1 : o.groups;
        return rule;
      }};
  return &d;
}

}  // namespace razor::nn
