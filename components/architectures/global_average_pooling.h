#pragma once
// mmcls's GlobalAveragePooling neck: N x C x H x W -> N x C. Children "gap"
// (AdaptiveAvgPool2d to 1 x 1) and "flatten" (so the tracer sees flatten-into-linear).
#include <memory>

#include "components/nn/flatten.h"
#include "components/nn/module.h"
#include "components/nn/pooling.h"

namespace razor {

class GlobalAveragePooling : public nn::Module {
 public:
  GlobalAveragePooling();

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::AdaptiveAvgPool2d> gap_;
  std::shared_ptr<nn::Flatten> flatten_;
};

}  // namespace razor
