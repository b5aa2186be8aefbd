#include "components/export/onnx_writer.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <variant>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <torch/torch.h>

#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"
#include "components/nn/weighted_op.h"
#include "components/quant/fake_quantize.h"
#include "components/quant/quantizer.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/strings.h"
#include "engine/version.h"

namespace razor::deploy {

namespace {

constexpr const char* kOpenVINODomain = "org.openvinotoolkit";

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
    for (const auto& node : flow_.nodes) {
      const nn::OpDescription* d = node.module ? node.module->description() : nullptr;
      RAZOR_CHECK(d && d->onnx, "ONNX export: ", where(node), " is a ", node.type,
                  ", which the ONNX writer does not know (its op description gives no ONNX form)");
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
    const nn::BatchNorm2d* bn = nullptr;
    if (plan_ && plan_->folded_bn.count(i)) {
      RAZOR_CHECK(op.folded_bn(), "ONNX export: ", where(flow_.nodes[static_cast<size_t>(i)]),
                  ": the plan folds a BatchNorm the op does not hold");
      bn = op.folded_bn();
      ++summary_.folded_bn;
    }
    // The one weight-step contract: folded first, then masked (a masked channel gives 0).
    torch::Tensor weight, bias;
    std::tie(weight, bias) = op.deployed_weight(bn);
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
      } else if (options_.form == OnnxForm::QDQ && n.module->description()->quant.keeps_grid && !inputs.empty()) {
        // Its output lies on its input's integer grid, so a QuantizeLinear -> DequantizeLinear
        // with the input's parameters changes nothing; written so that what reads it reads a
        // DequantizeLinear.
        auto from = dequantized_from_.find(inputs[0]);
        if (from != dequantized_from_.end()) out = quantize_activation(out, *from->second, label + " output", false);
      }
    }
    values_[static_cast<size_t>(i)] = out;
  }

  /// The ONNX nodes of one op call (its description's rule); returns the value holding its output.
  std::string convert(int64_t i, const nn::DataflowNode& n, const std::vector<std::string>& inputs) {
    if (folded_into(i)) return inputs.at(0);  // a BatchNorm folded into the op before it
    OpEmitter emitter(*this, i);
    return n.module->description()->onnx(emitter, *n.module, inputs);
  }

  /// What an op's rule writes with: this builder, at node `i`.
  class OpEmitter : public nn::OnnxEmitter {
   public:
    OpEmitter(GraphBuilder& builder, int64_t i) : b_(builder), i_(i), base_(builder.base_name(i)) {}

    std::string output() override {
      if (output_.empty()) output_ = b_.fresh(base_);
      return output_;
    }
    std::string value(const std::string& suffix) override { return b_.fresh(base_ + suffix); }
    void node(const std::string& op_type, const std::vector<std::string>& inputs, const std::string& output,
              const Attributes& attributes) override {
      onnx::NodeProto& n = b_.node(op_type, inputs, output);
      for (const auto& [name, value] : attributes) {
        std::visit([&n, &name = name](const auto& v) { GraphBuilder::attr(n, name, v); }, value);
      }
    }
    std::string constant(const std::string& suffix, const torch::Tensor& value) override {
      return b_.initializer(base_ + suffix, value);
    }
    std::pair<std::string, std::string> weight_and_bias(nn::WeightedOp& op) override {
      return b_.weight_and_bias(i_, op);
    }
    std::vector<int64_t> input_shape(size_t k) const override {
      return b_.shape_of(b_.flow_.nodes[static_cast<size_t>(i_)].inputs.at(k));
    }
    bool for_opencv() const override { return b_.options_.form == OnnxForm::Float && b_.options_.for_opencv; }
    [[noreturn]] void fail(const std::string& message) const override {
      throw config_error("ONNX export: ", GraphBuilder::where(b_.flow_.nodes[static_cast<size_t>(i_)]), ": ", message);
    }

   private:
    GraphBuilder& b_;
    int64_t i_;
    std::string base_, output_;
  };

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
