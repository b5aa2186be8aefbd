#pragma once
// A chain of razor modules, named "0", "1", ... as torch.nn.Sequential names them (so
// "backbone.layer1.0.conv1" addresses a block's conv). Each child is called through its
// hooks.
#include <memory>
#include <vector>

#include "components/nn/module.h"

namespace razor::nn {

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(const std::vector<std::shared_ptr<Module>>& modules);

  /// Appends `module` as child "<size()>" and returns it, keeping its type.
  template <class T>
  std::shared_ptr<T> push_back(std::shared_ptr<T> module) {
    append(module);
    return module;
  }

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  Module& operator[](size_t index) const { return *ptr(index); }
  std::shared_ptr<Module> ptr(size_t index) const;
  /// The child at `index` as a `T`; a different type is a bug of the caller.
  template <class T>
  T& at(size_t index) const {
    auto* typed = dynamic_cast<T*>(ptr(index).get());
    if (!typed)
      throw std::logic_error("Sequential::at: child " + std::to_string(index) +
                             " has another type");
    return *typed;
  }
  /// Puts `module` in the place of child `index` (registered under the same name), so that
  /// the chain runs it from then on.
  void replace(size_t index, std::shared_ptr<Module> module);
  std::vector<std::shared_ptr<Module>>::const_iterator begin() const { return items_.begin(); }
  std::vector<std::shared_ptr<Module>>::const_iterator end() const { return items_.end(); }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  void append(std::shared_ptr<Module> module);

  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace razor::nn
