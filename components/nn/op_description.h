#pragma once
// What one kind of op is to the passes that read the op graph: where quantiser placement
// puts its quantisers, how the resource estimator counts it, how the ONNX writer writes it.
// Each op module returns its description from Module::description(), written beside the
// op, so that adding an op means writing one description, not editing every pass. Blocks
// (modules with razor children) have none.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "components/nn/module.h"

namespace razor::nn {

class OnnxEmitter;

/// Where quantiser placement puts quantisers around the op.
enum class QuantRole {
  /// None of its own: a value it makes is quantised where a consumer needs it.
  kFloat,
  /// A weight quantiser, input quantisers, and one output quantiser after its chain
  /// (Conv2d, Linear).
  kWeighted,
  /// Input quantisers and an output quantiser (Add, Mul, Hardswish, Sigmoid, ...).
  kQuantised,
  /// Its output keeps its input's quantisation parameters (pools, flatten, ReLU, identity:
  /// torch's share-qparams ops).
  kSharesInput,
  /// One quantiser for all its inputs, so that its output lies on one grid (Concat).
  kConcat,
};

/// How the op joins the chain of the op before it, which then has one output quantiser.
enum class ChainRole {
  kNone,
  /// A BatchNorm: folds into the Conv2d before it.
  kFoldedNorm,
  /// ReLU: ends the chain of a weighted op or an Add on every backend.
  kActivation,
  /// ReLU6: ends such a chain where the backend fuses the clamp (OpenVINO, onnxruntime).
  kClampedActivation,
};

struct QuantTraits {
  QuantRole role = QuantRole::kFloat;
  ChainRole chain = ChainRole::kNone;
  /// Quantizer backends (by their names, "native", "onnxruntime", ...) that give the op an
  /// output quantiser of its own whatever its role: onnxruntime's average pools requantise,
  /// the native backend quantises a BatchNorm's output.
  std::vector<std::string> own_output_on;
  /// Its output lies exactly on its input's integer grid (a max, a reshape, a ReLU at the zero
  /// point), so a quantise-dequantise with the input's parameters after it changes nothing.
  bool keeps_grid = false;
  /// A ReLU after it ends its chain (as after a weighted op): a residual Add.
  bool fuses_activation = false;
};

/// FLOPs and parameters of one call, as MMRazor's counters count them.
struct OpCost {
  double flops = 0;
  int64_t params = 0;
};

/// Counts one call of the op from what it read and returned.
using CostRule = std::function<OpCost(Module& op, const Inputs& inputs, const torch::Tensor& output)>;
/// Writes one call of the op with `onnx`, reading the values named `inputs`; returns the
/// name of the value that holds its output.
using OnnxRule = std::function<std::string(OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs)>;

struct OpDescription {
  QuantTraits quant;
  /// Null: the op counts nothing (MMRazor has no counter for it).
  CostRule cost;
  /// Null: the op has no ONNX form.
  OnnxRule onnx;
};

/// The counting rules several ops share: one FLOP per output element (MMRazor's ReLU
/// counters), one per input element (its pooling counters). Parameters: the trainable ones.
OpCost count_per_output_element(Module& op, const Inputs& inputs, const torch::Tensor& output);
OpCost count_per_input_element(Module& op, const Inputs& inputs, const torch::Tensor& output);
/// MMRazor's get_model_parameters_number: the trainable parameters of `module` and its children.
int64_t trainable_numel(torch::nn::Module& module);

/// The ONNX rule of an op that computes nothing in eval mode (Identity, Dropout): its input.
std::string onnx_pass_through(OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs);

}  // namespace razor::nn
