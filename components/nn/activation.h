#pragma once
// Activation ops. Never in-place: recorders and observers keep the tensors they see.
#include <memory>
#include <string>
#include <vector>

#include "components/nn/module.h"

namespace razor::nn {

class ReLU : public Module {
 public:
  const OpDescription* description() const override;
  ReLU() : Module("ReLU") {}

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;
};

/// min(max(x, 0), 6), MobileNetV2's activation.
class ReLU6 : public Module {
 public:
  const OpDescription* description() const override;
  ReLU6() : Module("ReLU6") {}

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;
};

/// x * relu6(x + 3) / 6, MobileNetV3's activation.
class Hardswish : public Module {
 public:
  const OpDescription* description() const override;
  Hardswish() : Module("Hardswish") {}

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;
};

/// relu6(x + 3) / 6, the gate of MobileNetV3's squeeze-excitation.
class Hardsigmoid : public Module {
 public:
  const OpDescription* description() const override;
  Hardsigmoid() : Module("Hardsigmoid") {}

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;
};

class Sigmoid : public Module {
 public:
  const OpDescription* description() const override;
  Sigmoid() : Module("Sigmoid") {}

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;
};

class Tanh : public Module {
 public:
  const OpDescription* description() const override;
  Tanh() : Module("Tanh") {}

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;
};

/// The activation names `make_activation` knows.
std::vector<std::string> activation_names();

/// An activation by its config name ("ReLU", "ReLU6", "Hardswish", "Hardsigmoid",
/// "Sigmoid", "Tanh"); an unknown name is a config error naming the nearest one.
std::shared_ptr<Module> make_activation(const std::string& type);

}  // namespace razor::nn
