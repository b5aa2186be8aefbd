#include "components/architectures/dafl_generator.h"

#include <cmath>

#include <torch/torch.h>

#include "components/nn/activation.h"
#include "components/nn/conv.h"
#include "components/nn/op_description.h"
#include "engine/error.h"

namespace razor {

namespace {

// The generator's own activations: razor's activation set has neither.
class LeakyReLU : public nn::Module {
 public:
  explicit LeakyReLU(double slope) : nn::Module("LeakyReLU"), slope_(slope) {}
  // MMRazor's ReLU counters count it (one FLOP per element); no quantiser or ONNX form.
  const nn::OpDescription* description() const override {
    static const nn::OpDescription d{{}, nn::count_per_output_element, nullptr,
                                     nn::channel_flow(nn::ChannelFlow::kPass)};
    return &d;
  }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override { return torch::leaky_relu(input, slope_); }

 private:
  double slope_;
};

/// PyTorch's nn.Conv2d initialisation (kaiming_uniform with a = sqrt(5): bound 1/sqrt(fan_in)
/// for weight and bias); razor's Conv2d starts Kaiming-normal for classifiers instead.
std::shared_ptr<nn::Conv2d> conv3x3(int64_t in_channels, int64_t out_channels) {
  auto conv = std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in_channels, out_channels, 3).with_padding(1));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_channels * 9));
  torch::NoGradGuard no_grad;
  conv->weight.uniform_(-bound, bound);
  conv->bias.uniform_(-bound, bound);
  return conv;
}

torch::Tensor upsample(const torch::Tensor& x, int64_t factor) {
  return torch::upsample_nearest2d(x, {x.size(2) * factor, x.size(3) * factor});
}

}  // namespace

torch::Tensor Generator::sample(int64_t batch_size) {
  RAZOR_CHECK(batch_size > 0, "generator: batch_size must be positive, got ", batch_size);
  const auto params = parameters();
  RAZOR_ASSERT(!params.empty());
  return (*this)(torch::randn({batch_size, latent_dim()}, params.front().options()));
}

DAFLGenerator::DAFLGenerator(const DAFLGeneratorOptions& options)
    : Generator("DAFLGenerator"), options_(options) {
  const int64_t area = options.scale_factor * options.scale_factor;
  RAZOR_CHECK(options.scale_factor >= 1, "DAFLGenerator: scale_factor must be >= 1, got ", options.scale_factor);
  RAZOR_CHECK(options.img_size > 0 && options.img_size % area == 0, "DAFLGenerator: img_size (", options.img_size,
              ") must be a positive multiple of scale_factor^2 (", area, ")");
  RAZOR_CHECK(options.latent_dim > 0, "DAFLGenerator: latent_dim must be positive, got ", options.latent_dim);
  RAZOR_CHECK(options.hidden_channels >= 2, "DAFLGenerator: hidden_channels must be >= 2, got ",
              options.hidden_channels);
  RAZOR_CHECK(options.out_channels > 0, "DAFLGenerator: out_channels must be positive, got ", options.out_channels);
  init_size_ = options.img_size / area;
  const int64_t hidden = options.hidden_channels;
  linear_ = register_module("linear", std::make_shared<nn::Linear>(options.latent_dim, hidden * init_size_ * init_size_));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(hidden));

  conv_blocks1_ = register_module("conv_blocks1", std::make_shared<nn::Sequential>());
  conv_blocks1_->push_back(conv3x3(hidden, hidden));
  conv_blocks1_->push_back(std::make_shared<nn::BatchNorm2d>(hidden, options.bn_eps));
  conv_blocks1_->push_back(std::make_shared<LeakyReLU>(options.leaky_slope));

  conv_blocks2_ = register_module("conv_blocks2", std::make_shared<nn::Sequential>());
  conv_blocks2_->push_back(conv3x3(hidden, hidden / 2));
  conv_blocks2_->push_back(std::make_shared<nn::BatchNorm2d>(hidden / 2, options.bn_eps));
  conv_blocks2_->push_back(std::make_shared<LeakyReLU>(options.leaky_slope));
  conv_blocks2_->push_back(conv3x3(hidden / 2, options.out_channels));
  conv_blocks2_->push_back(std::make_shared<nn::Tanh>());
  // affine=False in MMRazor: the output is standardised per channel, like normalised images.
  auto last_bn = conv_blocks2_->push_back(std::make_shared<nn::BatchNorm2d>(options.out_channels));
  last_bn->weight.set_requires_grad(false);
  last_bn->bias.set_requires_grad(false);
}

torch::Tensor DAFLGenerator::forward(const torch::Tensor& latent) {
  RAZOR_CHECK(latent.dim() == 2 && latent.size(1) == options_.latent_dim,
              "DAFLGenerator: latent codes must be N x latent_dim (", options_.latent_dim, "), got ", latent.sizes());
  auto x = (*linear_)(latent).view({latent.size(0), options_.hidden_channels, init_size_, init_size_});
  x = (*bn1_)(x);
  x = (*conv_blocks1_)(upsample(x, options_.scale_factor));
  return (*conv_blocks2_)(upsample(x, options_.scale_factor));
}

std::shared_ptr<torch::nn::Module> build_dafl_generator(Args& args, const BuildContext&) {
  DAFLGeneratorOptions options;
  options.img_size = args.require<int64_t>("img_size");
  options.latent_dim = args.require<int64_t>("latent_dim");
  options.hidden_channels = args.require<int64_t>("hidden_channels");
  options.out_channels = args.get<int64_t>("out_channels", 3);
  options.scale_factor = args.get<int64_t>("scale_factor", 2);
  options.bn_eps = args.get<double>("bn_eps", 0.8);
  options.leaky_slope = args.get<double>("leaky_slope", 0.2);
  return std::make_shared<DAFLGenerator>(options);
}

}  // namespace razor
