#include "components/export/onnx_writer.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <torch/torch.h>

#include "components/nn/activation.h"
#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "components/nn/flatten.h"
#include "components/nn/linear.h"
#include "components/nn/multi_input.h"
#include "components/nn/pooling.h"
#include "components/quant/fake_quantize.h"
#include "components/quant/quantizer.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/strings.h"
#include "engine/version.h"

namespace razor::deploy {

namespace {

constexpr const char* kOpenVINODomain = "org.openvinotoolkit";

/// The op types the writer converts (the error for any other lists them).
const std::vector<std::string>& known_types() {
  static const std::vector<std::string> types = {
      "Conv2d",      "Linear",     "BatchNorm2d",       "ReLU",      "ReLU6",   "Hardswish", "Hardsigmoid",
      "Sigmoid",     "Tanh",       "MaxPool2d",         "AvgPool2d", "AdaptiveAvgPool2d", "Flatten",
      "Add",         "Mul",        "Concat",            "Identity",  "Dropout"};
  return types;
}

/// A tensor's values as an initialiser (contiguous CPU copy in the tensor's dtype).
void fill_tensor(onnx::TensorProto& proto, const std::string& name, const torch::Tensor& value) {
  const torch::Tensor t = value.detach().to(torch::kCPU).contiguous();
  proto.set_name(name);
  for (int64_t d : t.sizes()) proto.add_dims(d);
  switch (t.scalar_type()) {
    case torch::kFloat: proto.set_data_type(onnx::TensorProto::FLOAT); break;
    case torch::kInt8: proto.set_data_type(onnx::TensorProto::INT8); break;
    case torch::kUInt8: proto.set_data_type(onnx::TensorProto::UINT8); break;
    case torch::kInt: proto.set_data_type(onnx::TensorProto::INT32); break;
    case torch::kLong: proto.set_data_type(onnx::TensorProto::INT64); break;
    default: throw config_error("ONNX export: no initialiser type for ", t.scalar_type());
  }
  proto.set_raw_data(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
}

class GraphBuilder {
 public:
  GraphBuilder(const nn::Dataflow& flow, const OnnxOptions& options)
      : flow_(flow), options_(options), plan_(options.form == OnnxForm::Float ? nullptr : options.plan) {
    RAZOR_CHECK(options.form == OnnxForm::Float || plan_,
                "ONNX export: the ", onnx_form_name(options.form), " form needs a quantised model (MMArchitectureQuant)");
    opset_ = options.form == OnnxForm::FakeQuantize ? 11 : 13;
    model_.set_ir_version(onnx::IR_VERSION);
    model_.set_producer_name("razor");
    model_.set_producer_version(kVersion);
    auto* opset = model_.add_opset_import();
    opset->set_domain("");
    opset->set_version(opset_);
    if (options.form == OnnxForm::FakeQuantize) {
      auto* ov = model_.add_opset_import();
      ov->set_domain(kOpenVINODomain);
      ov->set_version(1);
    }
    graph_ = model_.mutable_graph();
    graph_->set_name("razor");
  }

  onnx::ModelProto build() {
    check_convertible();
    add_graph_input();
    values_.assign(flow_.nodes.size(), "");
    for (size_t i = 0; i < flow_.nodes.size(); ++i) emit(static_cast<int64_t>(i));
    add_graph_output();
    summary_.opset = opset_;
    summary_.nodes = graph_->node_size();
    summary_.initializers = graph_->initializer_size();
    return model_;
  }

  const OnnxSummary& summary() const { return summary_; }

 private:
  /// Fails, before anything is built, on an op or a value the writer cannot express.
  void check_convertible() const {
    RAZOR_CHECK(options_.input_shape.size() >= 2, "ONNX export: the input shape must be [N, C, ...], got ",
                torch::IntArrayRef(options_.input_shape));
    const auto& types = known_types();
    for (const auto& node : flow_.nodes) {
      RAZOR_CHECK(std::find(types.begin(), types.end(), node.type) != types.end(), "ONNX export: ", where(node),
                  " is a ", node.type, ", which the ONNX writer does not know (it writes ", join(types, ", "), ")");
      for (int64_t input : node.inputs) {
        RAZOR_CHECK(input != nn::kUnknownProducer, "ONNX export: ", where(node),
                    " reads a value computed by code between modules (a tensor function in a parent's forward), "
                    "which the ONNX writer cannot see; make that computation a razor op");
      }
    }
    RAZOR_CHECK(flow_.output != nn::kUnknownProducer,
                "ONNX export: the model's output is computed by code between modules, which the ONNX writer cannot see");
  }

  static std::string where(const nn::DataflowNode& node) {
    return "module \"" + node.path + "\"" + (node.call > 0 ? " (call " + std::to_string(node.call) + ")" : "");
  }

  std::string fresh(const std::string& base) {
    std::string name = base.empty() ? "v" : base;
    if (used_names_.insert(name).second) return name;
    for (int64_t k = 1;; ++k) {
      std::string candidate = name + "_" + std::to_string(k);
      if (used_names_.insert(candidate).second) return candidate;
    }
  }

  std::string base_name(int64_t i) const {
    const auto& node = flow_.nodes[static_cast<size_t>(i)];
    return node.path + (node.call > 0 ? "#" + std::to_string(node.call) : "");
  }

  std::string initializer(const std::string& base, const torch::Tensor& value) {
    const std::string name = fresh(base);
    fill_tensor(*graph_->add_initializer(), name, value);
    return name;
  }

  std::string scalar(const std::string& base, float value) { return initializer(base, torch::tensor(value)); }

  /// A node named after its output (unique, as every value is).
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output) {
    auto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(output);
    for (const auto& input : inputs) n->add_input(input);
    n->add_output(output);
    return *n;
  }

  static void attr(onnx::NodeProto& n, const std::string& name, int64_t value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void attr(onnx::NodeProto& n, const std::string& name, float value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }
  static void attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& values) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }

