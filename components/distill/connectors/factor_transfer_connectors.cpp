#include "components/distill/connectors/factor_transfer_connectors.h"

#include <torch/torch.h>

#include "engine/error.h"

namespace razor {

namespace {

/// conv3x3 (or transposed) -> [BN] -> LeakyReLU(0.1) for each (in, out) pair.
torch::nn::Sequential stack(const std::vector<std::pair<int64_t, int64_t>>& channels, bool use_bn, bool transposed) {
  torch::nn::Sequential layers;
  for (const auto& [in, out] : channels) {
    if (transposed) {
      layers->push_back(torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 3).padding(1)));
    } else {
      layers->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
    }
    // MMRazor puts an empty Sequential where BN is off; razor leaves the slot out, so the
    // indices of later layers differ from MMRazor's checkpoints when use_bn is false.
    if (use_bn) layers->push_back(torch::nn::BatchNorm2d(out));
    layers->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.1)));
  }
  return layers;
}

void check_channels(Args& args, int64_t in, int64_t out) {
  if (in <= 0) args.fail("in_channel", "must be positive");
  if (out <= 0) args.fail("out_channel", "must be positive");
}

}  // namespace

Paraphraser::Paraphraser(int64_t in_channel, int64_t out_channel, std::string phase, bool use_bn)
    : Connector("Paraphraser") {
  encoder_ = register_module("encoder", stack({{in_channel, in_channel}, {in_channel, out_channel}, {out_channel, out_channel}},
                                              use_bn, false));
  decoder_ = register_module("decoder", stack({{out_channel, out_channel}, {out_channel, in_channel}, {in_channel, in_channel}},
                                              use_bn, true));
  set_phase(phase);
}

void Paraphraser::set_phase(const std::string& phase) {
  RAZOR_CHECK(phase == "pretrain" || phase == "train", "Paraphraser: phase must be \"pretrain\" or \"train\", got \"",
              phase, "\"");
  phase_ = phase;
}

std::shared_ptr<Connector> Paraphraser::from_args(Args& args, const BuildContext&) {
  const int64_t in = args.require<int64_t>("in_channel"), out = args.require<int64_t>("out_channel");
  check_channels(args, in, out);
  const std::string phase = args.get<std::string>("phase", "pretrain");
  if (phase != "pretrain" && phase != "train") args.fail("phase", "must be \"pretrain\" or \"train\", got \"" + phase + "\"");
  return std::make_shared<Paraphraser>(in, out, phase, args.get<bool>("use_bn", false));
}

std::vector<torch::Tensor> Paraphraser::forward(const torch::Tensor& input) {
  if (phase_ == "train") {
    torch::NoGradGuard no_grad;
    return {encoder_->forward(input)};
  }
  return {decoder_->forward(encoder_->forward(input))};
}

Translator::Translator(int64_t in_channel, int64_t out_channel, bool use_bn) : Connector("Translator") {
  encoder_ = register_module("encoder", stack({{in_channel, in_channel}, {in_channel, out_channel}, {out_channel, out_channel}},
                                              use_bn, false));
}

std::shared_ptr<Connector> Translator::from_args(Args& args, const BuildContext&) {
  const int64_t in = args.require<int64_t>("in_channel"), out = args.require<int64_t>("out_channel");
  check_channels(args, in, out);
  return std::make_shared<Translator>(in, out, args.get<bool>("use_bn", true));
}

std::vector<torch::Tensor> Translator::forward(const torch::Tensor& input) { return {encoder_->forward(input)}; }

}  // namespace razor
