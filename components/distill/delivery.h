#pragma once
// Deliveries (MMRazor's DistillDeliveryManager and output deliveries): during the teacher's
// forward a delivery keeps each value computed at its deliverable (first in, first out, at
// most `max_keep_data`, the oldest dropped); during the student's forward it replays them
// instead of computing new ones, so randomness such as Mixup's coefficient and permutation
// is the same for both models.
//
//   [model.distiller.distill_deliveries.augments]
//   source = "batch_augments"      # the deliverable's name
//   max_keep_data = 1
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "components/nn/deliverable.h"
#include "engine/args.h"

namespace razor {

class Delivery : public DeliverableSink {
 public:
  Delivery(std::string source, int64_t max_keep_data);

  /// Binds to the deliverable (stop() unbinds; the queue stays).
  void start();
  void stop();
  void set_override(bool override_data) { override_ = override_data; }

  bool replaying() const override { return override_; }
  std::vector<torch::Tensor> replay() override;
  void keep(const std::vector<torch::Tensor>& values) override;

  const std::string& source() const { return source_; }
  size_t queued() const { return queue_.size(); }

 private:
  std::string source_;
  int64_t max_keep_data_;
  bool override_ = false;
  std::deque<std::vector<torch::Tensor>> queue_;
  std::optional<DeliverableBinding> binding_;
};

/// A named set of deliveries, started and stopped together, whose override flag is set for
/// all at once: off for the teacher's forward, on for the student's.
class DeliveryManager {
 public:
  void add(const std::string& name, std::shared_ptr<Delivery> delivery);
  void start();
  void stop();
  void set_override(bool override_data);
  bool empty() const { return deliveries_.empty(); }
  Delivery& get(const std::string& name) const;

 private:
  std::map<std::string, std::shared_ptr<Delivery>> deliveries_;
};

/// Starts a manager's deliveries with the given override for a scope.
class DeliveryScope {
 public:
  DeliveryScope(DeliveryManager& manager, bool override_data) : manager_(manager) {
    manager_.set_override(override_data);
    manager_.start();
  }
  ~DeliveryScope() { manager_.stop(); }
  DeliveryScope(const DeliveryScope&) = delete;
  DeliveryScope& operator=(const DeliveryScope&) = delete;

 private:
  DeliveryManager& manager_;
};

/// Builds every `{name = {source, max_keep_data = 1}}` entry of `args`.
DeliveryManager build_deliveries(Args& args);

}  // namespace razor
