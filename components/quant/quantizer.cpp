#include "components/quant/quantizer.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "components/nn/op_description.h"
#include "components/nn/weighted_op.h"
#include "components/quant/register_quant.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor::quant {

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::Native: return "native";
    case Backend::OpenVINO: return "openvino";
    case Backend::TensorRT: return "tensorrt";
    case Backend::Academic: return "academic";
    case Backend::ONNXRuntime: return "onnxruntime";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------
// Scopes

Scopes::Scopes(std::vector<std::string> patterns, std::string key)
    : patterns_(std::move(patterns)), key_(std::move(key)) {
  const std::string re = "{re}";
  for (const auto& p : patterns_) {
    if (p.rfind(re, 0) == 0) {
      try {
        regexes_.emplace_back(std::regex(p.substr(re.size())));
      } catch (const std::regex_error& e) {
        throw config_error(key_ + ": \"" + p + "\" is not a regular expression: " + e.what());
      }
    } else {
      regexes_.emplace_back(std::nullopt);
    }
  }
}

bool Scopes::matches(size_t i, const std::string& name) const {
  return regexes_[i] ? std::regex_match(name, *regexes_[i]) : name == patterns_[i];
}

bool Scopes::matches(const std::string& name) const {
  for (size_t i = 0; i < patterns_.size(); ++i) {
    if (matches(i, name)) return true;
  }
  return false;
}

