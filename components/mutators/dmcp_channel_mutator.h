#pragma once
// MMRazor's DMCPChannelMutator (differentiable Markov channel pruning, Guo et al. 2020).
// Every unit of C channels is a chain of `num_groups` groups of `group_size` channels after
// its first `min_ch` (pruning_cfg = (min_rate, max_rate, offset): group_size =
// int(offset * C / max_rate), num_groups = int((max_rate - min_rate) / offset + 1e-4),
// min_ch = C - group_size * num_groups), with an architecture parameter a_i per group: group
// i is kept given group i - 1 with probability exp(-max(a_i, 0)), so it is kept at all with
// p_i = prod_{j <= i} exp(-max(a_j, 0)). Subnets:
//   "max", "min"  all groups, none;       "random"  a uniform number of groups;
//   "direct"      groups added while a uniform draw is at most the group's probability;
//   expected      min_ch + group_size * sum_i p_i channels (a tensor: the FLOPs loss).
// With gating on (architecture training), each unit's BatchNorms multiply group i's outputs
// by p_i, so the task loss reaches the parameters. Units are DMCPChannelUnits (sequential,
// number mode, min_ratio 0.5 as MMRazor's). The random draws come from a generator seeded
// identically on every rank.
#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>

#include "components/mutators/channel_mutator.h"
#include "components/nn/module.h"

namespace razor {

struct DMCPGroups {
  int64_t group_size = 0, num_groups = 0, min_ch = 0;
};

/// The groups of a unit of `channels` under pruning_cfg (min_rate, max_rate, offset).
DMCPGroups dmcp_groups(int64_t channels, const std::array<double, 3>& pruning_cfg);

class DMCPChannelMutator : public ChannelMutator {
 public:
  DMCPChannelMutator(ChannelMutatorOptions options, std::array<double, 3> pruning_cfg, uint64_t seed);
  ~DMCPChannelMutator() override;

  /// The units, then an architecture parameter per unit (zeros) and the gates on its
  /// BatchNorms.
  void prepare_from_supernet(Model& architecture) override;

  const std::array<double, 3>& pruning_cfg() const { return pruning_cfg_; }
  const DMCPGroups& groups(size_t unit) const { return groups_.at(unit); }
  /// The module holding the architecture parameters ("0", "1", ... by unit), which the
  /// algorithm registers as its child "mutator" (the "mutator" optimiser steps them).
  std::shared_ptr<torch::nn::Module> arch_module() const { return arch_module_; }
  const torch::Tensor& arch_param(size_t unit) const { return arch_params_.at(unit); }

  /// {unit name: channels} of `mode` "max", "min", "random" or "direct".
  Json sample_subnet_choices(const std::string& mode);
  /// Sets a subnet of `mode` and turns the gates on or off.
  void sample_subnet(const std::string& mode, bool gated);
  void set_gated(bool on) { gated_ = on; }
  bool gated() const { return gated_; }
  /// Each unit's expected channels (differentiable in the architecture parameters).
  std::vector<torch::Tensor> expected_channels() const;

  /// A uniform draw in [0, 1) from the shared generator.
  double uniform();
  /// The generator's state, for checkpoints.
  std::string generator_state() const;
  void set_generator_state(const std::string& state);

 private:
  torch::Tensor keep_probabilities(size_t unit) const;

  std::array<double, 3> pruning_cfg_;
  std::vector<DMCPGroups> groups_;
  std::shared_ptr<torch::nn::Module> arch_module_;
  std::vector<torch::Tensor> arch_params_;
  std::vector<nn::HookHandle> gates_;
  at::Generator generator_;
  bool gated_ = false;
};

}  // namespace razor
