#pragma once
// MMRazor's DMCP (differentiable Markov channel pruning, Guo et al. 2020): a supernet whose
// units are Markov chains of channel groups (DMCPChannelMutator), trained by a sandwich of
// subnets while architecture parameters learn which widths the FLOPs target allows.
//
// Each step, for every kind of `strategy` (each with its own step of the "architecture"
// optimiser):
//   "max"               the widest subnet, its head output recorded as the teacher;
//   "min"               the narrowest, with KD from the teacher after `distillation_times`;
//   "scheduled_random"  a "direct" sample (by the chains' probabilities) with probability
//                       1 - cur_sample_prob once architecture training has started, else a
//                       uniform one; cur_sample_prob shrinks by 0.9999 each step;
//   "arch_random"       "direct" once architecture training has started, else uniform.
// After `arch_start_train` iterations the BatchNorms gate each group by its probability,
// and every `arch_train_freq` iterations the "mutator" optimiser steps the architecture
// parameters twice: on the task loss of the gated max subnet (eval mode), then on the FLOPs
// loss of the expected widths:
//   log_l1:  log(r |E - T|) below 0.95 T, 0 in [0.95 T, T), log(r |E - 0.95 T|) above
//            (r = 0.1 when |E - T| > 200), E and T in MFLOPs;
//   l1 |E - T|, l2 (E - T)^2, inverted_log_l1 -log(1 / (E - T + 1e-5)); times flop_loss_weight.
// E counts the backbone (the whole architecture if it has none): each conv, linear and
// norm at its full-width FLOPs times the expected share of its input and output channels,
// the other ops (activations, pools: a few % of a CNN's FLOPs) at full width. The subnets
// the hook keeps are counted exactly, on the subnet itself.
// MMRazor compares raw FLOPs with the target in MFLOPs (so only the last branch ever runs)
// and leaves the task step's weight gradients to the next weight step; razor does neither.
//
//   [model]
//   type = "DMCP"
//   architecture = { ... }
//   distiller = { type = "ConfigurableDistiller", ... }   # KD from the max subnet, optional
//   mutator_cfg = { type = "DMCPChannelMutator", pruning_cfg = [0.1, 1, 0.05],
//                   channel_unit_cfg = { type = "DMCPChannelUnit" }, parse_cfg = { ... } }
//   arch_start_train = 5000
//   arch_train_freq = 500
//   distillation_times = 10000
//   target_flops = 100      # MFLOPs
//   flops_loss_type = "log_l1"
//   flop_loss_weight = 0.1
//
// DMCPSubnetHook writes, after training, the expected subnet (expected_ch.json) and up to
// `subnet_sample_num` direct samples within 5% of the target (subnet_<i>.json) to
// work_dir/model_sample, as {unit: channels} for a sub_model's fix_subnet.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/pruning/ite_prune_algorithm.h"
#include "components/distill/configurable_distiller.h"
#include "components/mutators/dmcp_channel_mutator.h"

namespace razor {

struct DMCPOptions {
  std::vector<std::string> strategy = {"max", "min", "scheduled_random", "arch_random"};
  int64_t arch_start_train = 10000;
  int64_t arch_train_freq = 500;
  int64_t distillation_times = 2000;
  double target_flops = 150;
  std::string flops_loss_type = "log_l1";
  double flop_loss_weight = 1.0;
};

/// The FLOPs loss of `expected` MFLOPs against `target` MFLOPs (DMCPOptions' types).
torch::Tensor dmcp_flops_loss(const torch::Tensor& expected, double target, const std::string& type);

class DMCP : public ItePruneAlgorithm {
 public:
  DMCP(std::shared_ptr<Model> architecture, std::unique_ptr<DMCPChannelMutator> mutator, DMCPOptions options,
       std::shared_ptr<ConfigurableDistiller> distiller, Runner* runner, ArchitectureBuilder build_copy);

  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;
  std::vector<std::string> optim_wrapper_names() const override { return {"architecture", "mutator"}; }
  bool leaves_parameters_unused() const override { return true; }

  DMCPChannelMutator& dmcp_mutator();
  const DMCPOptions& dmcp_options() const { return options_; }
  bool arch_training() const { return arch_train_; }
  /// The expected FLOPs of the counted part in MFLOPs (differentiable).
  torch::Tensor expected_mflops();
  /// {unit name: channels} of the expected widths, rounded to the nearest channel.
  Json expected_subnet();
  /// MFLOPs of the subnet `choices` (the counted part), counted on that subnet.
  double mflops_of(const Json& choices);

  Json extra_state() const override;
  void load_extra_state(const Json& state) override;

 private:
  /// Every kind's losses and update.
  LossMap subnet_step(const std::string& kind, const Batch& batch, OptimWrapper& weights);
  LossMap arch_step(const Batch& batch, OptimWrapper& weights, OptimWrapper& arch);

  DMCPOptions options_;
  std::shared_ptr<ConfigurableDistiller> distiller_;
  bool arch_train_ = false;
  double cur_sample_prob_ = 1.0;
  /// The step's summed subnet losses (logged as "loss"), and how often each log prefix was used.
  torch::Tensor total_;
  std::map<std::string, int> prefix_uses_;
  /// Each counted op's full-width FLOPs and where its channels come from.
  struct CountedOp {
    double flops = 0;
    bool depthwise = false;
    /// Per side (out, in): (unit index, channels of that unit in this op) and the width.
    std::vector<std::pair<size_t, double>> out_units, in_units;
    double out_width = 0, in_width = 0;
  };
  std::vector<CountedOp> counted_;
  /// Whether the architecture has a backbone (then only it is counted).
  bool has_backbone_ = false;
};

void register_dmcp();

}  // namespace razor
