#pragma once
// The do-nothing op: a named place in the graph (NAS skip candidates, removed blocks).
#include "components/nn/module.h"

namespace razor::nn {

class Identity : public Module {
 public:
  const OpDescription* description() const override;
  Identity() : Module("Identity") {}

 protected:
  torch::Tensor forward(const torch::Tensor& input) override { return input; }
};

}  // namespace razor::nn