  void add_graph_input() {
    auto* input = graph_->add_input();
    input->set_name("input");
    auto* tensor = input->mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tensor->mutable_shape();
    shape->add_dim()->set_dim_param("N");
    for (size_t d = 1; d < options_.input_shape.size(); ++d) shape->add_dim()->set_dim_value(options_.input_shape[d]);
  }

  void add_graph_output() {
    const std::string value = value_of(flow_.output);
    node("Identity", {value}, "output");
    auto* output = graph_->add_output();
    output->set_name("output");
    auto* tensor = output->mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tensor->mutable_shape();
    const auto& dims = flow_.nodes[static_cast<size_t>(flow_.output)].output_shape;
    shape->add_dim()->set_dim_param("N");
    for (size_t d = 1; d < dims.size(); ++d) shape->add_dim()->set_dim_value(dims[d]);
  }

  std::string value_of(int64_t producer) const {
    if (producer == nn::kGraphInput) return "input";
    return values_.at(static_cast<size_t>(producer));
  }

  std::vector<int64_t> shape_of(int64_t producer) const {
    if (producer == nn::kGraphInput) return options_.input_shape;
    return flow_.nodes.at(static_cast<size_t>(producer)).output_shape;
  }

  static bool active(const quant::FakeQuantizer* fq) { return fq && fq->fake_quant_enabled(); }

