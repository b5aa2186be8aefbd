#pragma once
// What an op's ONNX rule (OpDescription::onnx) writes with: nodes, constants and the op's
// weights, named after the op. The ONNX writer (components/export) implements it; the ops
// need no ONNX headers.
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <torch/types.h>

namespace razor::nn {

class WeightedOp;

class OnnxEmitter {
 public:
  using Attribute = std::variant<int64_t, float, std::vector<int64_t>>;
  using Attributes = std::vector<std::pair<std::string, Attribute>>;

  virtual ~OnnxEmitter() = default;

  /// The value that holds the op's output, named after the op (made on the first call).
  virtual std::string output() = 0;
  /// A new intermediate value, named after the op with `suffix` ("/relu").
  virtual std::string value(const std::string& suffix) = 0;
  /// A node of `op_type` computing `output` from `inputs`.
  virtual void node(const std::string& op_type, const std::vector<std::string>& inputs, const std::string& output,
                    const Attributes& attributes = {}) = 0;
  /// A constant (initialiser) named after the op with `suffix` (".six").
  virtual std::string constant(const std::string& suffix, const torch::Tensor& value) = 0;
  /// The weight and bias ("" without one) as the graph reads them: what razor's forward
  /// computes with (BatchNorm folded, channels masked) in the form being written (float,
  /// int8 with DequantizeLinear, or FakeQuantize).
  virtual std::pair<std::string, std::string> weight_and_bias(WeightedOp& op) = 0;
  /// The shape of input `k` (the batch as traced).
  virtual std::vector<int64_t> input_shape(size_t k) const = 0;
  /// Whether the file is float for OpenCV 4.6's DNN, which reads fewer ops.
  virtual bool for_opencv() const = 0;
  /// Throws a config error that names the op: "ONNX export: module "...": message".
  [[noreturn]] virtual void fail(const std::string& message) const = 0;
};

}  // namespace razor::nn
