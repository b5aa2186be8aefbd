#pragma once
// What one kind of op is to the passes that read the op graph: where quantiser placement
// puts its quantisers, how the resource estimator counts it, how the ONNX writer writes it,
// how the channel analyser follows channels through it.
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

/// How an op's output channels follow from its inputs' channels (dimension 1), as MMRazor's
/// channel nodes define it.
enum class ChannelFlow {
  /// Not followed: the channels of its inputs and of its output are frozen (never pruned).
  kUnknown,
  /// Output channels of its own, independent of the input's (a plain conv, a linear). With
  /// groups > 1, channel j of every group is tied to channel j of the others, on both sides.
  kMix,
  /// Output channel c is input channel c (norms, activations, pools, a depthwise conv).
  kPass,
  /// All inputs and the output are one set of channels (a residual add; a mul, where an input
  /// of one channel broadcasts and binds nothing).
  kBind,
  /// The output is its inputs' channels one after the other.
  kConcat,
  /// N x C x H x W -> N x (C·H·W): input channel c becomes features [c·H·W, (c+1)·H·W).
  kFlatten,
  /// The output is input channels [start, end).
  kSlice,
};

struct ChannelRule {
  ChannelFlow flow = ChannelFlow::kUnknown;
  /// kMix: the op's groups.
  int64_t groups = 1;
  /// kSlice: the input channels the output is.
  int64_t start = 0, end = 0;
  /// The op holds state per channel that a width change slices (a conv's or linear's weight,
  /// a norm's statistics): a member of the channel units its channels are in.
  bool member = false;
};

/// The rule of one call, given the shapes the op read.
using ChannelRuleOf = std::function<ChannelRule(const Module& op, const std::vector<std::vector<int64_t>>& input_shapes)>;

struct OpDescription {
  QuantTraits quant;
  /// Null: the op counts nothing (MMRazor has no counter for it).
  CostRule cost;
  /// Null: the op has no ONNX form.
  OnnxRule onnx;
  /// Null: the channel analyser does not follow the op (ChannelFlow::kUnknown).
  ChannelRuleOf channel;
};

/// The channel rules most ops have: a constant flow.
ChannelRuleOf channel_flow(ChannelFlow flow, bool member = false);

/// The counting rules several ops share: one FLOP per output element (MMRazor's ReLU
/// counters), one per input element (its pooling counters). Parameters: the trainable ones.
OpCost count_per_output_element(Module& op, const Inputs& inputs, const torch::Tensor& output);
OpCost count_per_input_element(Module& op, const Inputs& inputs, const torch::Tensor& output);
/// MMRazor's get_model_parameters_number: the trainable parameters of `module` and its children.
int64_t trainable_numel(torch::nn::Module& module);

/// The ONNX rule of an op that computes nothing in eval mode (Identity, Dropout): its input.
std::string onnx_pass_through(OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs);

}  // namespace razor::nn