  /// An activation quantiser on `value`: QuantizeLinear -> DequantizeLinear (with a Clip
  /// first for a range narrower than the type), or one FakeQuantize. The same quantiser on the
  /// same value is written once.
  std::string quantize_activation(const std::string& value, quant::FakeQuantizer& fq, const std::string& where,
                                  bool planned = true) {
    const auto key = std::make_pair(value, &fq);
    if (auto it = quantized_.find(key); it != quantized_.end()) return it->second;
    RAZOR_CHECK(!fq.per_channel(), "ONNX export: ", where,
                ": per-channel activation quantisers cannot be written (use a per-tensor a_qscheme)");
    const quant::QParams qp = fq.calculate_qparams();
    const float scale = qp.scale.reshape({-1})[0].item<float>();
    const int64_t zp = qp.zero_point.reshape({-1})[0].item<int64_t>();
    const int64_t qmin = fq.quant_min(), qmax = fq.quant_max();
    const float lo = static_cast<float>(qmin - zp) * scale, hi = static_cast<float>(qmax - zp) * scale;
    std::string out;
    if (options_.form == OnnxForm::FakeQuantize) {
      out = fresh(value + "/fq");
      auto& n = node("FakeQuantize", {value, scalar(out + ".lo", lo), scalar(out + ".hi", hi),
                                      scalar(out + ".out_lo", lo), scalar(out + ".out_hi", hi)},
                     out);
      n.set_domain(kOpenVINODomain);
      attr(n, "levels", qmax - qmin + 1);
    } else {
      const bool is_unsigned = fq.dtype() == quant::QDType::QUInt8;
      const int64_t type_min = is_unsigned ? 0 : -128, type_max = is_unsigned ? 255 : 127;
      RAZOR_CHECK(qmin >= type_min && qmax <= type_max, "ONNX export: ", where, ": the integer range [", qmin, ", ",
                  qmax, "] does not fit ", is_unsigned ? "uint8" : "int8",
                  " (QuantizeLinear of opset 13 writes 8-bit values only)");
      std::string input = value;
      if (qmin > type_min || qmax < type_max) {
        // QuantizeLinear saturates to the type's range; the quantiser's narrower range needs a Clip.
        input = fresh(value + "/clip");
        node("Clip", {value, scalar(input + ".min", lo), scalar(input + ".max", hi)}, input);
      }
      const std::string s = scalar(value + "/q.scale", scale);
      const torch::Tensor zp_tensor = torch::tensor(zp).to(is_unsigned ? torch::kUInt8 : torch::kInt8);
      const std::string z = initializer(value + "/q.zero_point", zp_tensor);
      const std::string q = fresh(value + "/q");
      node("QuantizeLinear", {input, s, z}, q);
      out = fresh(value + "/dq");
      node("DequantizeLinear", {q, s, z}, out);
    }
    if (planned) ++summary_.activation_quantizers;
    quantized_[key] = out;
    dequantized_from_[out] = &fq;
    return out;
  }

