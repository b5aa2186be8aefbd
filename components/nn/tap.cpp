#include "components/nn/tap.h"

#include <map>
#include <mutex>

namespace razor {

namespace {

struct TapTable {
  std::mutex mutex;
  std::map<std::string, std::map<uint64_t, TapListener::Callback>> listeners;
  uint64_t next_id = 1;
};

TapTable& tap_table() {
  static TapTable instance;
  return instance;
}

}  // namespace

void tap(const std::string& name, const std::vector<torch::Tensor>& values) {
  auto& t = tap_table();
  std::vector<TapListener::Callback> callbacks;
  {
    std::lock_guard<std::mutex> lock(t.mutex);
    if (t.listeners.empty()) return;
    auto it = t.listeners.find(name);
    if (it == t.listeners.end()) return;
    for (const auto& item : it->second) callbacks.push_back(item.second);
  }
  for (const auto& callback : callbacks) callback(values);
}

TapListener::TapListener(std::string name, Callback callback) : name_(std::move(name)) {
  auto& t = tap_table();
  std::lock_guard<std::mutex> lock(t.mutex);
  id_ = t.next_id++;
  t.listeners[name_][id_] = std::move(callback);
}

TapListener::~TapListener() { remove(); }

void TapListener::remove() {
  if (!id_) return;
  auto& t = tap_table();
  std::lock_guard<std::mutex> lock(t.mutex);
  auto it = t.listeners.find(name_);
  if (it != t.listeners.end()) {
    it->second.erase(id_);
    if (it->second.empty()) t.listeners.erase(it);
  }
  id_ = 0;
}

size_t num_tap_listeners() {
  auto& t = tap_table();
  std::lock_guard<std::mutex> lock(t.mutex);
  size_t n = 0;
  for (const auto& item : t.listeners) n += item.second.size();
  return n;
}

}  // namespace razor
