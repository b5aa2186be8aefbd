#include "components/architectures/shufflenet_ops.h"

#include <torch/torch.h>

#include "components/architectures/channel_interleave.h"
#include "components/nn/conv_module.h"
#include "engine/error.h"

namespace razor {

namespace {
std::shared_ptr<nn::ConvModule> conv_bn(int64_t in, int64_t out, int64_t k, int64_t stride,
                                        int64_t groups, bool relu) {
  return std::make_shared<nn::ConvModule>(nn::ConvModuleOptions(in, out, k)
                                              .with_stride(stride)
                                              .with_padding(k / 2)
                                              .with_groups(groups)
                                              .with_activation(relu ? "ReLU" : ""));
}
}  // namespace

ShuffleBlock::ShuffleBlock(int64_t in_channels, int64_t out_channels, int64_t stride,
                           int64_t kernel_size)
    : ShuffleBlock("ShuffleBlock", in_channels, out_channels, stride, kernel_size) {
  const int64_t main_in = stride > 1 ? in_channels : mid_channels_;
  branch2_->push_back(conv_bn(main_in, mid_channels_, 1, 1, 1, true));
  branch2_->push_back(conv_bn(mid_channels_, mid_channels_, kernel_size, stride, mid_channels_, false));
  branch2_->push_back(conv_bn(mid_channels_, mid_channels_, 1, 1, 1, true));
}

ShuffleBlock::ShuffleBlock(const std::string& type_name, int64_t in_channels,
                           int64_t out_channels, int64_t stride, int64_t kernel_size)
    : nn::Module(type_name),
      in_channels_(in_channels),
      out_channels_(out_channels),
      stride_(stride),
      kernel_size_(kernel_size),
      mid_channels_(out_channels / 2) {
  RAZOR_CHECK(stride == 1 || stride == 2, type_name, ": stride must be 1 or 2, got ", stride);
  RAZOR_CHECK(kernel_size % 2 == 1 && kernel_size > 0, type_name,
              ": kernel_size must be odd and positive, got ", kernel_size);
  RAZOR_CHECK(out_channels % 2 == 0 && out_channels > 0, type_name,
              ": out_channels must be even and positive, got ", out_channels);
  RAZOR_CHECK(stride == 2 || in_channels == out_channels, type_name,
              ": with stride 1, in_channels (", in_channels, ") must equal out_channels (",
              out_channels, ")");
  if (stride > 1) {
    branch1_ = register_module("branch1", std::make_shared<nn::Sequential>());
    branch1_->push_back(conv_bn(in_channels, in_channels, kernel_size, stride, in_channels, false));
    branch1_->push_back(conv_bn(in_channels, mid_channels_, 1, 1, 1, true));
  }
  branch2_ = register_module("branch2", std::make_shared<nn::Sequential>());
  if (stride == 1) {
    first_half_ = register_module("first_half", std::make_shared<nn::Chunk>(2, 0));
    second_half_ = register_module("second_half", std::make_shared<nn::Chunk>(2, 1));
  }
  concat_ = register_module("concat", std::make_shared<nn::Concat>(1));
  shuffle_ = register_module("shuffle", std::make_shared<nn::ChannelShuffle>(2));
}

torch::Tensor ShuffleBlock::forward(const torch::Tensor& input) {
  torch::Tensor left, right;
  if (stride_ > 1) {
    left = (*branch1_)(input);
    right = (*branch2_)(input);
  } else {
    left = (*first_half_)(input);
    right = (*branch2_)((*second_half_)(input));
  }
  // Quantisers, recorders and tracers hook the concat or the shuffle: then each runs as a
  // module of its own; otherwise both in one pass.
  if (concat_->num_hooks() > 0 || shuffle_->num_hooks() > 0) return (*shuffle_)((*concat_)({left, right}));
  return interleave_channels(left, right);
}

ShuffleXception::ShuffleXception(int64_t in_channels, int64_t out_channels, int64_t stride)
    : ShuffleBlock("ShuffleXception", in_channels, out_channels, stride, 3) {
  const int64_t main_in = stride > 1 ? in_channels : mid_channels_;
  branch2_->push_back(conv_bn(main_in, main_in, 3, stride, main_in, false));
  branch2_->push_back(conv_bn(main_in, mid_channels_, 1, 1, 1, true));
  branch2_->push_back(conv_bn(mid_channels_, mid_channels_, 3, 1, mid_channels_, false));
  branch2_->push_back(conv_bn(mid_channels_, mid_channels_, 1, 1, 1, true));
  branch2_->push_back(conv_bn(mid_channels_, mid_channels_, 3, 1, mid_channels_, false));
  branch2_->push_back(conv_bn(mid_channels_, mid_channels_, 1, 1, 1, true));
}

}  // namespace razor