  /// The weight (BatchNorm folded in when the plan folds one, the channel mask applied) and
  /// bias, and the weight as the graph reads it: a float initialiser, int8 + DequantizeLinear,
  /// or FakeQuantize.
  std::pair<std::string, std::string> weight_and_bias(int64_t i, nn::WeightedOp& op) {
    const std::string base = base_name(i);
    torch::Tensor weight = op.weight.detach(), bias = op.bias.defined() ? op.bias.detach() : torch::Tensor();
    if (op.out_channel_mask().defined()) {
      const torch::Tensor mask = op.out_channel_mask().to(weight.dtype());
      std::vector<int64_t> shape(static_cast<size_t>(weight.dim()), 1);
      shape[0] = -1;
      weight = weight * mask.reshape(shape);
      if (bias.defined()) bias = bias * mask;
    }
    if (plan_ && plan_->folded_bn.count(i)) {
      RAZOR_CHECK(op.folded_bn(), "ONNX export: ", where(flow_.nodes[static_cast<size_t>(i)]),
                  ": the plan folds a BatchNorm the op does not hold");
      std::tie(weight, bias) = nn::fold_bn_into(weight, bias, op.folded_bn());
      ++summary_.folded_bn;
    }
    quant::FakeQuantizer* fq = nullptr;
    if (plan_) {
      auto it = plan_->weight_fake_quants.find(i);
      if (it != plan_->weight_fake_quants.end() && active(it->second.get())) fq = it->second.get();
    }
    quant::FakeQuantizer* bias_input = nullptr;  // set for a bias razor rounds to int32
    if (plan_ && options_.form == OnnxForm::QDQ && fq && bias.defined()) {
      auto it = plan_->bias_input_quants.find(i);
      if (it != plan_->bias_input_quants.end()) bias_input = it->second.get();
    }
    const std::string b = !bias.defined() ? ""
                          : bias_input    ? quantized_bias(base, bias, *bias_input, *fq)
                                          : initializer(base + ".bias", bias);
    if (!fq) return {initializer(base + ".weight", weight), b};

    ++summary_.weight_quantizers;
    const quant::QParams qp = fq->calculate_qparams();
    const int64_t channels = weight.size(0);
    RAZOR_CHECK(!fq->per_channel() || (fq->ch_axis() == 0 && qp.scale.numel() == channels), "ONNX export: ",
                where(flow_.nodes[static_cast<size_t>(i)]), ": the weight quantiser has ", qp.scale.numel(),
                " scales on axis ", fq->ch_axis(), " for ", channels, " output channels");
    const std::vector<int64_t> range_shape = [&] {
      std::vector<int64_t> shape(static_cast<size_t>(weight.dim()), 1);
      shape[0] = -1;
      return shape;
    }();
    const torch::Tensor scale = qp.scale.to(torch::kFloat).reshape({-1});
    const torch::Tensor zero_point = qp.zero_point.to(torch::kLong).reshape({-1});
    if (options_.form == OnnxForm::FakeQuantize) {
      const torch::Tensor lo = (static_cast<double>(fq->quant_min()) - zero_point.to(torch::kFloat)) * scale;
      const torch::Tensor hi = (static_cast<double>(fq->quant_max()) - zero_point.to(torch::kFloat)) * scale;
      const auto shaped = [&](const torch::Tensor& t) { return fq->per_channel() ? t.reshape(range_shape) : t.reshape({}); };
      const std::string w = initializer(base + ".weight", weight);
      const std::string out = fresh(base + ".weight/fq");
      const std::string l = initializer(out + ".lo", shaped(lo)), h = initializer(out + ".hi", shaped(hi));
      auto& n = node("FakeQuantize", {w, l, h, l, h}, out);
      n.set_domain(kOpenVINODomain);
      attr(n, "levels", fq->quant_max() - fq->quant_min() + 1);
      return {out, b};
    }
    // The integers the fake quantiser rounds the weight to: its own forward (observer off, so
    // nothing moves), divided back by the scale. Exact, whatever the quantiser's rounding.
    const bool observing = fq->observer_enabled();
    fq->disable_observer();
    torch::Tensor fake;
    {
      torch::NoGradGuard no_grad;
      fake = (*fq)(weight).detach();
    }
    fq->enable_observer(observing);
    const torch::Tensor s = fq->per_channel() ? scale.reshape(range_shape) : scale.reshape({});
    const torch::Tensor z = fq->per_channel() ? zero_point.reshape(range_shape) : zero_point.reshape({});
    const torch::Tensor ints = torch::round(fake / s).to(torch::kLong) + z;
    const bool is_unsigned = fq->dtype() == quant::QDType::QUInt8;
    const int64_t type_min = is_unsigned ? 0 : -128, type_max = is_unsigned ? 255 : 127;
    RAZOR_CHECK(ints.min().item<int64_t>() >= type_min && ints.max().item<int64_t>() <= type_max, "ONNX export: ",
                where(flow_.nodes[static_cast<size_t>(i)]), ": the weight's integers do not fit ",
                is_unsigned ? "uint8" : "int8");
    const auto int_type = is_unsigned ? torch::kUInt8 : torch::kInt8;
    const std::string wq = initializer(base + ".weight_quantized", ints.to(int_type));
    const std::string ws = initializer(base + ".weight_scale", fq->per_channel() ? scale : scale.reshape({}));
    const std::string wz = initializer(base + ".weight_zero_point",
                                       (fq->per_channel() ? zero_point : zero_point.reshape({})).to(int_type));
    const std::string out = fresh(base + ".weight/dq");
    auto& n = node("DequantizeLinear", {wq, ws, wz}, out);
    if (fq->per_channel()) attr(n, "axis", int64_t{0});
    return {out, b};
  }

