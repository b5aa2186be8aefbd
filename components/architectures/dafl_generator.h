#pragma once
// MMRazor's DAFLGenerator (architectures/generators/dafl_generator.py): latent code ->
// Linear -> (hidden x init x init) -> BN -> upsample -> conv3x3-BN-LeakyReLU -> upsample ->
// conv3x3-BN-LeakyReLU-conv3x3-Tanh-BN(no affine) -> out_channels x img_size x img_size,
// with init_size = img_size / scale_factor^2. Data-free distillation trains it to produce
// the images a teacher is trained on.
//
//   generator = { type = "DAFLGenerator", img_size = 28, latent_dim = 100,
//                 hidden_channels = 64, out_channels = 1 }
//
// Module names follow MMRazor (linear, bn1, conv_blocks1.0, conv_blocks2.3, ...). The last
// BatchNorm has affine=False there; here it is a BatchNorm2d whose weight (1) and bias (0)
// are frozen, so its state dict has those two extra entries.
#include <cstdint>
#include <memory>

#include "components/nn/batch_norm.h"
#include "components/nn/linear.h"
#include "components/nn/module.h"
#include "components/nn/sequential.h"
#include "engine/args.h"
#include "engine/registry.h"

namespace razor {

/// What data-free distillation needs of a generator (MMRazor's BaseGenerator): images from
/// latent codes of latent_dim() values. Calling it maps given codes (N x latent_dim).
class Generator : public nn::Module {
 public:
  using nn::Module::Module;

  virtual int64_t latent_dim() const = 0;

  /// Images from `batch_size` codes drawn from N(0, 1) on the generator's device (MMRazor's
  /// forward(data=None, batch_size)).
  torch::Tensor sample(int64_t batch_size);
};

struct DAFLGeneratorOptions {
  /// Height and width of the generated images; a multiple of scale_factor^2.
  int64_t img_size = 32;
  /// Length of the latent code.
  int64_t latent_dim = 1000;
  /// Channels after the linear layer (halved in the second block).
  int64_t hidden_channels = 128;
  /// Image channels (MMRazor fixes 3; 1 for Fashion-MNIST).
  int64_t out_channels = 3;
  /// Upsampling factor of each of the two (nearest) upsamplings.
  int64_t scale_factor = 2;
  /// eps of the BatchNorms inside the conv blocks (MMRazor's 0.8, as the DAFL code).
  double bn_eps = 0.8;
  /// Negative slope of the LeakyReLUs.
  double leaky_slope = 0.2;
  // clang-format off
  DAFLGeneratorOptions& with_img_size(int64_t v) { img_size = v; return *this; }
  DAFLGeneratorOptions& with_latent_dim(int64_t v) { latent_dim = v; return *this; }
  DAFLGeneratorOptions& with_hidden_channels(int64_t v) { hidden_channels = v; return *this; }
  DAFLGeneratorOptions& with_out_channels(int64_t v) { out_channels = v; return *this; }
  DAFLGeneratorOptions& with_scale_factor(int64_t v) { scale_factor = v; return *this; }
  DAFLGeneratorOptions& with_bn_eps(double v) { bn_eps = v; return *this; }
  DAFLGeneratorOptions& with_leaky_slope(double v) { leaky_slope = v; return *this; }
  // clang-format on
};

class DAFLGenerator : public Generator {
 public:
  /// Weights start as PyTorch's defaults (MMRazor's generator has no init_cfg).
  explicit DAFLGenerator(const DAFLGeneratorOptions& options);

  int64_t latent_dim() const override { return options_.latent_dim; }
  int64_t init_size() const { return init_size_; }
  const DAFLGeneratorOptions& options() const { return options_; }

 protected:
  torch::Tensor forward(const torch::Tensor& latent) override;

 private:
  DAFLGeneratorOptions options_;
  int64_t init_size_;
  std::shared_ptr<nn::Linear> linear_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;
  std::shared_ptr<nn::Sequential> conv_blocks1_, conv_blocks2_;
};

/// The model-registry factory of "DAFLGenerator" (keys as MMRazor's, plus out_channels).
std::shared_ptr<torch::nn::Module> build_dafl_generator(Args& args, const BuildContext& context);

}  // namespace razor
