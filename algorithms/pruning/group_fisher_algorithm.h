#pragma once
// MMRazor's GroupFisherAlgorithm (Group Fisher pruning, Liu et al. 2021): while training,
// every step records each channel unit's Fisher information, and every `interval`
// iterations the one channel of least accumulated importance, over all units, is removed
// (sliced out, as ItePruneAlgorithm's channels) and the accumulators restart.
//
//   [model]
//   type = "GroupFisherAlgorithm"
//   architecture = { ..., init_cfg = { type = "Pretrained", checkpoint = ... } }
//   interval = 10
//   mutator = { type = "GroupFisherChannelMutator",
//               channel_unit_cfg = { type = "GroupFisherChannelUnit",
//                                    default_args = { normalization_type = "flops" } },
//               parse_cfg = { type = "ChannelAnalyzer", demo_input = [1, 1, 28, 28] } }
//
// ResourceInfoHook saves checkpoints as the FLOPs fall below thresholds; its early_stop ends
// the pruning there and training goes on at those widths (MMRazor exits the process). The
// checkpoint holds the kept channels and the Fisher accumulators: `razor export --pruned`
// cuts it, and a resumed run prunes as the uninterrupted one. Multi-process runs sum the
// Fisher information over ranks (set sync_bn = true, as MMRazor converts BN to SyncBN).
#include <memory>

#include "algorithms/pruning/ite_prune_algorithm.h"
#include "components/mutators/group_fisher_channel_mutator.h"

namespace razor {

class GroupFisherAlgorithm : public ItePruneAlgorithm {
 public:
  GroupFisherAlgorithm(std::shared_ptr<Model> architecture, std::unique_ptr<GroupFisherChannelMutator> mutator,
                       int64_t interval, Runner* runner, ArchitectureBuilder build_copy);

  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;

  int64_t interval() const { return interval_; }
  /// Channels removed so far.
  int64_t pruned_channels() const { return pruned_channels_; }
  bool pruning() const { return pruning_; }
  /// Ends the pruning: training goes on at the current widths.
  void stop_pruning() { pruning_ = false; }

  Json extra_state() const override;
  void load_extra_state(const Json& state) override;

 private:
  GroupFisherChannelMutator& fisher_mutator();
  int64_t interval_;
  bool pruning_ = true;
  int64_t pruned_channels_ = 0;
};

void register_group_fisher();

}  // namespace razor
