#pragma once
// Factor Transfer's connectors (Kim et al., NeurIPS 2018; MMRazor's Paraphraser and
// Translator). The paraphraser is an autoencoder of the teacher's feature: in phase
// "pretrain" it returns the reconstruction (trained to match the feature), in phase "train"
// the encoder's factor, computed without gradients. The translator encodes the student's
// feature into a factor of the same size. Three 3x3 convs each, LeakyReLU 0.1, optional BN.
//   { type = "Paraphraser", in_channel = 64, out_channel = 32, phase = "pretrain", use_bn = false }
//   { type = "Translator", in_channel = 64, out_channel = 32, use_bn = true }
#include <torch/nn/modules/container/sequential.h>

#include "components/distill/connector.h"

namespace razor {

class Paraphraser : public Connector {
 public:
  Paraphraser(int64_t in_channel, int64_t out_channel, std::string phase, bool use_bn);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  /// "pretrain" or "train".
  void set_phase(const std::string& phase);
  const std::string& phase() const { return phase_; }
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;

 private:
  torch::nn::Sequential encoder_{nullptr}, decoder_{nullptr};
  std::string phase_;
};

class Translator : public Connector {
 public:
  Translator(int64_t in_channel, int64_t out_channel, bool use_bn);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;

 private:
  torch::nn::Sequential encoder_{nullptr};
};

}  // namespace razor
