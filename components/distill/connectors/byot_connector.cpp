#include "components/distill/connectors/byot_connector.h"

#include <cmath>

#include <torch/torch.h>

#include "engine/error.h"

namespace razor {

namespace nnt = torch::nn;

void append_darts_sep_conv(torch::nn::Sequential& layers, int64_t in, int64_t out, int64_t kernel_size, int64_t stride) {
  const int64_t pad = kernel_size / 2;
  layers->push_back(nnt::ReLU());
  layers->push_back(nnt::Conv2d(nnt::Conv2dOptions(in, in, kernel_size).stride(stride).padding(pad).groups(in).bias(false)));
  layers->push_back(nnt::Conv2d(nnt::Conv2dOptions(in, in, 1).bias(false)));
  layers->push_back(nnt::BatchNorm2d(in));
  layers->push_back(nnt::ReLU());
  layers->push_back(nnt::Conv2d(nnt::Conv2dOptions(in, out, kernel_size).padding(pad).groups(in).bias(false)));
  layers->push_back(nnt::Conv2d(nnt::Conv2dOptions(out, out, 1).bias(false)));
  layers->push_back(nnt::BatchNorm2d(out));
}

BYOTConnector::BYOTConnector(const BYOTConnectorOptions& o) : Connector("BYOTConnector") {
  const int64_t c = o.in_channel * o.expansion;
  // LibTorch cannot nest Sequentials, so each separable conv is laid out flat.
  attention_ = register_module("attention", nnt::Sequential());
  append_darts_sep_conv(attention_, c, c, o.kernel_size, o.stride);
  attention_->push_back(nnt::BatchNorm2d(c));
  attention_->push_back(nnt::ReLU());
  attention_->push_back(
      nnt::Upsample(nnt::UpsampleOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kBilinear).align_corners(false)));
  attention_->push_back(nnt::Sigmoid());
  scala_ = register_module("scala", nnt::Sequential());
  for (int64_t channels = o.in_channel; channels < o.out_channel; channels *= 2) {
    append_darts_sep_conv(scala_, channels * o.expansion, channels * 2 * o.expansion, o.kernel_size, o.stride);
  }
  scala_->push_back(nnt::AvgPool2d(o.pool_size));
  fc_ = register_module("fc", nnt::Linear(o.out_channel * o.expansion, o.num_classes));
}

std::shared_ptr<Connector> BYOTConnector::from_args(Args& args, const BuildContext&) {
  BYOTConnectorOptions o;
  o.in_channel = args.require<int64_t>("in_channel");
  o.out_channel = args.require<int64_t>("out_channel");
  o.num_classes = args.require<int64_t>("num_classes");
  o.expansion = args.get<int64_t>("expansion", o.expansion);
  o.pool_size = args.get<int64_t>("pool_size", o.pool_size);
  o.kernel_size = args.get<int64_t>("kernel_size", o.kernel_size);
  o.stride = args.get<int64_t>("stride", o.stride);
  if (o.in_channel <= 0) args.fail("in_channel", "must be positive");
  const double doublings = std::log2(static_cast<double>(o.out_channel) / static_cast<double>(o.in_channel));
  if (o.out_channel < o.in_channel || doublings != std::floor(doublings)) {
    args.fail("out_channel", "must be in_channel times a power of two (" + std::to_string(o.in_channel) + " -> " +
                                 std::to_string(o.out_channel) + ")");
  }
  if (o.num_classes <= 0) args.fail("num_classes", "must be positive");
  if (o.kernel_size != 3 && o.kernel_size != 5) args.fail("kernel_size", "must be 3 or 5 (a DARTS separable conv)");
  if (o.stride != 1 && o.stride != 2) args.fail("stride", "must be 1 or 2");
  if (o.expansion <= 0 || o.pool_size <= 0) args.fail("expansion", "expansion and pool_size must be positive");
  return std::make_shared<BYOTConnector>(o);
}

std::vector<torch::Tensor> BYOTConnector::forward(const torch::Tensor& input) {
  auto mask = attention_->forward(input);
  RAZOR_CHECK(mask.sizes() == input.sizes(), "BYOTConnector: the attention mask has shape ", mask.sizes(),
              " for a feature of shape ", input.sizes(), " (with stride 2, the feature's height and width must be even)");
  auto feature = scala_->forward(mask * input).reshape({input.size(0), -1});
  RAZOR_CHECK(feature.size(1) == fc_->options.in_features(), "BYOTConnector: the pooled feature has ", feature.size(1),
              " values per sample, the fc takes ", fc_->options.in_features(),
              ": set pool_size to the downsampled feature's height and width");
  return {feature, fc_->forward(feature)};
}

}  // namespace razor
