#pragma once
// Taps: named values that code publishes for recorders, when a value is not a module's input
// or output (the C++ counterpart of MMRazor's method and function recorders). Publishing is
// free when nobody listens.
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace razor {

/// Publishes `values` under `name` to every active listener of that name.
void tap(const std::string& name, const std::vector<torch::Tensor>& values);
inline void tap(const std::string& name, const torch::Tensor& value) { tap(name, std::vector<torch::Tensor>{value}); }

/// Listens to a tap until remove() (or destruction).
class TapListener {
 public:
  using Callback = std::function<void(const std::vector<torch::Tensor>&)>;
  TapListener() = default;
  TapListener(std::string name, Callback callback);
  ~TapListener();
  TapListener(const TapListener&) = delete;
  TapListener& operator=(const TapListener&) = delete;
  void remove();
  bool active() const { return id_ != 0; }

 private:
  std::string name_;
  uint64_t id_ = 0;
};

/// Number of listeners (for tests: nothing should stay attached after recording).
size_t num_tap_listeners();

}  // namespace razor
