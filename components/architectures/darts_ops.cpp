#include "components/architectures/darts_ops.h"

#include <torch/torch.h>

#include "components/nn/activation.h"
#include "components/nn/op_description.h"
#include "components/nn/pooling.h"
#include "engine/error.h"

namespace razor {

namespace {

std::shared_ptr<nn::Conv2d> darts_conv(int64_t in, int64_t out, int64_t k, int64_t stride,
                                       int64_t padding, int64_t dilation, int64_t groups) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in, out, k)
                                          .with_stride(stride)
                                          .with_padding(padding)
                                          .with_dilation(dilation)
                                          .with_groups(groups)
                                          .with_bias(false));
}

std::shared_ptr<nn::BatchNorm2d> darts_bn(int64_t channels, bool affine) {
  return std::make_shared<nn::BatchNorm2d>(channels, 1e-5, 0.1, affine);
}

void check_darts_op(const char* type, const DartsOpOptions& o) {
  RAZOR_CHECK(o.in_channels > 0 && o.out_channels > 0, type,
              ": in_channels and out_channels must be positive, got ", o.in_channels, " and ",
              o.out_channels);
  RAZOR_CHECK(o.stride == 1 || o.stride == 2, type, ": stride must be 1 or 2, got ", o.stride);
  RAZOR_CHECK(o.drop_path_prob >= 0 && o.drop_path_prob < 1, type,
              ": the drop path probability must be in [0, 1), got ", o.drop_path_prob);
}

void check_darts_kernel(const char* type, int64_t kernel_size) {
  RAZOR_CHECK(kernel_size == 3 || kernel_size == 5, type, ": kernel_size must be 3 or 5, got ",
              kernel_size);
}

}  // namespace

DropPath::DropPath(double drop_prob) : nn::Module("DropPath"), drop_prob_(drop_prob) {
  RAZOR_CHECK(drop_prob >= 0 && drop_prob < 1, "DropPath: drop_prob must be in [0, 1), got ",
              drop_prob);
}

// The identity in eval mode; its output keeps its input's quantisation parameters.
const nn::OpDescription* DropPath::description() const {
  static const nn::OpDescription d{{nn::QuantRole::kSharesInput}, nullptr, nn::onnx_pass_through,
                                   nn::channel_flow(nn::ChannelFlow::kPass)};
  return &d;
}

torch::Tensor DropPath::forward(const torch::Tensor& input) {
  if (!is_training() || drop_prob_ == 0) return input;
  const double keep = 1.0 - drop_prob_;
  std::vector<int64_t> shape(static_cast<size_t>(input.dim()), 1);
  shape[0] = input.size(0);
  const torch::Tensor mask = (torch::rand(shape, torch::kDouble) + keep).floor_();
  return input.div(keep) * mask.to(input.options());
}

DartsZero::DartsZero(const DartsOpOptions& options)
    : nn::Module("DartsZero"), stride_(options.stride) {
  check_darts_op("DartsZero", options);
}

torch::Tensor DartsZero::forward(const torch::Tensor& input) {
  if (stride_ == 1) return input.mul(0.0);
  using torch::indexing::None;
  using torch::indexing::Slice;
  return input.index({Slice(), Slice(), Slice(None, None, stride_), Slice(None, None, stride_)})
      .mul(0.0);
}

FactorizedReduce::FactorizedReduce(int64_t in_channels, int64_t out_channels, bool affine)
    : FactorizedReduce("FactorizedReduce", in_channels, out_channels, affine) {}

FactorizedReduce::FactorizedReduce(const std::string& type_name, int64_t in_channels,
                                   int64_t out_channels, bool affine)
    : nn::Module(type_name) {
  RAZOR_CHECK(out_channels % 2 == 0 && out_channels > 0, type_name,
              ": out_channels must be even and positive, got ", out_channels);
  relu_ = register_module("relu", std::make_shared<nn::ReLU>());
  conv1_ = register_module("conv1", darts_conv(in_channels, out_channels / 2, 1, 2, 0, 1, 1));
  conv2_ = register_module("conv2", darts_conv(in_channels, out_channels / 2, 1, 2, 0, 1, 1));
  concat_ = register_module("concat", std::make_shared<nn::Concat>(1));
  bn_ = register_module("bn", darts_bn(out_channels, affine));
}

torch::Tensor FactorizedReduce::forward(const torch::Tensor& input) {
  using torch::indexing::Slice;
  const torch::Tensor x = (*relu_)(input);
  const torch::Tensor shifted = x.index({Slice(), Slice(), Slice(1), Slice(1)});
  return (*bn_)((*concat_)({(*conv1_)(x), (*conv2_)(shifted)}));
}

StandardConv::StandardConv(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
                           int64_t stride, int64_t padding, bool affine)
    : nn::Module("StandardConv") {
  net_ = register_module("net", std::make_shared<nn::Sequential>());
  net_->push_back(std::make_shared<nn::ReLU>());
  net_->push_back(darts_conv(in_channels, out_channels, kernel_size, stride, padding, 1, 1));
  net_->push_back(darts_bn(out_channels, affine));
}

torch::Tensor StandardConv::forward(const torch::Tensor& input) { return (*net_)(input); }

