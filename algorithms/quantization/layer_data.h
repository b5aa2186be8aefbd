#pragma once
// What one op of a quantised model reads and writes over a set of calibration batches, with
// the model computing in float (every quantiser off) or quantised (as calibrated, observers
// off): the data the layer-wise PTQ refinements (bias correction, AdaRound) work on.
#include <vector>

#include "algorithms/quantization/mm_architecture_quant.h"
#include "components/nn/weighted_op.h"

namespace razor {

enum class Precision { Float, Quantised };

/// The op's first input over every call, concatenated along dimension 0 (no grad).
torch::Tensor capture_inputs(MMArchitectureQuant& model, nn::Module& op, const std::vector<torch::Tensor>& batches,
                             Precision precision);

/// The op's output averaged over every dimension but the channels (dimension 1), over every
/// call and batch.
torch::Tensor output_channel_means(MMArchitectureQuant& model, nn::Module& op,
                                   const std::vector<torch::Tensor>& batches, Precision precision);

/// The weight the op's weight quantiser sees: BatchNorm folded (as simulated) and the channel
/// mask applied, before fake quantisation.
torch::Tensor folded_weight(const nn::WeightedOp& op);

/// The per-output-channel factor the op's folded BatchNorm scales the weight by (undefined:
/// none), detached.
torch::Tensor folded_bn_factor(const nn::WeightedOp& op);

}  // namespace razor