  /// The bias as int32 through DequantizeLinear with scale s_input * s_weight (per output
  /// channel) and zero point 0, the integers razor's forward rounds it to (the onnxruntime
  /// backend's bias quantiser): the form in which onnxruntime and TensorRT fuse
  /// DQ -> Conv/Gemm -> Q into one integer kernel.
  std::string quantized_bias(const std::string& base, const torch::Tensor& bias, quant::FakeQuantizer& input_fq,
                             quant::FakeQuantizer& weight_fq) {
    const torch::Tensor scale = quant::bias_scale(input_fq, weight_fq, bias.numel());
    const torch::Tensor ints = quant::bias_integers(bias, scale).to(torch::kInt);
    const std::string out = fresh(base + ".bias/dq");
    auto& n = node("DequantizeLinear",
                   {initializer(base + ".bias_quantized", ints), initializer(base + ".bias_scale", scale),
                    initializer(base + ".bias_zero_point", torch::zeros({bias.numel()}, torch::kInt))},
                   out);
    attr(n, "axis", int64_t{0});
    return out;
  }

  // Ops whose output lies on their input's integer grid (a max, a copy, ReLU at the zero
  // point), so a QuantizeLinear -> DequantizeLinear with the input's parameters after them
  // changes nothing; written in the QDQ form so that what reads them reads a DequantizeLinear.
  static bool keeps_grid(const std::string& type) {
    return type == "MaxPool2d" || type == "Flatten" || type == "ReLU";
  }

  void emit(int64_t i) {
    const nn::DataflowNode& n = flow_.nodes[static_cast<size_t>(i)];
    const std::string label = where(n);
    std::vector<std::string> inputs;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      std::string value = value_of(n.inputs[k]);
      if (plan_) {
        quant::FakeQuantizer* fq = plan_->input_quantizer(i, static_cast<int64_t>(k));
        if (active(fq)) value = quantize_activation(value, *fq, label + " input " + std::to_string(k));
      }
      inputs.push_back(value);
    }
    std::string out = convert(i, n, inputs);
    if (plan_) {
      quant::FakeQuantizer* fq = plan_->output_quantizer(i);
      if (active(fq)) {
        out = quantize_activation(out, *fq, label + " output");
      } else if (options_.form == OnnxForm::QDQ && keeps_grid(n.type) && !inputs.empty()) {
        auto from = dequantized_from_.find(inputs[0]);
        if (from != dequantized_from_.end()) out = quantize_activation(out, *from->second, label + " output", false);
      }
    }
    values_[static_cast<size_t>(i)] = out;
  }

