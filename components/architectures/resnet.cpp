#include "components/architectures/resnet.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace {

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in, out, kernel)
                                          .with_stride(stride)
                                          .with_padding(kernel / 2)
                                          .with_bias(false));
}

/// The projection shortcut when the block changes resolution or width, else null.
std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride) {
  if (stride == 1 && in == out) return nullptr;
  auto downsample = std::make_shared<nn::Sequential>();
  downsample->push_back(conv(in, out, 1, stride));
  downsample->push_back(std::make_shared<nn::BatchNorm2d>(out));
  return downsample;
}

struct ImageNetArch {
  bool bottleneck;
  std::vector<int64_t> blocks;
};

const std::map<int64_t, ImageNetArch>& imagenet_archs() {
  static const std::map<int64_t, ImageNetArch> archs = {
      {18, {false, {2, 2, 2, 2}}},  {34, {false, {3, 4, 6, 3}}},  {50, {true, {3, 4, 6, 3}}},
      {101, {true, {3, 4, 23, 3}}}, {152, {true, {3, 8, 36, 3}}},
  };
  return archs;
}

}  // namespace

BasicBlock::BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride)
    : nn::Module("BasicBlock") {
  conv1_ = register_module("conv1", conv(in_channels, out_channels, 3, stride));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(out_channels));
  conv2_ = register_module("conv2", conv(out_channels, out_channels, 3, 1));
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(out_channels));
  relu_ = register_module("relu", std::make_shared<nn::ReLU>());
  if (auto downsample = make_downsample(in_channels, out_channels, stride)) {
    downsample_ = register_module("downsample", downsample);
  }
  add_ = register_module("add", std::make_shared<nn::Add>());
}

torch::Tensor BasicBlock::forward(const torch::Tensor& input) {
  torch::Tensor out = (*relu_)((*bn1_)((*conv1_)(input)));
  out = (*bn2_)((*conv2_)(out));
  torch::Tensor identity = downsample_ ? (*downsample_)(input) : input;
  return (*relu_)((*add_)({out, identity}));
}

Bottleneck::Bottleneck(int64_t in_channels, int64_t out_channels, int64_t stride)
    : nn::Module("Bottleneck") {
  RAZOR_CHECK(out_channels % kExpansion == 0, "Bottleneck: out_channels (", out_channels,
              ") must be a multiple of ", kExpansion);
  const int64_t mid = out_channels / kExpansion;
  conv1_ = register_module("conv1", conv(in_channels, mid, 1, 1));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(mid));
  conv2_ = register_module("conv2", conv(mid, mid, 3, stride));
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(mid));
  conv3_ = register_module("conv3", conv(mid, out_channels, 1, 1));
  bn3_ = register_module("bn3", std::make_shared<nn::BatchNorm2d>(out_channels));
  relu_ = register_module("relu", std::make_shared<nn::ReLU>());
  if (auto downsample = make_downsample(in_channels, out_channels, stride)) {
    downsample_ = register_module("downsample", downsample);
  }
  add_ = register_module("add", std::make_shared<nn::Add>());
}

torch::Tensor Bottleneck::forward(const torch::Tensor& input) {
  torch::Tensor out = (*relu_)((*bn1_)((*conv1_)(input)));
  out = (*relu_)((*bn2_)((*conv2_)(out)));
  out = (*bn3_)((*conv3_)(out));
  torch::Tensor identity = downsample_ ? (*downsample_)(input) : input;
  return (*relu_)((*add_)({out, identity}));
}

ResNetOptions ResNetOptions::imagenet(int64_t depth) {
  ResNetOptions options;
  options.depth = depth;
  return options;
}

ResNetOptions ResNetOptions::cifar(int64_t depth) {
  ResNetOptions options;
  options.depth = depth;
  options.cifar_layout = true;
  options.stem_channels = 16;
  options.base_channels = 16;
  return options;
}

std::vector<int64_t> ResNet::imagenet_depths() {
  std::vector<int64_t> out;
  for (const auto& item : imagenet_archs()) out.push_back(item.first);
  return out;
}

bool ResNet::is_cifar_depth(int64_t depth) { return depth >= 8 && (depth - 2) % 6 == 0; }

ResNet::ResNet(const ResNetOptions& options)
    : Backbone(options.cifar_layout ? "ResNet_CIFAR" : "ResNet"), options_(options) {
  RAZOR_CHECK(options.in_channels > 0, "ResNet: in_channels must be positive, got ",
              options.in_channels);
  RAZOR_CHECK(options.base_channels > 0 && options.stem_channels > 0,
              "ResNet: base_channels and stem_channels must be positive");
  if (options.cifar_layout) {
    RAZOR_CHECK(
        is_cifar_depth(options.depth),
        "ResNet_CIFAR: depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got ",
        options.depth);
    const int64_t n = (options.depth - 2) / 6;
    const int64_t stem = options.base_channels;
    conv1_ = register_module("conv1", conv(options.in_channels, stem, 3, 1));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(stem));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    make_stages<BasicBlock>({n, n, n}, stem);
  } else {
    auto it = imagenet_archs().find(options.depth);
    if (it == imagenet_archs().end()) {
      std::vector<std::string> allowed;
      for (int64_t d : imagenet_depths()) allowed.push_back(std::to_string(d));
      throw config_error("ResNet: depth must be one of ", join(allowed, ", "), ", got ",
                         options.depth);
    }
    conv1_ = register_module("conv1", conv(options.in_channels, options.stem_channels, 7, 2));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(options.stem_channels));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    maxpool_ = register_module("maxpool", std::make_shared<nn::MaxPool2d>(
                                              nn::Pool2dOptions(3).with_stride(2).with_padding(1)));
    if (it->second.bottleneck) {
      make_stages<Bottleneck>(it->second.blocks, options.stem_channels);
    } else {
      make_stages<BasicBlock>(it->second.blocks, options.stem_channels);
    }
  }
}

template <class Block>
void ResNet::make_stages(const std::vector<int64_t>& blocks, int64_t in_channels) {
  for (size_t stage = 0; stage < blocks.size(); ++stage) {
    const int64_t out_channels = (options_.base_channels << stage) * Block::kExpansion;
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < blocks[stage]; ++b) {
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      auto block = layer->push_back(std::make_shared<Block>(in_channels, out_channels, stride));
      if (options_.zero_init_residual) {
        torch::NoGradGuard no_grad;
        block->last_bn().weight.zero_();
      }
      in_channels = out_channels;
    }
    layers_.push_back(register_module("layer" + std::to_string(stage + 1), layer));
  }
  out_channels_ = in_channels;
}

torch::Tensor ResNet::forward(const torch::Tensor& input) {
  torch::Tensor x = (*relu_)((*bn1_)((*conv1_)(input)));
  if (maxpool_) x = (*maxpool_)(x);
  for (const auto& layer : layers_) x = (*layer)(x);
  return x;
}

}  // namespace razor