void Scopes::check_used(const std::vector<std::string>& names) const {
  for (size_t i = 0; i < patterns_.size(); ++i) {
    const bool used = std::any_of(names.begin(), names.end(), [&](const std::string& n) { return matches(i, n); });
    if (!used) {
      throw config_error(key_ + ": \"" + patterns_[i] + "\" names no op of the model" +
                        (regexes_[i] ? std::string() : did_you_mean(patterns_[i], names)));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Options

namespace {

std::string strip_type_scope(std::string type) {
  for (const std::string scope : {"mmrazor.", "torch.nn."}) {
    if (type.rfind(scope, 0) == 0) type = type.substr(scope.size());
  }
  return type;
}

// `object_type` / `module_name` of a qconfig_mapping: a table { NAME = qconfig } or MMRazor's
// list of [NAME, qconfig] pairs.
std::vector<std::pair<std::string, QConfig>> read_overrides(Args& mapping, const std::string& key) {
  std::vector<std::pair<std::string, QConfig>> out;
  if (!mapping.has(key)) return out;
  const Json& value = mapping.table().at(key);
  const std::string path = mapping.path() + "." + key;
  if (value.is_object()) {
    for (const auto& item : value.items()) {
      out.emplace_back(strip_type_scope(item.key()), QConfig::parse(item.value(), path + "." + item.key()));
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      const Json& pair = value[i];
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_object()) {
        throw config_error(path + "[" + std::to_string(i) + "]: each entry must be [\"NAME\", { qconfig }]");
      }
      out.emplace_back(strip_type_scope(pair[0].get<std::string>()),
                       QConfig::parse(pair[1], path + "[" + std::to_string(i) + "]"));
    }
  } else {
    mapping.fail(key, "must be a table { NAME = qconfig } or a list of [NAME, qconfig] pairs");
  }
  mapping.accept(key);
  return out;
}

}  // namespace

QuantizerOptions QuantizerOptions::parse(Args& args) {
  register_quant();
  QuantizerOptions o;
  const std::string type = strip_type_scope(args.require<std::string>("type"));
  if (type == "NativeQuantizer" || type == "TorchNativeQuantizer") {
    o.backend = Backend::Native;
  } else if (type == "OpenVINOQuantizer") {
    o.backend = Backend::OpenVINO;
  } else if (type == "TensorRTQuantizer") {
    o.backend = Backend::TensorRT;
  } else if (type == "AcademicQuantizer") {
    o.backend = Backend::Academic;
  } else if (type == "ONNXRuntimeQuantizer") {
    o.backend = Backend::ONNXRuntime;
  } else {
    args.fail("type", "unknown quantizer \"" + type +
                          "\" (NativeQuantizer, OpenVINOQuantizer, TensorRTQuantizer, ONNXRuntimeQuantizer, AcademicQuantizer)");
  }
  if (args.has("global_qconfig")) {
    Args q = args.sub("global_qconfig");
    o.global_qconfig = QConfig::parse(q);
  }
  if (args.has("qconfig_mapping")) {
    Args mapping = args.sub("qconfig_mapping");
    if (mapping.has("_global_")) {
      RAZOR_CHECK(!o.global_qconfig, args.path(), ": give global_qconfig or qconfig_mapping._global_, not both");
      Args q = mapping.sub("_global_");
      o.global_qconfig = QConfig::parse(q);
    }
    o.object_type_qconfigs = read_overrides(mapping, "object_type");
    o.module_name_qconfigs = read_overrides(mapping, "module_name");
    mapping.finish();
  }
  if (!o.global_qconfig && o.object_type_qconfigs.empty() && o.module_name_qconfigs.empty()) {
    args.fail_missing(o.backend == Backend::Academic ? "qconfig_mapping" : "global_qconfig");
  }
  o.ignored_scopes = Scopes(args.get<std::vector<std::string>>("ignored_scopes", {}), args.path() + ".ignored_scopes");
  o.target_scopes = Scopes(args.get<std::vector<std::string>>("target_scopes", {}), args.path() + ".target_scopes");
  o.target_device = args.get<std::string>("target_device", "ANY");
  if (o.target_device != "ANY" && o.target_device != "CPU") {
    args.fail("target_device", "must be \"ANY\" or \"CPU\", got \"" + o.target_device + "\"");
  }
  if (args.has("weight_bits")) {
    Args bits = args.sub("weight_bits");
    for (const auto& item : bits.table().items()) {
      const int64_t b = bits.require<int64_t>(item.key());
      if (b < 2 || b > 8) bits.fail(item.key(), "weight bit widths are 2..8, got " + std::to_string(b));
      o.weight_bits[item.key()] = b;
    }
  }
  if (args.has("tracer")) args.accept("tracer");  // MMRazor's tracer settings; razor traces its own ops.
  args.finish();
  return o;
}

// ---------------------------------------------------------------------------------------
// The plan

FakeQuantizer* QuantPlan::output_quantizer(int64_t node) const {
  for (const auto& p : activations) {
    if (p.node == node && p.input < 0) return p.fake_quant.get();
  }
  return nullptr;
}

FakeQuantizer* QuantPlan::input_quantizer(int64_t node, int64_t i) const {
  for (const auto& p : activations) {
    if (p.node == node && p.input == i) return p.fake_quant.get();
  }
  return nullptr;
}

namespace {
std::string describe_fq(const FakeQuantizer& fq) {
  std::ostringstream s;
  s << fq.type_name() << "/" << fq.observer().type_name() << " " << (fq.dtype() == QDType::QInt8 ? "qint8" : "quint8")
    << "[" << fq.quant_min() << "," << fq.quant_max() << "]" << (fq.per_channel() ? " per-channel" : "");
  return s.str();
}
}  // namespace

std::string QuantPlan::describe() const {
  std::ostringstream s;
  s << "quantizer (" << backend_name(backend) << "): " << weight_fake_quants.size() << " weight and "
    << activations.size() << " activation quantisers\n";
  for (size_t n = 0; n < flow.nodes.size(); ++n) {
    const auto& node = flow.nodes[n];
    const std::string where = node.path + (node.call ? "#" + std::to_string(node.call) : "");
    for (const auto& p : activations) {
      if (p.node == static_cast<int64_t>(n) && p.input >= 0)
        s << "  " << where << "  input " << p.input << "  " << describe_fq(*p.fake_quant) << "\n";
    }
    auto w = weight_fake_quants.find(static_cast<int64_t>(n));
    if (w != weight_fake_quants.end()) {
      s << "  " << where << "  weight  " << describe_fq(*w->second);
      auto bn = folded_bn.find(static_cast<int64_t>(n));
      if (bn != folded_bn.end()) s << "  (folds " << flow.nodes[static_cast<size_t>(bn->second)].path << ")";
      s << "\n";
    }
    if (FakeQuantizer* out = output_quantizer(static_cast<int64_t>(n))) {
      s << "  " << where << "  output  " << describe_fq(*out) << "\n";
    }
  }
  return s.str();
}

// ---------------------------------------------------------------------------------------
// Placement

namespace {

/// The quantisation traits of a traced op (an op without a description: none).
const nn::QuantTraits& traits(const nn::DataflowNode& node) {
  static const nn::QuantTraits kNone;
  const nn::OpDescription* d = node.module ? node.module->description() : nullptr;
  return d ? d->quant : kNone;
}

bool is_weighted(const nn::DataflowNode& node) { return traits(node).role == nn::QuantRole::kWeighted; }

/// Whether the op's output keeps its input's quantisation parameters (torch's share-qparams ops).
bool keeps_input_scale(const nn::DataflowNode& node) { return traits(node).role == nn::QuantRole::kSharesInput; }

/// Whether `backend` gives the op an output quantiser: weighted and quantised ops, and the
/// ops the backend requantises (onnxruntime's average pools, the native BatchNorm).
bool is_quantised_op(const nn::DataflowNode& node, Backend backend) {
  const nn::QuantTraits& t = traits(node);
  if (t.role == nn::QuantRole::kQuantised) return true;
  return std::find(t.own_output_on.begin(), t.own_output_on.end(), backend_name(backend)) != t.own_output_on.end();
}

/// A planned activation quantiser before it exists: a group id (concat inputs merge
/// groups) and the qconfig that builds it.
struct PlannedPoint {
  int64_t node;
  int64_t input;
  int64_t group;
};

class Planner {
 public:
  Planner(const nn::Dataflow& flow, const QuantizerOptions& options) : flow_(flow), o_(options) {}

  const QConfig* qconfig_for(int64_t n) const {
    const auto& node = flow_.nodes[static_cast<size_t>(n)];
    if (!o_.target_scopes.empty() && !o_.target_scopes.matches(node.path)) return nullptr;
    if (o_.ignored_scopes.matches(node.path)) return nullptr;
    for (const auto& [name, q] : o_.module_name_qconfigs) {
      if (name == node.path) return &q;
    }
    for (const auto& [type, q] : o_.object_type_qconfigs) {
      if (type == node.type) return &q;
    }
    return o_.global_qconfig ? &*o_.global_qconfig : nullptr;
  }

  void run() {
    const auto count = flow_.nodes.size();
    value_group_.assign(count, -1);
    absorbed_.assign(count, false);
    for (size_t i = 0; i < count; ++i) plan_node(static_cast<int64_t>(i));
  }

  std::vector<PlannedPoint> points;
  std::vector<const QConfig*> group_qconfig;
  std::vector<int64_t> parent;  // union-find over groups
  std::map<int64_t, int64_t> folded_bn;
  std::vector<int64_t> weighted_nodes;

  int64_t root(int64_t g) {
    while (parent[static_cast<size_t>(g)] != g) g = parent[static_cast<size_t>(g)] = parent[static_cast<size_t>(parent[static_cast<size_t>(g)])];
    return g;
  }

 private:
  const nn::DataflowNode& node(int64_t n) const { return flow_.nodes[static_cast<size_t>(n)]; }

  int64_t new_group(const QConfig* q) {
    group_qconfig.push_back(q);
    parent.push_back(static_cast<int64_t>(parent.size()));
    return static_cast<int64_t>(parent.size()) - 1;
  }

  /// Makes sure input `i` of `n` reads a quantised value, adding a quantiser before `n` if
  /// not (one per value, shared by every op that needs it). Returns the value's group.
  int64_t require_input(int64_t n, size_t i, const QConfig* q) {
    const int64_t from = flow_.nodes[static_cast<size_t>(n)].inputs[i];
    if (from >= 0 && value_group_[static_cast<size_t>(from)] >= 0) return value_group_[static_cast<size_t>(from)];
    int64_t group;
    // Values of code between modules are not told apart: each gets its own quantiser.
    auto it = from == nn::kUnknownProducer ? input_groups_.end() : input_groups_.find(from);
    if (it != input_groups_.end()) {
      group = it->second;
    } else {
      group = new_group(q);
      if (from != nn::kUnknownProducer) input_groups_[from] = group;
    }
    points.push_back({n, static_cast<int64_t>(i), group});
    return group;
  }

  void add_output(int64_t end, const QConfig* q) {
    const bool drop_at_output = o_.backend == Backend::OpenVINO || o_.backend == Backend::TensorRT;
    if (drop_at_output && flow_.nodes[static_cast<size_t>(end)].is_output) return;
    const int64_t group = new_group(q);
    points.push_back({end, -1, group});
    value_group_[static_cast<size_t>(end)] = group;
  }

  /// The last op of the chain that starts at `head` and shares its output quantiser.
  int64_t chain_end(int64_t head) {
    int64_t end = head;
    if (is_weighted(node(head))) {
      const int64_t c = flow_.only_consumer(end);
      if (c >= 0 && traits(node(c)).chain == nn::ChainRole::kFoldedNorm && dynamic_cast<nn::Conv2d*>(node(head).module)) {
        auto* bn = dynamic_cast<nn::BatchNorm2d*>(node(c).module);
        if (bn && bn->affine()) {
          folded_bn[head] = c;
          absorbed_[static_cast<size_t>(c)] = true;
          end = c;
        }
      }
    }
    const int64_t c = flow_.only_consumer(end);
    const bool relu6_fuses = o_.backend == Backend::OpenVINO || o_.backend == Backend::ONNXRuntime;
    const nn::ChainRole role = c >= 0 ? traits(node(c)).chain : nn::ChainRole::kNone;
    if ((role == nn::ChainRole::kActivation || (relu6_fuses && role == nn::ChainRole::kClampedActivation)) &&
        (is_weighted(node(head)) || traits(node(head)).fuses_activation)) {
      absorbed_[static_cast<size_t>(c)] = true;
      end = c;
    }
    return end;
  }

  void plan_node(int64_t n) {
    const auto& node = this->node(n);
    if (absorbed_[static_cast<size_t>(n)]) return;  // its group is set by the chain head
    const QConfig* q = qconfig_for(n);
    if (o_.backend == Backend::TensorRT) {
      if (is_weighted(node) && q) {
        weighted_nodes.push_back(n);
        chain_end(n);  // folds the BN that follows
        require_input(n, 0, q);
      }
      return;
    }
    const bool academic = o_.backend == Backend::Academic;
    if (is_weighted(node) || (!academic && is_quantised_op(node, o_.backend))) {
      if (!q) return;  // left in float
      if (is_weighted(node)) weighted_nodes.push_back(n);
      for (size_t i = 0; i < node.inputs.size(); ++i) require_input(n, i, q);
      add_output(chain_end(n), q);
    } else if (traits(node).role == nn::QuantRole::kConcat && !academic) {
      if (!q) return;
      int64_t merged = -1;
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        const int64_t g = root(require_input(n, i, q));
        if (merged < 0) merged = g; else parent[static_cast<size_t>(g)] = merged;
      }
      value_group_[static_cast<size_t>(n)] = merged;
    } else if (keeps_input_scale(node) && !node.inputs.empty() && node.inputs[0] >= 0) {
      value_group_[static_cast<size_t>(n)] = value_group_[static_cast<size_t>(node.inputs[0])];
    }
  }

  const nn::Dataflow& flow_;
  const QuantizerOptions& o_;
  std::vector<int64_t> value_group_;
  std::vector<bool> absorbed_;
  std::map<int64_t, int64_t> input_groups_;
};

std::string point_name(const ActivationPoint& p, int64_t call) {
  std::string name = p.input < 0 ? "output_fake_quant" : "input_fake_quant";
  if (p.input > 0) name += "_" + std::to_string(p.input);
  if (call > 0) name += "_call" + std::to_string(call);
  return name;
}

/// The quantisers of one op, per call of it in a forward. A quantiser read by several ops
/// quantises each value once: the first op computes it, the others reuse it.
struct SharedInput {
  std::shared_ptr<FakeQuantizer> fake_quant;
  torch::Tensor last_input, last_output;
  int64_t last_version = -1;
  torch::Tensor apply(const torch::Tensor& x) {
    if (last_input.defined() && x.unsafeGetTensorImpl() == last_input.unsafeGetTensorImpl() &&
        x._version() == last_version) {
      return last_output;
    }
    last_input = x;
    last_version = x._version();
    last_output = (*fake_quant)(x);
    return last_output;
  }
  void forget() { last_input = last_output = torch::Tensor(); }
};

struct OpPoints {
  int64_t calls = 0;
  int64_t counter = 0;
  int64_t current = 0;
  std::vector<std::vector<std::shared_ptr<SharedInput>>> inputs;  // [call][input]
  std::vector<std::shared_ptr<FakeQuantizer>> outputs;            // [call]
};

}  // namespace

torch::Tensor bias_scale(FakeQuantizer& input, FakeQuantizer& weight, int64_t channels) {
  const torch::Tensor s_input = input.calculate_qparams().scale.detach().to(torch::kFloat).reshape({-1}).slice(0, 0, 1);
  torch::Tensor scale = weight.calculate_qparams().scale.detach().to(torch::kFloat).reshape({-1}) * s_input;
  if (scale.numel() == 1) scale = scale.expand({channels});
  return scale.contiguous();
}

torch::Tensor bias_integers(const torch::Tensor& bias, const torch::Tensor& scale) {
  return torch::round(bias.detach().to(torch::kFloat) / scale.to(bias.device())).clamp(-2147483647.0, 2147483647.0);
}

namespace {

// The quantiser whose output op `n` reads: on its input, or on the value's producer, through
// the ops that keep their input's scale.
std::shared_ptr<FakeQuantizer> input_fake_quant_of(const QuantPlan& plan, int64_t n) {
  for (const auto& p : plan.activations) {
    if (p.node == n && p.input == 0) return p.fake_quant;
  }
  const auto& nodes = plan.flow.nodes;
  for (int64_t from = nodes[static_cast<size_t>(n)].inputs.empty() ? -1 : nodes[static_cast<size_t>(n)].inputs[0];
       from >= 0;) {
    for (const auto& p : plan.activations) {
      if (p.node == from && p.input < 0) return p.fake_quant;
    }
    const auto& node = nodes[static_cast<size_t>(from)];
    if (!keeps_input_scale(node) || node.inputs.empty()) break;
    from = node.inputs[0];
  }
  return nullptr;
}

// The onnxruntime backend's biases on their int32 grid, in razor's forward as in the runtime.
void quantise_biases(QuantPlan& plan) {
  for (const auto& [n, weight_fq] : plan.weight_fake_quants) {
    auto* op = dynamic_cast<nn::WeightedOp*>(plan.flow.nodes[static_cast<size_t>(n)].module);
    if (!op || op->has_bias_quant()) continue;
    std::shared_ptr<FakeQuantizer> input_fq = input_fake_quant_of(plan, n);
    if (!input_fq) continue;
    plan.bias_input_quants[n] = input_fq;
    op->set_bias_quant([input_fq, weight_fq = weight_fq](const torch::Tensor& bias) {
      const torch::Tensor scale = bias_scale(*input_fq, *weight_fq, bias.numel()).to(bias.device());
      const torch::Tensor rounded = (bias_integers(bias, scale) * scale).to(bias.dtype());
      return rounded + (bias - bias.detach());  // exactly `rounded`, the gradient straight through
    });
  }
}

}  // namespace

std::shared_ptr<QuantPlan> prepare(torch::nn::Module& root, const QuantizerOptions& options,
                                   const torch::Tensor& example,
                                   const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  auto plan = std::make_shared<QuantPlan>();
  plan->backend = options.backend;
  plan->flow = nn::trace_dataflow(root, example, forward);
  const nn::Dataflow& flow = plan->flow;
  RAZOR_CHECK(!flow.nodes.empty(), "quantizer: the model's forward called no razor op");

  std::vector<std::string> names;
  for (const auto& n : flow.nodes) names.push_back(n.path);
  options.ignored_scopes.check_used(names);
  options.target_scopes.check_used(names);
  for (const auto& [name, q] : options.module_name_qconfigs) {
    (void)q;
    Scopes({name}, "quantizer.qconfig_mapping.module_name").check_used(names);
  }
  for (const auto& [name, b] : options.weight_bits) {
    (void)b;
    Scopes({name}, "quantizer.weight_bits").check_used(names);
  }

  Planner planner(flow, options);
  planner.run();

  // Shared pointers of the ops (the trace knows raw pointers only).
  std::map<const torch::nn::Module*, std::shared_ptr<torch::nn::Module>> owner;
  for (const auto& m : root.modules(/*include_self=*/false)) owner[m.get()] = m;

  for (const int64_t n : planner.weighted_nodes) {
    const auto& node = flow.nodes[static_cast<size_t>(n)];
    auto* op = dynamic_cast<nn::WeightedOp*>(node.module);
    RAZOR_ASSERT(op);
    if (plan->weight_fake_quants.count(n) || op->weight_fake_quant()) continue;  // a second call of one op
    QConfig q = *planner.qconfig_for(n);
    auto bits = options.weight_bits.find(node.path);
    if (bits != options.weight_bits.end()) {
      q = q.with_weight_bit(bits->second);
    } else if (options.target_device == "CPU" && q.w_qscheme().bit == 8) {
      q = q.with_weight_bit(7);
    }
    auto fq = q.build_weight_fake_quant(op->out_channels());
    op->set_weight_fake_quant(fq);
    plan->weight_fake_quants[n] = fq;
    auto bn = planner.folded_bn.find(n);
    if (bn != planner.folded_bn.end()) {
      auto bn_module = std::dynamic_pointer_cast<nn::BatchNorm2d>(owner.at(flow.nodes[static_cast<size_t>(bn->second)].module));
      op->fold_bn(bn_module);
      plan->folded_bn[n] = bn->second;
    }
  }

  // One quantiser per group (concat inputs share theirs).
  std::map<int64_t, std::shared_ptr<FakeQuantizer>> built;
  std::map<int64_t, std::shared_ptr<SharedInput>> shared;
  std::map<nn::Module*, std::shared_ptr<OpPoints>> ops;
  for (const auto& n : flow.nodes) {
    auto& points = ops[n.module];
    if (!points) points = std::make_shared<OpPoints>();
    points->calls = std::max(points->calls, n.call + 1);
  }
  for (auto& [module, points] : ops) {
    points->inputs.resize(static_cast<size_t>(points->calls));
    points->outputs.resize(static_cast<size_t>(points->calls));
  }
  std::set<nn::Module*> hooked;
  for (const auto& planned : planner.points) {
    const int64_t g = planner.root(planned.group);
    auto& fq = built[g];
    if (!fq) fq = planner.group_qconfig[static_cast<size_t>(g)]->build_activation_fake_quant();
    const auto& node = flow.nodes[static_cast<size_t>(planned.node)];
    ActivationPoint point{planned.node, planned.input, "", fq};
    point.name = point_name(point, node.call);
    node.module->register_module(point.name, fq);
    auto& op = *ops.at(node.module);
    if (planned.input < 0) {
      op.outputs[static_cast<size_t>(node.call)] = fq;
    } else {
      auto& slots = op.inputs[static_cast<size_t>(node.call)];
      if (slots.size() <= static_cast<size_t>(planned.input)) slots.resize(static_cast<size_t>(planned.input) + 1);
      auto& s = shared[g];
      if (!s) s = std::make_shared<SharedInput>(SharedInput{fq, {}, {}, -1});
      slots[static_cast<size_t>(planned.input)] = s;
    }
    hooked.insert(node.module);
    plan->activations.push_back(std::move(point));
  }

  // The first op of the forward starts a new pass: call counters and reuse memos reset.
  auto all_ops = std::make_shared<std::vector<std::shared_ptr<OpPoints>>>();
  for (auto& item : ops) all_ops->push_back(item.second);
  auto all_shared = std::make_shared<std::vector<std::shared_ptr<SharedInput>>>();
  for (auto& item : shared) all_shared->push_back(item.second);
  flow.nodes.front().module->add_forward_pre_hook([all_ops, all_shared](nn::Module&, nn::Inputs&) {
    for (auto& op : *all_ops) op->counter = 0;
    for (auto& s : *all_shared) s->forget();
  });
  for (nn::Module* module : hooked) {
    auto op = ops.at(module);
    module->add_forward_pre_hook([op, module](nn::Module&, nn::Inputs& inputs) {
      RAZOR_CHECK(op->counter < op->calls, module->path(), " was called ", op->counter + 1,
                  " times in one forward; when the quantizer traced the model it was called ", op->calls,
                  " times (quantised models must take the traced path)");
      op->current = op->counter++;
      const auto& slots = op->inputs[static_cast<size_t>(op->current)];
      for (size_t i = 0; i < slots.size() && i < inputs.size(); ++i) {
        if (slots[i]) inputs[i] = slots[i]->apply(inputs[i]);
      }
    });
    module->add_forward_hook([op](nn::Module&, const nn::Inputs&, torch::Tensor& output) {
      const auto& fq = op->outputs[static_cast<size_t>(op->current)];
      if (fq) output = (*fq)(output);
    });
  }
  if (options.backend == Backend::ONNXRuntime) quantise_biases(*plan);
  return plan;
}

}  // namespace razor::quant