  /// The ONNX nodes of one op call; returns the value holding its output.
  std::string convert(int64_t i, const nn::DataflowNode& n, const std::vector<std::string>& inputs) {
    const std::string base = base_name(i);
    const std::string& type = n.type;
    if (type == "Identity" || type == "Dropout") return inputs.at(0);  // eval mode: nothing to compute
    if (type == "BatchNorm2d" && folded_into(i)) return inputs.at(0);  // folded into the op before it

    const std::string out = fresh(base);
    if (type == "Conv2d") {
      auto& conv = dynamic_cast<nn::Conv2d&>(*n.module);
      const auto [w, b] = weight_and_bias(i, conv);
      const auto& o = conv.options();
      std::vector<std::string> args = {inputs.at(0), w};
      if (!b.empty()) args.push_back(b);
      auto& node_proto = node("Conv", args, out);
      attr(node_proto, "kernel_shape", std::vector<int64_t>{o.kernel_size, o.kernel_size});
      attr(node_proto, "strides", std::vector<int64_t>{o.stride, o.stride});
      attr(node_proto, "pads", std::vector<int64_t>{o.padding, o.padding, o.padding, o.padding});
      attr(node_proto, "dilations", std::vector<int64_t>{o.dilation, o.dilation});
      attr(node_proto, "group", o.groups);
    } else if (type == "Linear") {
      auto& linear = dynamic_cast<nn::Linear&>(*n.module);
      RAZOR_CHECK(shape_of(n.inputs.at(0)).size() == 2, "ONNX export: ", where(n),
                  ": a Linear is written as Gemm, which needs a 2-D input; this one reads ",
                  torch::IntArrayRef(shape_of(n.inputs.at(0))));
      const auto [w, b] = weight_and_bias(i, linear);
      std::vector<std::string> args = {inputs.at(0), w};
      if (!b.empty()) args.push_back(b);
      attr(node("Gemm", args, out), "transB", int64_t{1});
    } else if (type == "BatchNorm2d") {
      auto& bn = dynamic_cast<nn::BatchNorm2d&>(*n.module);
      const int64_t c = bn.num_features();
      const torch::Tensor gamma = bn.affine() ? bn.weight.detach() : torch::ones({c});
      const torch::Tensor beta = bn.affine() ? bn.bias.detach() : torch::zeros({c});
      auto& node_proto = node("BatchNormalization",
                              {inputs.at(0), initializer(base + ".weight", gamma), initializer(base + ".bias", beta),
                               initializer(base + ".running_mean", bn.running_mean.detach()),
                               initializer(base + ".running_var", bn.running_var.detach())},
                              out);
      attr(node_proto, "epsilon", static_cast<float>(bn.eps()));
    } else if (type == "ReLU") {
      node("Relu", inputs, out);
    } else if (type == "ReLU6" && options_.form == OnnxForm::Float && options_.for_opencv) {
      // relu(x) - relu(x - 6): OpenCV 4.6's DNN reads no Clip with min/max inputs (opset >= 11).
      const std::string positive = fresh(base + "/relu"), shifted = fresh(base + "/minus6"), excess = fresh(base + "/excess");
      node("Relu", inputs, positive);
      node("Sub", {positive, scalar(base + ".six", 6.0f)}, shifted);
      node("Relu", {shifted}, excess);
      node("Sub", {positive, excess}, out);
    } else if (type == "ReLU6") {
      // Quantised forms keep the exact clip (the quantiser after it sees razor's values).
      node("Clip", {inputs.at(0), scalar(base + ".min", 0.0f), scalar(base + ".max", 6.0f)}, out);
    } else if (type == "Hardsigmoid") {
      hard_sigmoid(inputs.at(0), out, base);
    } else if (type == "Hardswish") {
      // HardSwish is opset 14; x * hardsigmoid(x) is the same function.
      const std::string gate = fresh(base + "/hardsigmoid");
      hard_sigmoid(inputs.at(0), gate, base);
      node("Mul", {inputs.at(0), gate}, out);
    } else if (type == "Sigmoid" || type == "Tanh") {
      node(type, inputs, out);
    } else if (type == "MaxPool2d" || type == "AvgPool2d") {
      const auto& o = type == "MaxPool2d" ? dynamic_cast<nn::MaxPool2d&>(*n.module).options()
                                          : dynamic_cast<nn::AvgPool2d&>(*n.module).options();
      const int64_t stride = o.stride > 0 ? o.stride : o.kernel_size;
      auto& node_proto = node(type == "MaxPool2d" ? "MaxPool" : "AveragePool", inputs, out);
      attr(node_proto, "kernel_shape", std::vector<int64_t>{o.kernel_size, o.kernel_size});
      attr(node_proto, "strides", std::vector<int64_t>{stride, stride});
      attr(node_proto, "pads", std::vector<int64_t>{o.padding, o.padding, o.padding, o.padding});
      attr(node_proto, "ceil_mode", int64_t{o.ceil_mode});
      if (type == "AvgPool2d") attr(node_proto, "count_include_pad", int64_t{o.count_include_pad});
    } else if (type == "AdaptiveAvgPool2d") {
      auto& pool = dynamic_cast<nn::AdaptiveAvgPool2d&>(*n.module);
      if (pool.output_height() == 1 && pool.output_width() == 1) {
        node("GlobalAveragePool", inputs, out);
      } else {
        const auto shape = shape_of(n.inputs.at(0));
        const int64_t h = shape.at(2), w = shape.at(3);
        RAZOR_CHECK(h % pool.output_height() == 0 && w % pool.output_width() == 0, "ONNX export: ", where(n),
                    ": adaptive pooling of ", h, "x", w, " to ", pool.output_height(), "x", pool.output_width(),
                    " has no fixed kernel");
        const std::vector<int64_t> kernel = {h / pool.output_height(), w / pool.output_width()};
        auto& node_proto = node("AveragePool", inputs, out);
        attr(node_proto, "kernel_shape", kernel);
        attr(node_proto, "strides", kernel);
      }
    } else if (type == "Flatten") {
      auto& flatten = dynamic_cast<nn::Flatten&>(*n.module);
      const auto rank = static_cast<int64_t>(shape_of(n.inputs.at(0)).size());
      const int64_t end = flatten.end_dim() < 0 ? flatten.end_dim() + rank : flatten.end_dim();
      RAZOR_CHECK(end == rank - 1, "ONNX export: ", where(n), ": only a Flatten to the last dimension is written");
      attr(node("Flatten", inputs, out), "axis", flatten.start_dim());
    } else if (type == "Add" || type == "Mul") {
      // ONNX's Add and Mul are binary: a chain for more inputs.
      std::string acc = inputs.at(0);
      for (size_t k = 1; k < inputs.size(); ++k) {
        const std::string next = k + 1 == inputs.size() ? out : fresh(base + "/partial");
        node(type, {acc, inputs[k]}, next);
        acc = next;
      }
      if (inputs.size() == 1) node("Identity", inputs, out);
    } else if (type == "Concat") {
      attr(node("Concat", inputs, out), "axis", dynamic_cast<nn::Concat&>(*n.module).dim());
    }
    return out;
  }

