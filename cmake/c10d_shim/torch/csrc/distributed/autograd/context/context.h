#pragma once
// Debian's libtorch-dev ships c10d's reducer.hpp but not the distributed-autograd header it
// includes. The Reducer only names two types from it, as a std::function and a shared_ptr,
// whose layouts do not depend on the class: these declarations are enough to use the
// Reducer that libtorch_cpu.so contains. A LibTorch that ships the real header (pip's)
// never sees this directory (CMakeLists.txt checks).
#include <functional>
#include <memory>

#include <ATen/core/Tensor.h>

namespace torch::distributed::autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace torch::distributed::autograd
