#pragma once
// MMRazor's DCFF (dynamic-coded filter fusion, Lin et al. 2023): ItePruneAlgorithm whose
// units are DCFFChannelUnits. At every prune time (each `step_freq`, epochs with an
// epoch-based loop; `prune_times` = 0 prunes at every one of them to the end of training)
// the units go to their target widths at once and every fused conv recomputes its fusion
// matrix from its current filters at temperature tau = 1 / T,
//   T = A / (1 + exp(-k cur)) + t_s - A / 2,  A = 2 (t_e - t_s) (1 + e^{-k max}) / (1 - e^{-k max}),
// t_s = 1, t_e = 10^4, k = 1: tau falls from 1 towards 1e-4, the fusion from a soft mix of
// similar filters towards keeping single ones. `cur` and `max` count prune times (epochs
// with the shipped step_freq = 1), as the paper anneals by epoch; MMRazor passes the
// iteration there, so its tau is 2e-4 from the second iteration on.
//
//   [model]
//   type = "DCFF"
//   architecture = { ..., init_cfg = { type = "Pretrained", checkpoint = ... } }
//   target_pruning_ratio = { ... }   # or target_flops = 0.5
//   step_freq = 1
//   mutator_cfg = { type = "DCFFChannelMutator", channel_unit_cfg = { type = "DCFFChannelUnit" },
//                   parse_cfg = { type = "ChannelAnalyzer", demo_input = [1, 1, 28, 28] } }
//
// The fusion matrices are buffers of the convs ("conv.fusion.matrix"), so a checkpoint
// resumes and exports with them; `razor export --pruned` bakes the fused filters in.
#include <memory>

#include "algorithms/pruning/ite_prune_algorithm.h"

namespace razor {

/// DCFF's temperature at prune time `cur` of `max` (tau = 1 / T above).
double dcff_temperature(int64_t cur, int64_t max);

class DCFF : public ItePruneAlgorithm {
 public:
  /// `options.prune_times` 0: every step_freq to the end of training.
  DCFF(std::shared_ptr<Model> architecture, std::unique_ptr<ChannelMutator> mutator, ItePruneOptions options,
       Runner* runner, ArchitectureBuilder build_copy);

  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;
  /// Recomputes every unit's fusion at temperature `tau` (at the current widths).
  void calc_information(double tau);
  /// The prune times of a run of `max_iters` iterations with a step of `step`.
  int64_t prune_times(int64_t max_iters, int64_t step) const;

 private:
  int64_t prune_times_;
  Json target_;
};

void register_dcff();

}  // namespace razor
