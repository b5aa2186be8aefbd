#pragma once
// 2-D convolution over razor's module base (hookable by name). Same parameter names as
// torch.nn.Conv2d ("weight", "bias"), so state dicts match PyTorch's.
#include <cstdint>
#include <memory>

#include "components/nn/weighted_op.h"

namespace razor::nn {

struct Conv2dOptions {
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels(in_channels), out_channels(out_channels), kernel_size(kernel_size) {}
  int64_t in_channels;
  int64_t out_channels;
  /// Square kernels only (every architecture we build uses them).
  int64_t kernel_size;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  /// in_channels / groups input channels per output channel (groups = in = out: depthwise).
  int64_t groups = 1;
  /// Convs followed by a BatchNorm go without one.
  bool bias = true;

  // clang-format off
  Conv2dOptions& with_stride(int64_t v) { stride = v; return *this; }
  Conv2dOptions& with_padding(int64_t v) { padding = v; return *this; }
  Conv2dOptions& with_dilation(int64_t v) { dilation = v; return *this; }
  Conv2dOptions& with_groups(int64_t v) { groups = v; return *this; }
  Conv2dOptions& with_bias(bool v) { bias = v; return *this; }
  // clang-format on
};

/// Weight is initialised Kaiming-normal (fan_out, ReLU gain), as mmcls and torchvision do
/// for convolutions; bias (if any) is zero.
class Conv2d : public WeightedOp {
 public:
  const OpDescription* description() const override;
  explicit Conv2d(const Conv2dOptions& options);
  const Conv2dOptions& options() const { return options_; }
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor apply(const torch::Tensor& input, const torch::Tensor& weight,
                      const torch::Tensor& bias) const override;

  /// groups = in = out: each channel convolved alone (its input and output one set of channels).
  bool depthwise() const;
  int64_t out_width() const override { return options_.out_channels; }
  int64_t in_width() const override { return options_.in_channels; }
  void set_active_channels(torch::Tensor out, torch::Tensor in) override;
  /// Rows by the active outputs; a depthwise conv keeps its one input column (its groups
  /// follow the width), a grouped conv takes the active inputs of its first group as columns.
  std::pair<torch::Tensor, torch::Tensor> active_weight(const torch::Tensor& weight,
                                                        const torch::Tensor& bias) const override;
  /// Bakes the active channels (and the fusion) in; the fusion matrix goes.
  void make_static() override;

  /// DCFF's FuseConv2d (dynamic-coded filter fusion): at a width of k < out_channels the
  /// conv's output j is made by the fused filter sum_c M[j, c] W[c] (bias M b) of a fusion
  /// matrix M, not by filter j. enable_output_fusion adds M as the child "fusion" (buffer
  /// "matrix", out x out, the identity: plain slicing, until set_fusion_rows writes its
  /// first k rows), so checkpoints keep it. The active outputs must then be the first k.
  /// Convs with groups = 1 only.
  void enable_output_fusion();
  void set_fusion_rows(const torch::Tensor& rows);
  /// The fusion matrix (undefined without fusion).
  const torch::Tensor& fusion_matrix() const { return fusion_matrix_; }

 protected:
  void resize_to(const torch::Tensor& weight) override;

 private:
  Conv2dOptions options_;
  std::shared_ptr<Module> fusion_;
  torch::Tensor fusion_matrix_;
};

}  // namespace razor::nn
