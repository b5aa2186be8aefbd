#pragma once
// MMRazor's DCFFChannelUnit (dynamic-coded filter fusion, Lin et al. 2023): a sequential
// unit (its first k channels) whose convs, instead of dropping their other filters, fuse all
// of them into k: output j is made by sum_c M[j, c] W[c], the rows of M a temperature
// softmax over the filters' distances (nn::Conv2d::enable_output_fusion). calc_information(tau)
// recomputes M from the current filters at each prune time:
//   D = cdist(W, W), P = softmax(-D / tau) by row,
//   score_i = mean_k (P_ik log(P_ik + 1e-7) - P_ik v_k), v_k = mean_m log(P_km + 1e-7),
//   M = the rows of P of the k largest scores (ties to the lowest index, in index order;
//   MMRazor keeps topk's unsorted order, which the backend defines).
// Convs that are grouped, or that the unit covers only in part, keep their first k filters.
#include <cstdint>

#include "components/channel/mutable_channel_unit.h"

namespace razor::channel {

/// The fusion rows of `weight` (out x ...) for `k` kept channels at temperature `tau`.
torch::Tensor dcff_fusion_rows(const torch::Tensor& weight, int64_t k, double tau);

class DCFFChannelUnit : public SequentialMutableChannelUnit {
 public:
  using SequentialMutableChannelUnit::SequentialMutableChannelUnit;
  std::string type() const override { return "DCFFChannelUnit"; }
  /// Gives each output-side conv (groups = 1, all its channels in this unit) its fusion matrix.
  void prepare_for_pruning() override;
  /// Sets each fused conv's fusion rows for the current width from its current filters.
  void calc_information(double tau);
};

}  // namespace razor::channel
