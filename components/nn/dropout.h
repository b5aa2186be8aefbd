#pragma once
// Dropout: zeroes elements with probability p in training mode, the identity in eval mode.
#include "components/nn/module.h"

namespace razor::nn {

class Dropout : public Module {
 public:
  const OpDescription* description() const override;
  explicit Dropout(double p = 0.5);
  double p() const { return p_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  double p_;
};

}  // namespace razor::nn
