#pragma once
// 2-D batch normalisation with PyTorch's parameter and buffer names ("weight", "bias",
// "running_mean", "running_var", "num_batches_tracked"), so state dicts match PyTorch's.
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "components/nn/dynamic_channels.h"
#include "components/nn/module.h"
#include "engine/data_parallel.h"

namespace razor::nn {

/// Training mode normalises with batch statistics and updates the running ones
/// (running = (1 - momentum) * running + momentum * batch, unbiased variance), exactly as
/// torch::batch_norm does; eval mode normalises with the running statistics.
/// With sync_across_ranks (the config's `sync_bn = true` in a multi-process run) training
/// statistics are those of the global batch, forward and backward (SyncBatchNorm).
/// Without `affine` (DARTS's search cells) there is no weight or bias, as in PyTorch: the
/// state dict then holds only the running statistics and `weight`/`bias` are undefined.
/// At a dynamic width it normalises the active channels with their own statistics, and in
/// training writes the updated statistics back to those channels (the others unchanged).
class BatchNorm2d : public Module, public CrossRankNorm, public DynamicChannels {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true);
  const OpDescription* description() const override;
  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  /// 1 makes the running statistics those of the last training batch (BN re-estimation
  /// reads them after each batch instead of computing them a second time).
  void set_momentum(double momentum) { momentum_ = momentum; }
  bool affine() const { return affine_; }
  void pretty_print(std::ostream& stream) const override;
  void set_sync_across_ranks(bool on) override { sync_across_ranks_ = on; }
  bool sync_across_ranks() const { return sync_across_ranks_; }
  /// Set by the op this BN is folded into (WeightedOp::fold_bn). In eval mode the op then
  /// computes conv -> BN as one op with the folded weight and bias, and the BN passes its
  /// input through; training mode is unchanged (the op divides the fold out again).
  void set_folded(bool on) { folded_ = on; }

  // Dynamic width: one set of channels, so `in` is `out` (or undefined).
  void set_active_channels(torch::Tensor out, torch::Tensor in) override;
  const torch::Tensor& active_out() const override { return active_; }
  const torch::Tensor& active_in() const override { return active_; }
  void make_static() override;
  int64_t out_width() const override { return num_features_; }
  int64_t in_width() const override { return num_features_; }

  /// MMRazor's SwitchableBatchNorm2d (slimmable networks): a BatchNorm of its own for each of
  /// `widths` (each below num_features), which normalises whenever the active channels are
  /// the first `width`, so that each width keeps its own statistics and affine parameters.
  /// In the state dict under "candidate_bn.<width>." as MMRazor's. make_static keeps the
  /// active width's. Empty `widths`: none.
  void set_candidate_widths(const std::vector<int64_t>& widths);
  std::vector<int64_t> candidate_widths() const;

  /// What normalises at the current active channels: this BN's tensors at those channels,
  /// or the candidate BatchNorm of that width (whole).
  struct ActiveTensors {
    torch::Tensor weight, bias, running_mean, running_var;
    /// Copies of this BN's channels, whose updates forward writes back.
    bool sliced = false;
    /// The candidate BatchNorm they are, if any.
    BatchNorm2d* candidate = nullptr;
  };
  ActiveTensors active_tensors() const;

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t num_features_;
  double eps_, momentum_;
  bool affine_;
  bool sync_across_ranks_ = false;
  bool folded_ = false;
  torch::Tensor active_;
  bool active_is_prefix_ = false;
  /// The candidate BatchNorms by width, and the module holding them.
  std::map<int64_t, std::shared_ptr<BatchNorm2d>> candidates_;
  std::shared_ptr<Module> candidate_holder_;
};

/// Training-mode batch normalisation with the statistics of every rank's batch (world size 1:
/// of this batch alone, equal to torch::batch_norm). Updates the running statistics.
torch::Tensor sync_batch_norm(const torch::Tensor& input, const torch::Tensor& weight,
                              const torch::Tensor& bias, torch::Tensor running_mean,
                              torch::Tensor running_var, double eps, double momentum);

}  // namespace razor::nn
