#pragma once
// MMRazor's SlimmableNetwork (Yu et al. 2019): one network trained at a fixed list of widths
// at once. Every unit of a SlimmableChannelMutator lists its candidate widths; subnet i takes
// every unit's i-th candidate (SlimmableChannelMutator.subnets). Each training step runs every
// subnet on the batch with its own optimiser step (MMRazor's, unless accumulative_counts
// sums them into one), and each width normalises with BatchNorms of its own
// (SwitchableBatchNorm2d). SlimmableValLoop evaluates every subnet.
//
//   [model]
//   type = "SlimmableNetwork"
//   architecture = { ... }
//   mutator = { type = "SlimmableChannelMutator",
//               channel_unit_cfg = { type = "SlimmableChannelUnit", units = "subnets.json" },
//               parse_cfg = { type = "ChannelAnalyzer", demo_input = [1, 1, 28, 28] } }
//   deploy_index = -1      # or i: only subnet i, trained and exported (razor export --pruned)
//
// The units' kept channels come from the config's candidates, so the checkpoint needs no
// masks: a resumed or exported run rebuilds them.
#include <memory>
#include <vector>

#include "algorithms/pruning/ite_prune_algorithm.h"

namespace razor {

class SlimmableNetwork : public ItePruneAlgorithm {
 public:
  /// `deploy_index` -1: every subnet; else that one alone, set now.
  SlimmableNetwork(std::shared_ptr<Model> architecture, std::unique_ptr<ChannelMutator> mutator, int64_t deploy_index,
                   Runner* runner, ArchitectureBuilder build_copy);

  /// Every subnet's losses ("subnet_0.loss", ...), each with its own update_params; a
  /// deployed network trains its subnet as a plain model.
  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;
  bool leaves_parameters_unused() const override { return true; }

  const std::vector<Json>& subnets() const { return subnets_; }
  /// Sets subnet `index` and counts its FLOPs and params (flops_ratio(), params_ratio()).
  void set_subnet(size_t index);
  /// The subnet training leaves set: the deployed one, else the last.
  size_t resting_subnet() const;
  int64_t deploy_index() const { return deploy_index_; }
  bool is_deployed() const { return deploy_index_ >= 0; }
  std::string not_exportable_because() const override;

  Json extra_state() const override { return nullptr; }
  void load_extra_state(const Json&) override {}
  void load_weights_state(const Json&) override {}

 private:
  std::vector<Json> subnets_;
  int64_t deploy_index_;
};

void register_slimmable_network();

}  // namespace razor
