#pragma once
// AdaRound (Nagel et al., "Up or Down? Adaptive Rounding for Post-Training Quantization",
// 2020): instead of rounding each weight to the nearest integer, learn per weight whether to
// round up or down so that the layer's output on calibration data stays closest to the float
// layer's. Layer by layer in dataflow order, for each weighted op with a weight quantiser:
//   - inputs: the quantised model's input to the op (earlier layers already rounded) and the
//     float model's (original weights); target: the float op on the float input;
//   - soft weight s * (clamp(floor(W / s) + h(V) + zp, qmin, qmax) - zp), with the rectified
//     sigmoid h(V) = clamp(sigmoid(V) * 1.2 - 0.1, 0, 1), V initialised so h(V) = W / s - floor;
//   - loss: the squared output error (summed per image, averaged over the batch) plus
//     lambda * sum(1 - |2 h(V) - 1|^beta), beta annealed from 20 to 2 after a warm-up with no
//     regulariser; Adam on V only;
//   - finally each weight rounds up where h(V) >= 0.5. The op's float weight is set to the
//     chosen grid point (unfolded again when a BatchNorm is folded), so its own quantiser,
//     with frozen scales, reproduces the choice exactly, and checkpoints and exports carry it.
#include <cstdint>
#include <vector>

#include "algorithms/quantization/mm_architecture_quant.h"
#include "engine/args.h"

namespace razor {

struct AdaRoundOptions {
  int64_t iters = 500;
  int64_t batch_size = 32;
  double lr = 1e-3;
  /// lambda of the rounding regulariser.
  double reg = 0.01;
  double beta_start = 20.0, beta_end = 2.0;
  /// The fraction of iterations without the regulariser.
  double warmup = 0.2;
  uint64_t seed = 0;

  /// `adaround = true` or a table { iters, batch_size, lr, reg, beta = [start, end], warmup }.
  static AdaRoundOptions parse(Args& args, const std::string& key);
};

struct AdaRoundReport {
  int64_t layers = 0;
  /// Weights rounded the other way than to nearest, over all layers.
  int64_t flipped = 0;
  int64_t weights = 0;
  /// The layers' output errors (squared, per image) summed: weights rounded to nearest, and
  /// as AdaRound chose.
  double nearest_error = 0.0, adaround_error = 0.0;
};

AdaRoundReport adaround(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches,
                        const AdaRoundOptions& options);

}  // namespace razor
