#pragma once
// Deliverables: values that code computes with randomness (a batch augment's mixing
// coefficient and permutation) and that a distillation delivery may replay. During the
// teacher's forward a delivery keeps what was computed; during the student's it hands the
// kept value back instead of computing a new one, so both models see the same draw
// (MMRazor's method and function output deliveries).
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace razor {

/// What a delivery does at a deliverable point while it is bound to it.
class DeliverableSink {
 public:
  virtual ~DeliverableSink() = default;
  /// True: the next value is replayed with replay() instead of computed.
  virtual bool replaying() const = 0;
  virtual std::vector<torch::Tensor> replay() = 0;
  /// Called with each computed value while not replaying.
  virtual void keep(const std::vector<torch::Tensor>& values) = 0;
};

/// compute(), or the value a bound delivery replays for `name`.
std::vector<torch::Tensor> deliverable(const std::string& name,
                                       const std::function<std::vector<torch::Tensor>()>& compute);

/// Binds a sink to the deliverable `name` for its lifetime; one sink per name at a time.
class DeliverableBinding {
 public:
  DeliverableBinding(std::string name, DeliverableSink* sink);
  ~DeliverableBinding();
  DeliverableBinding(const DeliverableBinding&) = delete;
  DeliverableBinding& operator=(const DeliverableBinding&) = delete;

 private:
  std::string name_;
};

/// Number of bound sinks (for tests: nothing should stay bound after a step).
size_t num_deliverable_bindings();

}  // namespace razor
