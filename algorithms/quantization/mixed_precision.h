#pragma once
// Automatic mixed precision of the weights (NNCF's mixed-precision assignment): each weighted
// layer may take one of several bit widths, and the model's weight size must fit a budget.
//   1. Sensitivity of each layer at each lower bit width: the KL divergence of the model's
//      outputs from the float model's when that layer's weight alone is quantised to those bits
//      (every other quantiser off), over the refinement batches — the measured drop of
//      quantising that layer alone.
//   2. Greedy: starting with every layer at the highest width, repeatedly lower the layer whose
//      next step down costs the least sensitivity per byte saved, until the weights fit
//      `size_ratio` x their size at the highest width.
// The assignment is applied (MMArchitectureQuant::set_weight_bit) and reported; checkpoints
// carry it in the model's "weight_bits" buffer.
#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/quantization/mm_architecture_quant.h"
#include "engine/args.h"

namespace razor {

struct MixedPrecisionOptions {
  /// The widths a layer may take, e.g. [4, 8]; the highest is where every layer starts.
  std::vector<int64_t> bits = {4, 8};
  /// The weight size allowed, relative to every layer at the highest width.
  double size_ratio = 0.75;

  /// `mixed_precision = { bits = [4, 8], size_ratio = 0.75 }`.
  static MixedPrecisionOptions parse(Args& args, const std::string& key);
};

struct LayerBits {
  std::string path;
  int64_t weights = 0;
  int64_t bits = 0;
  /// Sensitivity at each candidate width (same order as the options' bits; 0 at the highest).
  std::vector<double> sensitivity;
};

struct MixedPrecisionReport {
  std::vector<LayerBits> layers;
  /// Weight bytes after / at the highest width.
  double size_ratio = 0.0;
};

MixedPrecisionReport assign_weight_bits(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches,
                                        const MixedPrecisionOptions& options);

}  // namespace razor
