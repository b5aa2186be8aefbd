#pragma once
// Empirical bias correction (Nagel et al., "Data-Free Quantization", 2019; NNCF's
// BiasCorrection): quantising a layer's weight shifts the mean of its output. Layer by layer,
// in dataflow order, the per-channel mean of each weighted op's output over the calibration
// batches is measured in float and quantised (earlier layers already corrected), and the
// difference is added back: to the op's bias, or, for an op with a folded BatchNorm, taken off
// the BatchNorm's running mean (the same shift, with the state dict unchanged). Ops with
// neither are left alone.
#include <cstdint>
#include <vector>

#include "algorithms/quantization/mm_architecture_quant.h"

namespace razor {

struct BiasCorrectionReport {
  int64_t corrected = 0;
  int64_t skipped = 0;
  /// The largest |shift| applied to a channel.
  double max_shift = 0.0;
};

BiasCorrectionReport correct_biases(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches);

}  // namespace razor
