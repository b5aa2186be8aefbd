#pragma once
// Ops over several tensors (residual add, concat, gating mul), as modules in the manner of
// PyTorch quantisation's FloatFunctional: quantisers, recorders and the pruning tracer find
// them by name. They are called with a list, `(*add)({a, b})`, and their hooks see the list.
#include <cstdint>

#include "components/nn/module.h"

namespace razor::nn {

/// Sum of two or more tensors of one shape (a residual connection).
class Add : public Module {
 public:
  const OpDescription* description() const override;
  Add() : Module("Add") {}

 protected:
  torch::Tensor forward_inputs(const Inputs& inputs) override;
};

/// Concatenation of two or more tensors along `dim` (channels by default).
class Concat : public Module {
 public:
  const OpDescription* description() const override;
  explicit Concat(int64_t dim = 1) : Module("Concat"), dim_(dim) {}
  int64_t dim() const { return dim_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward_inputs(const Inputs& inputs) override;

 private:
  int64_t dim_;
};

/// Elementwise product of two tensors, broadcasting (e.g. a squeeze-excitation gate).
class Mul : public Module {
 public:
  const OpDescription* description() const override;
  Mul() : Module("Mul") {}

 protected:
  torch::Tensor forward_inputs(const Inputs& inputs) override;
};

}  // namespace razor::nn
