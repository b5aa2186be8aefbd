#include "components/nn/sequential.h"

#include <torch/torch.h>

#include <string>

#include "engine/error.h"

namespace razor::nn {

Sequential::Sequential(const std::vector<std::shared_ptr<Module>>& modules) : Module("Sequential") {
  for (const auto& module : modules) append(module);
}

void Sequential::append(std::shared_ptr<Module> module) {
  RAZOR_ASSERT(module != nullptr);
  items_.push_back(register_module(std::to_string(items_.size()), std::move(module)));
}

std::shared_ptr<Module> Sequential::ptr(size_t index) const {
  if (index >= items_.size()) {
    throw std::out_of_range("Sequential: index " + std::to_string(index) + " out of range (size " +
                            std::to_string(items_.size()) + ")");
  }
  return items_[index];
}

void Sequential::replace(size_t index, std::shared_ptr<Module> module) {
  RAZOR_ASSERT(module != nullptr);
  ptr(index);  // range check
  items_[index] = module;
  replace_module(std::to_string(index), std::move(module));
}

torch::Tensor Sequential::forward(const torch::Tensor& input) {
  torch::Tensor x = input;
  for (const auto& module : items_) x = (*module)(x);
  return x;
}

}  // namespace razor::nn
