#pragma once
// Writes a razor model as an ONNX file, from its dataflow (components/nn/dataflow.h): one ONNX
// node (or a few) per op call, the weights as initialisers. Three forms:
//   float         opset 13, the float model as it computes in eval mode (BatchNorms as
//                 BatchNormalization nodes; ReLU6 as relu(x) - relu(x - 6), which OpenCV 4.6
//                 reads);
//   qdq           opset 13, a quantised model in the explicit QuantizeLinear/DequantizeLinear
//                 form TensorRT and onnxruntime read: BatchNorms folded into the weights
//                 before them, weights stored as int8 initialisers followed by
//                 DequantizeLinear (per channel with `axis`), each activation quantiser a
//                 QuantizeLinear -> DequantizeLinear pair (with a Clip first when its integer
//                 range is narrower than the type's, e.g. 4-bit or [-127, 127]);
//   fakequantize  opset 11, OpenVINO's form: BatchNorms folded, each quantiser (weights too)
//                 a FakeQuantize node (domain org.openvinotoolkit) with `levels` and the input
//                 and output range [(qmin - zp) * scale, (qmax - zp) * scale].
// The graph has one input "input" ([N, C, H, W], N dynamic) and one output "output".
// Nothing is written unless the whole graph converts: an op the writer does not know, or a
// value computed by code between modules, is an error naming the module.
#include <cstdint>
#include <string>
#include <vector>

#include "components/nn/dataflow.h"

namespace razor::quant {
struct QuantPlan;
}

namespace razor::deploy {

enum class OnnxForm { Float, QDQ, FakeQuantize };

/// "float" | "qdq" | "fakequantize" (also "openvino"); anything else is an error listing them.
OnnxForm parse_onnx_form(const std::string& name);
const char* onnx_form_name(OnnxForm form);

struct OnnxOptions {
  OnnxForm form = OnnxForm::Float;
  /// The quantisers of the model (required by qdq and fakequantize; float ignores it).
  const quant::QuantPlan* plan = nullptr;
  /// The example input's shape, [N, C, H, W]; N is written as the dynamic dimension "N".
  std::vector<int64_t> input_shape;
  /// Float form: ReLU6 as relu(x) - relu(x - 6), which OpenCV 4.6 reads; false writes Clip,
  /// which onnxruntime fuses into the conv before it.
  bool for_opencv = true;
};

struct OnnxSummary {
  int64_t opset = 0;
  int64_t nodes = 0;
  int64_t initializers = 0;
  /// Activation and weight quantisers written (QDQ pairs or FakeQuantize nodes).
  int64_t activation_quantizers = 0;
  int64_t weight_quantizers = 0;
  int64_t folded_bn = 0;
  /// Bytes of the serialised model.
  int64_t bytes = 0;
};

/// Converts `flow` (traced on the model, which must still be alive and in eval mode) and
/// writes it to `path` atomically, after onnx's own checker accepted the graph.
OnnxSummary write_onnx(const nn::Dataflow& flow, const OnnxOptions& options, const std::string& path);

}  // namespace razor::deploy
