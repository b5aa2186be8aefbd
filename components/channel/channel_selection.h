#pragma once
// Which channels every member op of a set of channel units computes with (MMRazor's
// MutableChannelContainer, for all ops at once): each unit keeps some of its channels, and
// each op's active channels on a side are the kept ones of every unit covering a range of
// that side, at the unit's offsets (a flattened channel's features together, a grouped
// conv's channel in every group), all channels elsewhere.
#include <cstdint>
#include <vector>

#include "components/channel/channel_analyzer.h"

namespace razor::channel {

class ChannelSelection {
 public:
  /// Every unit of `units` at its full width.
  explicit ChannelSelection(std::vector<ChannelUnitSpec> units);

  const std::vector<ChannelUnitSpec>& units() const { return units_; }
  /// The kept channels of unit `unit`: a bool tensor of its num_channels, at least one true.
  void keep(size_t unit, const torch::Tensor& mask);
  /// The first `width` channels of unit `unit` (a prefix, as MMRazor's sequential channels).
  void keep_first(size_t unit, int64_t width);
  void keep_all();
  const torch::Tensor& kept(size_t unit) const { return masks_.at(unit); }

  /// Sets every member op's active channels (undefined on a side where all are kept).
  void apply() const;
  /// Every member op at its full width again.
  void clear() const;
  /// Cuts every member op to its active channels for good (apply() first).
  void make_static() const;

 private:
  std::vector<ChannelUnitSpec> units_;
  std::vector<torch::Tensor> masks_;
};

}  // namespace razor::channel
