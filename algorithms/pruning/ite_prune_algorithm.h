#pragma once
// MMRazor's ItePruneAlgorithm: structured pruning while training. A ChannelMutator parses the
// architecture into channel units; at prune times the units move from the full width to
// `target_pruning_ratio` (linearly over `prune_times` steps, or at once), each picking its
// channels then (an L1 unit: the largest |W|), and training goes on at those widths (the
// pruned channels are sliced out, not masked). The defaults (step_freq = 1, prune_times =
// 1) prune once, at the first iteration, then finetune.
//
//   [model]
//   type = "ItePruneAlgorithm"
//   architecture = { ... }
//   mutator_cfg = { type = "ChannelMutator", channel_unit_cfg = { type = "L1MutableChannelUnit",
//                   default_args = { choice_mode = "ratio" } },
//                   parse_cfg = { type = "ChannelAnalyzer", demo_input = [1, 1, 28, 28] } }
//   target_pruning_ratio = { "backbone.layer1.0.conv1_(0, 16)_16" = 0.5, ... }  # or a JSON file
//   step_freq = 1          # epochs with an epoch-based loop, else iterations
//   prune_times = 1
//   linear_schedule = true
//   # or, instead of target_pruning_ratio, a target for the whole model: one ratio for
//   # every unit, the largest whose model keeps at most this share of the FLOPs (or params)
//   target_flops = 0.5     # target_params = 0.5
//
// MMRazor multiplies step_freq by max_iters / max_epochs and may get a fraction, at whose
// multiples no iteration falls: razor rounds it to whole iterations. The kept channels are
// in the checkpoint, so a resumed or exported model has exactly those it trained with
// (MMRazor recomputes L1 masks from the later weights).
#include <functional>
#include <memory>
#include <string>

#include "algorithms/base_algorithm.h"
#include "components/estimators/resource_estimator.h"
#include "components/mutators/channel_mutator.h"

namespace razor {

class Runner;

struct ItePruneOptions {
  /// {unit name: ratio or channel count}; empty: every unit stays at full width.
  Json target = Json::object();
  /// A share of the full model's FLOPs or params in (0, 1] (0: not given): the target is then
  /// one ratio for every unit, the largest that keeps at most this share.
  double target_flops = 0, target_params = 0;
  double step_freq = 1;
  int64_t prune_times = 1;
  bool linear_schedule = true;
};

/// Builds a new, untrained copy of the architecture (at full width).
using ArchitectureBuilder = std::function<std::shared_ptr<Model>()>;

class ItePruneAlgorithm : public BaseAlgorithm {
 public:
  ItePruneAlgorithm(std::shared_ptr<Model> architecture, std::unique_ptr<ChannelMutator> mutator,
                    ItePruneOptions options, Runner* runner, ArchitectureBuilder build_copy = nullptr);

  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;

  ChannelMutator& mutator() { return *mutator_; }
  SubnetMutator* subnet_mutator() override { return mutator_.get(); }
  const ChannelMutator& mutator() const { return *mutator_; }
  const ItePruneOptions& options() const { return options_; }
  /// The choices at iteration `iteration` of a step_freq of `step` iterations (MMRazor's
  /// ItePruneConfigManager.prune_at), or null when it is not a prune time.
  Json prune_at(int64_t iteration, int64_t step) const;
  /// FLOPs and params of the architecture now, over the full width ones (set at each prune).
  double flops_ratio() const { return flops_ratio_; }
  double params_ratio() const { return params_ratio_; }
  /// FLOPs and params (raw) of the architecture at full width, on the demo input.
  double full_flops() const { return full_flops_; }
  double full_params() const { return full_params_; }
  /// {unit name: channels kept now}, each rounded up to a multiple of `divisor` (at most
  /// the unit's channels) as static_architecture(divisor) pads them.
  Json widths(int64_t divisor = 1) const;
  /// The architecture at its kept channels, cut for good into a new plain model (on the CPU,
  /// in eval mode): what MMRazor's export_fix_subnet(slice_weight=True) gives, while this
  /// algorithm trains on at its widths. With `divisor` > 1 the widths are rounded up with
  /// channels read by zero weights (ChannelMutator::make_static): the same function. Needs
  /// the builder given at construction.
  std::shared_ptr<Model> static_architecture(int64_t divisor = 1) const;
  /// Why static_architecture() would not be the model to export (empty: it is).
  virtual std::string not_exportable_because() const { return {}; }

  Json extra_state() const override;
  void load_extra_state(const Json& state) override;
  /// The kept channels: a checkpoint's weights are those of this pruned model.
  void load_weights_state(const Json& state) override { load_extra_state(state); }

 protected:
  /// The current iteration: the train loop's, or this algorithm's own count without a runner.
  int64_t iteration() const;
  /// Counts a train step (the iteration without a runner).
  void count_iteration() { ++own_iteration_; }
  /// step_freq in iterations: epochs times iterations per epoch with an epoch-based loop,
  /// rounded to whole iterations, at least 1.
  int64_t step_in_iterations() const;
  /// The run's last iteration (0 without a runner).
  int64_t max_iterations() const;
  /// FLOPs and params (raw) of the architecture at its current widths, on the demo input,
  /// and the same per op.
  Resources count();
  ResourceReport count_report();
  /// Recomputes flops_ratio() and params_ratio() from the current widths.
  void update_ratios();
  /// target_flops / target_params as one ratio for every unit (bisection on the ratio).
  Json target_for_share(double share, bool of_flops);
  /// Logs the widths and the ratios after a prune.
  void report();

 private:
  std::unique_ptr<ChannelMutator> mutator_;
  ItePruneOptions options_;
  Runner* runner_;
  ArchitectureBuilder build_copy_;
  /// The full-width choices (MMRazor's "supernet" values).
  Json supernet_;
  double full_flops_ = 0, full_params_ = 0;
  double flops_ratio_ = 1, params_ratio_ = 1;
  int64_t own_iteration_ = 0;
};

/// A pruning algorithm's `architecture` table built, with the trained weights of its
/// init_cfg = { type = "Pretrained", checkpoint } loaded, and a builder of untrained copies.
/// `who` names the algorithm in the log.
std::pair<std::shared_ptr<Model>, ArchitectureBuilder> build_architecture_to_prune(Args& args,
                                                                                  const BuildContext& context,
                                                                                  const char* who);

/// The options of the mutator table at `key`, of `type` unless it says otherwise; a
/// GroupFisher or DMCP mutator (classes of their own) must be of that type.
ChannelMutatorOptions channel_mutator_options_from(Args& args, const std::string& key, const std::string& type);

/// ItePruneAlgorithm's keys (target_pruning_ratio, target_flops, target_params, step_freq,
/// prune_times, linear_schedule) over `defaults`.
ItePruneOptions ite_prune_options_from(Args& args, ItePruneOptions defaults);

/// The folder of the config `args` come from ("" without one): where relative files resolve.
std::string config_dir_of(const Args& args);

/// A table at `key` given inline or as a path to a JSON (or .yaml) file: relative to the
/// working directory as MMRazor's are (a work_dir's fix_subnet.json), else to `config_dir`.
Json table_or_file(Args& args, const std::string& key, const std::string& config_dir);

/// The checkpoint of MMRazor's init_cfg = { type = "Pretrained", checkpoint = ... } in
/// `args` (the architecture takes no init_cfg itself); empty if there is none. `purpose`
/// names the model in the error for another type.
std::string pretrained_checkpoint(Args& args, const char* purpose);

void register_pruning_algorithms();

}  // namespace razor
