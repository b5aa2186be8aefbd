#pragma once
// Dynamic width: the ops with state per channel (Conv2d, Linear, BatchNorm2d) compute with a
// chosen subset of their channels, sliced out of their weights and statistics (not masked),
// and can be cut to that subset for good. Channel units (components/channel/) choose the
// subsets: pruning, slimmable and searched widths.
#include <cstdint>
#include <string>

#include <torch/types.h>

namespace razor::nn {

class DynamicChannels {
 public:
  virtual ~DynamicChannels() = default;

  /// The output and input channels to compute with: int64 indices in ascending order
  /// (undefined: all of them). An op whose input and output are one set of channels (a
  /// norm, a depthwise conv) takes the same indices for both (`in` may be left undefined).
  virtual void set_active_channels(torch::Tensor out, torch::Tensor in) = 0;
  virtual const torch::Tensor& active_out() const = 0;
  virtual const torch::Tensor& active_in() const = 0;
  bool has_active_channels() const { return active_out().defined() || active_in().defined(); }

  /// Cuts the op to its active channels for good (the static form): smaller parameters and
  /// buffers, in place, options updated; afterwards every channel is active again.
  virtual void make_static() = 0;

  /// The op's full widths.
  virtual int64_t out_width() const = 0;
  virtual int64_t in_width() const = 0;
};

/// Checks `index` as active channels of a side of `width` channels (1-D int64, ascending,
/// unique, within range, not empty); `what` names the op and side in the error.
void check_active_channels(const torch::Tensor& index, int64_t width, const std::string& what);

}  // namespace razor::nn
