#pragma once
// MMRazor's GroupFisherChannelUnit (Group Fisher pruning, Liu et al. 2021): an L1 unit whose
// importance is the Fisher information of its channels, gathered while training. For every
// batch, at each conv or linear reading the unit's channels, a = the op's input and g = the
// loss's gradient there; per sample and channel F = sum over the ops and positions of a * g,
// and the batch adds sum over samples of F^2, divided by what removing one channel saves
// ("flops": its FLOPs in G, "act": its activations in M, "none"). GroupFisher removes the
// channel of least importance among all units, one at a time.
#include <cstdint>
#include <string>
#include <vector>

#include "components/channel/mutable_channel_unit.h"
#include "components/nn/module.h"

namespace razor::channel {

class GroupFisherChannelUnit : public L1MutableChannelUnit {
 public:
  GroupFisherChannelUnit(ChannelUnitSpec spec, MutableChannelUnitOptions options);
  ~GroupFisherChannelUnit() override;
  std::string type() const override { return "GroupFisherChannelUnit"; }

  /// Unless mutate_linear: a unit that a linear reads (the classifier's input) is not pruned.
  bool is_mutable() const;

  /// Hooks the unit's convs and linears to record inputs, their gradients and output shapes.
  void start_record();
  void end_record();
  void reset_recorded();

  /// Adds this batch's normalised Fisher information (summed over ranks when
  /// `across_ranks`) to the accumulated one; `kept` is the unit's current mask.
  void update_fisher(const torch::Tensor& kept, bool across_ranks);
  void reset_fisher();
  /// The accumulated normalised Fisher information; pruned channels at max + 1.
  torch::Tensor fisher_importance(const torch::Tensor& kept) const;
  const torch::Tensor& accumulated() const { return fisher_; }
  /// Restores accumulated() (a resumed run).
  void set_accumulated(const torch::Tensor& fisher);

  /// This batch's sum over samples of F^2 per channel (not normalised; zeros if nothing
  /// was recorded).
  torch::Tensor batch_fisher() const;
  /// What removing one channel saves, from the recorded calls: FLOPs, or activations.
  double delta_flops() const;
  double delta_memory() const;

  Json init_args() const override;

 private:
  struct Call {
    torch::Tensor input, grad;
    std::vector<int64_t> in_shape, out_shape;
  };
  struct Record {
    nn::Module* module = nullptr;
    bool is_output = false;
    int64_t start = 0, expand_ratio = 1;
    std::vector<std::shared_ptr<Call>> calls;
  };
  std::vector<Record> records_;
  std::vector<nn::HookHandle> handles_;
  torch::Tensor fisher_;
};

}  // namespace razor::channel
