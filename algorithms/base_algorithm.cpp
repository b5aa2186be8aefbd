#include "algorithms/base_algorithm.h"

#include <torch/torch.h>

#include "components/nn/module.h"

namespace razor {

BaseAlgorithm::BaseAlgorithm(std::shared_ptr<Model> architecture)
    : architecture_(register_module("architecture", std::move(architecture))) {}

}  // namespace razor
