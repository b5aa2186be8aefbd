#pragma once
// Quantizers place fake quantisers on a model (MMRazor's TorchNativeQuantizer,
// OpenVINOQuantizer, TensorRTQuantizer and AcademicQuantizer), on razor's ops by module
// name, without rebuilding the model:
//   - weights: the op's "weight_fake_quant" (components/nn/weighted_op.h), after the
//     simulated folding of the BatchNorm that follows the op, as torch's ConvBn2d;
//   - activations: a fake quantiser on the output of an op call, or on one input of a call,
//     registered as a child of that op ("output_fake_quant", "input_fake_quant") and run by
//     the op's hooks.
// Where they go follows the backend and the model's dataflow (components/nn/dataflow.h):
//   native    the output of every quantised op: conv and linear (one quantiser after a
//             conv -> BN -> ReLU chain, not three), Add (with a following ReLU), Mul, Concat
//             and the other activations; shape and pooling ops (max/avg pooling, flatten,
//             ReLU, ReLU6, identity, dropout) keep their input's scale; the model input and
//             any value a quantised op reads unquantised get a quantiser before that op;
//   openvino  native, with OpenVINO's rules for redundant quantisers: none before ReLU6 (the
//             conv -> BN -> ReLU6 chain gets one after the ReLU6) or Identity, after max
//             pooling or flatten, or on the model output;
//   tensorrt  only the inputs and weights of conv and linear ops;
//   onnxruntime  native, with the chains onnxruntime fuses into one integer kernel: a conv ->
//             BN -> ReLU6 chain gets one quantiser after the ReLU6, and average pooling its
//             own output quantiser (QLinearAveragePool, QLinearGlobalAveragePool); with
//             asymmetric uint8 activations (zero point 0 after a ReLU) its QDQ export leaves no
//             float Conv, Gemm or Add in onnxruntime's optimised graph;
//   academic  the native placement on conv and linear chains only, with a qconfig per
//             module name or type (qconfig_mapping); no deploy rules.
// A concat's inputs share one quantiser (one scale), as NNCF unifies them.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "components/nn/dataflow.h"
#include "components/quant/qconfig.h"
#include "engine/args.h"

namespace razor::quant {

enum class Backend { Native, OpenVINO, TensorRT, Academic, ONNXRuntime };
const char* backend_name(Backend backend);

/// Module names: exact, or a regular expression after "{re}" (NNCF's spelling).
class Scopes {
 public:
  Scopes() = default;
  Scopes(std::vector<std::string> patterns, std::string key);
  bool empty() const { return patterns_.empty(); }
  bool matches(const std::string& name) const;
  /// Fails (naming the key) for a pattern that matches none of `names`.
  void check_used(const std::vector<std::string>& names) const;

 private:
  bool matches(size_t i, const std::string& name) const;

  std::vector<std::string> patterns_;
  std::vector<std::optional<std::regex>> regexes_;
  std::string key_;
};

struct QuantizerOptions {
  Backend backend = Backend::Native;
  /// The qconfig of every op no override names (MMRazor's global_qconfig / _global_).
  std::optional<QConfig> global_qconfig;
  /// Overrides: by op type ("Conv2d", "Linear", "Add") and by module name; a module name wins.
  std::vector<std::pair<std::string, QConfig>> object_type_qconfigs;
  std::vector<std::pair<std::string, QConfig>> module_name_qconfigs;
  /// Ops left in float, and (when not empty) the only ops quantised.
  Scopes ignored_scopes, target_scopes;
  /// "CPU": 8-bit weights in a 7-bit range, so u8 x s8 kernels without VNNI cannot saturate
  /// their int16 accumulators (NNCF's CPU preset); "ANY": as configured.
  std::string target_device = "ANY";
  /// Per-module weight bit widths (mixed precision); module name -> bits.
  std::map<std::string, int64_t> weight_bits;

  /// Reads a `quantizer` table: type (NativeQuantizer | TorchNativeQuantizer |
  /// OpenVINOQuantizer | TensorRTQuantizer | ONNXRuntimeQuantizer | AcademicQuantizer,
  /// "mmrazor." allowed),
  /// global_qconfig, qconfig_mapping { _global_, object_type, module_name }, ignored_scopes,
  /// target_scopes, target_device, weight_bits, tracer (MMRazor's; razor traces by itself).
  static QuantizerOptions parse(Args& args);
};

/// One activation quantiser and where it acts.
struct ActivationPoint {
  /// The dataflow node (an op call) it belongs to.
  int64_t node = -1;
  /// -1: on the node's output; i >= 0: on its i-th input.
  int64_t input = -1;
  /// The child name it is registered under on the node's op.
  std::string name;
  std::shared_ptr<FakeQuantizer> fake_quant;
};

/// What a quantizer attached: the traced dataflow, each weight quantiser (by node) and each
/// activation point, in dataflow order. Exporters and tests read it.
struct QuantPlan {
  Backend backend = Backend::Native;
  nn::Dataflow flow;
  std::map<int64_t, std::shared_ptr<FakeQuantizer>> weight_fake_quants;
  /// The BatchNorm folded into each weighted node (simulated in training, for good at export).
  std::map<int64_t, int64_t> folded_bn;
  std::vector<ActivationPoint> activations;
  /// For the ops whose bias is quantised (the onnxruntime backend, whose integer kernels add an
  /// int32 bias), the quantiser of the op's input: with the weight's it gives the bias grid.
  std::map<int64_t, std::shared_ptr<FakeQuantizer>> bias_input_quants;

  /// The output quantiser of `node` (null: none).
  FakeQuantizer* output_quantizer(int64_t node) const;
  /// The quantiser on input `i` of `node` (null: none).
  FakeQuantizer* input_quantizer(int64_t node, int64_t i) const;
  /// A readable list, one point per line ("backbone.conv1.conv  weight  PerChannelMinMaxObserver qint8[-127,127]").
  std::string describe() const;
};

/// The int32 grid of a quantised op's bias, [channels]: s_input * s_weight (per output channel)
/// in float32, as integer runtimes form it.
torch::Tensor bias_scale(FakeQuantizer& input, FakeQuantizer& weight, int64_t channels);
/// round(bias / bias_scale), clamped to int32, in float32: the integers an export writes.
torch::Tensor bias_integers(const torch::Tensor& bias, const torch::Tensor& scale);

/// Places and attaches the quantisers on `root` (the float architecture, assigned paths),
/// tracing it with `forward` on `example` (a batch of the model's input shape). Hooks stay
/// on the modules for the lifetime of the model.
std::shared_ptr<QuantPlan> prepare(torch::nn::Module& root, const QuantizerOptions& options,
                                   const torch::Tensor& example,
                                   const std::function<torch::Tensor(const torch::Tensor&)>& forward);

}  // namespace razor::quant
