#include "components/distill/delivery.h"

#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

Delivery::Delivery(std::string source, int64_t max_keep_data)
    : source_(std::move(source)), max_keep_data_(max_keep_data) {
  RAZOR_CHECK(max_keep_data_ >= 1, "delivery of \"", source_, "\": max_keep_data must be at least 1");
}

void Delivery::start() {
  if (!binding_) binding_.emplace(source_, this);
}

void Delivery::stop() { binding_.reset(); }

std::vector<torch::Tensor> Delivery::replay() {
  RAZOR_CHECK(!queue_.empty(), "delivery of \"", source_,
              "\": nothing to replay: the teacher's forward did not compute it (does the teacher use it?)");
  std::vector<torch::Tensor> values = std::move(queue_.front());
  queue_.pop_front();
  return values;
}

void Delivery::keep(const std::vector<torch::Tensor>& values) {
  queue_.push_back(values);
  while (static_cast<int64_t>(queue_.size()) > max_keep_data_) queue_.pop_front();
}

void DeliveryManager::add(const std::string& name, std::shared_ptr<Delivery> delivery) {
  deliveries_[name] = std::move(delivery);
}

void DeliveryManager::start() {
  for (auto& item : deliveries_) item.second->start();
}

void DeliveryManager::stop() {
  for (auto& item : deliveries_) item.second->stop();
}

void DeliveryManager::set_override(bool override_data) {
  for (auto& item : deliveries_) item.second->set_override(override_data);
}

Delivery& DeliveryManager::get(const std::string& name) const {
  auto it = deliveries_.find(name);
  if (it == deliveries_.end()) {
    std::vector<std::string> names;
    for (const auto& item : deliveries_) names.push_back(item.first);
    throw Error(Error::Kind::Config, "no delivery named \"" + name + "\"" + did_you_mean(name, names));
  }
  return *it->second;
}

DeliveryManager build_deliveries(Args& args) {
  DeliveryManager manager;
  for (const auto& item : args.table().items()) {
    Args delivery = args.sub(item.key());
    // MMRazor names the kind of patched callable; razor has one kind, deliverable outputs.
    const std::string type = delivery.get<std::string>("type", "DeliverableOutputs");
    if (type != "DeliverableOutputs") {
      delivery.fail("type", "unknown delivery type \"" + type + "\" (razor has \"DeliverableOutputs\")");
    }
    const std::string source = delivery.require<std::string>("source");
    const int64_t max_keep_data = delivery.get<int64_t>("max_keep_data", 1);
    if (max_keep_data < 1) delivery.fail("max_keep_data", "must be at least 1");
    delivery.finish();
    manager.add(item.key(), std::make_shared<Delivery>(source, max_keep_data));
  }
  return manager;
}

}  // namespace razor