  void hard_sigmoid(const std::string& input, const std::string& out, const std::string& base) {
    auto& n = node("HardSigmoid", {input}, out);
    attr(n, "alpha", 1.0f / 6.0f);
    attr(n, "beta", 0.5f);
  }

  bool folded_into(int64_t bn_node) const {
    if (!plan_) return false;
    for (const auto& [op, bn] : plan_->folded_bn) {
      if (bn == bn_node) return true;
    }
    return false;
  }

  const nn::Dataflow& flow_;
  const OnnxOptions& options_;
  const quant::QuantPlan* plan_;
  int64_t opset_ = 13;
  onnx::ModelProto model_;
  onnx::GraphProto* graph_ = nullptr;
  std::vector<std::string> values_;
  std::set<std::string> used_names_ = {"input", "output"};
  std::map<std::pair<std::string, const quant::FakeQuantizer*>, std::string> quantized_;
  // The quantiser each DequantizeLinear output of an activation came from.
  std::map<std::string, quant::FakeQuantizer*> dequantized_from_;
  OnnxSummary summary_;
};

}  // namespace

OnnxForm parse_onnx_form(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "float") return OnnxForm::Float;
  if (lower == "qdq") return OnnxForm::QDQ;
  if (lower == "fakequantize" || lower == "openvino") return OnnxForm::FakeQuantize;
  throw config_error("unknown ONNX form \"", name, "\" (known: float, qdq, fakequantize)");
}

const char* onnx_form_name(OnnxForm form) {
  switch (form) {
    case OnnxForm::Float: return "float";
    case OnnxForm::QDQ: return "qdq";
    case OnnxForm::FakeQuantize: return "fakequantize";
  }
  return "?";
}

OnnxSummary write_onnx(const nn::Dataflow& flow, const OnnxOptions& options, const std::string& path) {
  GraphBuilder builder(flow, options);
  const onnx::ModelProto model = builder.build();
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw config_error("ONNX export: onnx's checker rejects the graph razor built (", e.what(), "); nothing written");
  }
  std::string bytes;
  RAZOR_CHECK(model.SerializeToString(&bytes), "ONNX export: the model could not be serialised");
  write_file_atomically(path, bytes);
  OnnxSummary summary = builder.summary();
  summary.bytes = static_cast<int64_t>(bytes.size());
  return summary;
}

}  // namespace razor::deploy
