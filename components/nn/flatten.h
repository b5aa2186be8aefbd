#pragma once
// Flattens dims start_dim..end_dim into one. An op module because "flatten into linear" is
// a channel dependency the pruning tracer must see. Uses torch::flatten (a reshape), so
// channels_last inputs work.
#include <cstdint>

#include "components/nn/module.h"

namespace razor::nn {

class Flatten : public Module {
 public:
  const OpDescription* description() const override;
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : Module("Flatten"), start_dim_(start_dim), end_dim_(end_dim) {}
  int64_t start_dim() const { return start_dim_; }
  int64_t end_dim() const { return end_dim_; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t start_dim_, end_dim_;
};

}  // namespace razor::nn
