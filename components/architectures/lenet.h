#pragma once
// LeNet-5 as mmpretrain's backbone: conv5x5(in->6)-tanh-avgpool2, conv5x5(6->16)-tanh-avgpool2,
// conv5x5(16->120)-tanh, giving 120 x 1 x 1 on a 32 x 32 input. No normalisation layers, so
// its training is a plain function of the batch (the data-parallel equivalence tests use it).
//   backbone = { type = "LeNet5", in_channels = 1 }
#include <cstdint>
#include <memory>

#include "components/architectures/backbone.h"
#include "components/nn/sequential.h"

namespace razor {

class LeNet5 : public Backbone {
 public:
  explicit LeNet5(int64_t in_channels = 1);
  int64_t out_channels() const override { return 120; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Sequential> features_;
};

}  // namespace razor
