#pragma once
// FLOPs, parameters and latency of a model, counted as MMRazor's ResourceEstimator counts
// them (mmcv's MACs-style conventions), so that NAS and pruning constraints written for
// MMRazor (`flops = [0, 330]` in M) mean the same here.
//
// One forward of a zero input with a counting post-hook on every razor op: only the ops
// that ran are counted, so a weight-sharing supernet is counted on its current subnet,
// without copying or slicing it. A search calls this for every candidate.
//
// Per op (N the batch of the input shape; the totals are divided by N, as MMRazor divides
// by its batch counter):
//   Conv2d       kh*kw*Cin*(Cout/groups)*N*Ho*Wo, + Cout*N*Ho*Wo with a bias;
//                params kh*kw*Cin*Cout/groups (+ Cout)
//   Linear       numel(input) * out_features (no bias term, as MMRazor's LinearCounter)
//   BatchNorm2d  numel(input) * (2 if affine else 1)
//   ReLU, ReLU6, LeakyReLU, PReLU, ELU            numel(output)
//   MaxPool2d, AvgPool2d, AdaptiveAvgPool2d/MaxPool2d   numel(input)
//   anything else (Add, Concat, Flatten, Identity, Dropout, Sigmoid, Hardswish, ...)  0
// Params of the non-conv ops are the numel of their trainable parameters. Every call adds
// its FLOPs and params again: a module that runs twice counts twice, params included
// (MMRazor's counters do `__params__ +=` in the hook).
#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/args.h"
#include "engine/model.h"

namespace razor {

/// How a ResourceEstimator counts. Filled from a config's `estimator_cfg` table by
/// `estimator_options_from`.
struct ResourceEstimatorOptions {
  /// N x C x H x W of the zero input that is run once; FLOPs are per sample (divided by N).
  std::vector<int64_t> input_shape = {1, 3, 224, 224};
  /// "G", "M" or "K" (FLOPs and params divided by 1e9, 1e6, 1e3 and rounded to 3 decimals,
  /// as MMRazor's params_units_convert), or "" for raw counts.
  std::string units = "M";
  /// Also time the forward pass (MMRazor's latency_cfg); off, latency is 0.
  bool measure_latency = false;
  /// Untimed forward passes before timing (caches, allocator, oneDNN primitives).
  int64_t latency_warmup = 5;
  /// Timed forward passes; latency is their mean.
  int64_t latency_iters = 10;

  // clang-format off
  ResourceEstimatorOptions& with_input_shape(std::vector<int64_t> v) {
    input_shape = std::move(v); return *this;
  }
  ResourceEstimatorOptions& with_units(std::string v) { units = std::move(v); return *this; }
  ResourceEstimatorOptions& with_measure_latency(bool v) { measure_latency = v; return *this; }
  ResourceEstimatorOptions& with_latency_warmup(int64_t v) { latency_warmup = v; return *this; }
  ResourceEstimatorOptions& with_latency_iters(int64_t v) { latency_iters = v; return *this; }
  // clang-format on
};

/// Reads an MMRazor-style estimator table:
///   estimator_cfg = { type = "ResourceEstimator", input_shape = [1, 1, 28, 28], units = "M",
///                     flops_params_cfg = { input_shape = [...], units = "M" },
///                     latency_cfg = { max_iter = 10, num_warmup = 5 } }
/// `type` may be omitted. `units` may also be MMRazor's table {flops, params, latency} with
/// one unit for FLOPs and params and latency "ms". Keys in flops_params_cfg override the
/// top-level ones. A latency_cfg table (even empty) turns latency measurement on.
/// Unknown keys and bad values are config errors naming the key.
ResourceEstimatorOptions estimator_options_from(Args& args);

/// Checks the options (input shape of 4 positive sizes, a known unit, iteration counts);
/// `where` prefixes the message ("train_cfg.estimator_cfg.input_shape").
void check_estimator_options(const ResourceEstimatorOptions& options, const std::string& where);

/// FLOPs, params (in the options' units) and latency (ms; 0 unless measured).
struct Resources {
  double flops = 0;
  double params = 0;
  double latency = 0;
};

/// One razor op that ran in the counted forward.
struct LayerResources {
  /// Dotted module path from the estimated root ("backbone.layer1.0.conv1").
  std::string path;
  /// The op's type name ("Conv2d", "ReLU", "Add").
  std::string type;
  /// Output shape of its first call.
  std::vector<int64_t> output_shape;
  /// FLOPs per sample (divided by the batch N), raw counts, summed over its calls.
  double flops = 0;
  /// Params, raw count, summed over its calls (as the totals).
  int64_t params = 0;
  /// Times it ran in the forward.
  int64_t calls = 0;
};

/// Everything one counted forward found.
struct ResourceReport {
  /// Ops that ran, in module registration order: every counted op, and every other leaf
  /// razor module (with zero FLOPs and params) so that a table shows the whole path.
  std::vector<LayerResources> layers;
  /// FLOPs per sample and params, raw counts.
  double raw_flops = 0;
  int64_t raw_params = 0;
  /// The totals in the options' units, and the latency.
  Resources totals;
};

/// MMRazor's ResourceEstimator over razor models. Cheap enough to call per search
/// candidate: no copy of the model, one forward with no autograd.
class ResourceEstimator {
 public:
  /// Checks the options once (config errors).
  explicit ResourceEstimator(ResourceEstimatorOptions options = {});

  const ResourceEstimatorOptions& options() const { return options_; }

  /// Totals of `model.forward_tensor` on a zero input of the options' shape.
  Resources estimate(Model& model);
  /// The same, with the per-op rows.
  ResourceReport estimate_report(Model& model);
  /// Any module, run by `forward` (e.g. an architecture inside an algorithm). The input
  /// takes dtype and device (and channels_last) from the root's first parameter.
  ResourceReport estimate_report(torch::nn::Module& root,
                                 const std::function<torch::Tensor(const torch::Tensor&)>& forward);

  /// `raw` converted to the options' units, rounded as MMRazor (3 decimals).
  double convert(double raw) const;

 private:
  ResourceEstimatorOptions options_;
};

}  // namespace razor