DartsSkipConnect::DartsSkipConnect(const DartsOpOptions& options)
    : nn::Module("DartsSkipConnect") {
  check_darts_op("DartsSkipConnect", options);
  if (options.stride == 1) {
    RAZOR_CHECK(options.in_channels == options.out_channels,
                "DartsSkipConnect: with stride 1, in_channels (", options.in_channels,
                ") must equal out_channels (", options.out_channels, ")");
    return;
  }
  // MMRazor's stride-2 skip holds relu, conv1, conv2 and bn itself; a FactorizedReduce
  // registered as this module's children keeps those names.
  reduce_ = std::make_shared<FactorizedReduce>(options.in_channels, options.out_channels,
                                               options.affine);
  for (const auto& child : reduce_->named_children()) register_module(child.key(), child.value());
  if (options.drop_path_prob > 0) {
    drop_path_ = register_module("drop_path", std::make_shared<DropPath>(options.drop_path_prob));
  }
}

torch::Tensor DartsSkipConnect::forward(const torch::Tensor& input) {
  if (!reduce_) return input;
  torch::Tensor out = (*reduce_)(input);
  return drop_path_ ? (*drop_path_)(out) : out;
}

DartsPoolBN::DartsPoolBN(const DartsOpOptions& options, const std::string& pool_type,
                         int64_t kernel_size)
    : nn::Module("DartsPoolBN"), pool_type_(pool_type) {
  check_darts_op("DartsPoolBN", options);
  RAZOR_CHECK(pool_type == "max" || pool_type == "avg",
              "DartsPoolBN: pool_type must be \"max\" or \"avg\", got \"", pool_type, "\"");
  RAZOR_CHECK(kernel_size % 2 == 1 && kernel_size > 0,
              "DartsPoolBN: kernel_size must be odd and positive, got ", kernel_size);
  RAZOR_CHECK(options.in_channels == options.out_channels, "DartsPoolBN: in_channels (",
              options.in_channels, ") must equal out_channels (", options.out_channels, ")");
  auto pool_options = nn::Pool2dOptions(kernel_size).with_stride(options.stride).with_padding(1);
  if (pool_type == "max") {
    pool_ = register_module("pool", std::make_shared<nn::MaxPool2d>(pool_options));
  } else {
    pool_ = register_module(
        "pool", std::make_shared<nn::AvgPool2d>(pool_options.with_count_include_pad(false)));
  }
  bn_ = register_module("bn", darts_bn(options.out_channels, options.affine));
  if (options.drop_path_prob > 0) {
    drop_path_ = register_module("drop_path", std::make_shared<DropPath>(options.drop_path_prob));
  }
}

torch::Tensor DartsPoolBN::forward(const torch::Tensor& input) {
  torch::Tensor out = (*bn_)((*pool_)(input));
  return drop_path_ ? (*drop_path_)(out) : out;
}

DartsSepConv::DartsSepConv(const DartsOpOptions& options, int64_t kernel_size)
    : nn::Module("DartsSepConv"), kernel_size_(kernel_size) {
  check_darts_op("DartsSepConv", options);
  check_darts_kernel("DartsSepConv", kernel_size);
  const int64_t in = options.in_channels, out = options.out_channels, pad = kernel_size / 2;
  RAZOR_CHECK(out % in == 0, "DartsSepConv: out_channels (", out,
              ") must be a multiple of in_channels (", in, ")");
  conv1_ = register_module("conv1", std::make_shared<nn::Sequential>());
  conv1_->push_back(std::make_shared<nn::ReLU>());
  conv1_->push_back(darts_conv(in, in, kernel_size, options.stride, pad, 1, in));
  conv1_->push_back(darts_conv(in, in, 1, 1, 0, 1, 1));
  conv1_->push_back(darts_bn(in, options.affine));
  conv2_ = register_module("conv2", std::make_shared<nn::Sequential>());
  conv2_->push_back(std::make_shared<nn::ReLU>());
  conv2_->push_back(darts_conv(in, out, kernel_size, 1, pad, 1, in));
  conv2_->push_back(darts_conv(out, out, 1, 1, 0, 1, 1));
  conv2_->push_back(darts_bn(out, options.affine));
  if (options.drop_path_prob > 0) {
    drop_path_ = register_module("drop_path", std::make_shared<DropPath>(options.drop_path_prob));
  }
}

torch::Tensor DartsSepConv::forward(const torch::Tensor& input) {
  torch::Tensor out = (*conv2_)((*conv1_)(input));
  return drop_path_ ? (*drop_path_)(out) : out;
}

DartsDilConv::DartsDilConv(const DartsOpOptions& options, int64_t kernel_size)
    : nn::Module("DartsDilConv"), kernel_size_(kernel_size) {
  check_darts_op("DartsDilConv", options);
  check_darts_kernel("DartsDilConv", kernel_size);
  const int64_t in = options.in_channels, out = options.out_channels, dilation = 2;
  // MMRazor normalises with in_channels features after the conv to out_channels.
  RAZOR_CHECK(in == out, "DartsDilConv: in_channels (", in, ") must equal out_channels (", out,
              ")");
  conv1_ = register_module("conv1", std::make_shared<nn::Sequential>());
  conv1_->push_back(std::make_shared<nn::ReLU>());
  conv1_->push_back(darts_conv(in, in, kernel_size, options.stride, (kernel_size / 2) * dilation,
                               dilation, in));
  conv1_->push_back(darts_conv(in, out, 1, 1, 0, 1, 1));
  conv1_->push_back(darts_bn(out, options.affine));
  if (options.drop_path_prob > 0) {
    drop_path_ = register_module("drop_path", std::make_shared<DropPath>(options.drop_path_prob));
  }
}

torch::Tensor DartsDilConv::forward(const torch::Tensor& input) {
  torch::Tensor out = (*conv1_)(input);
  return drop_path_ ? (*drop_path_)(out) : out;
}

}  // namespace razor
