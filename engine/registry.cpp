#include "engine/registry.h"

namespace razor {

RegistryIndex& RegistryIndex::instance() {
  static RegistryIndex index;
  return index;
}

void RegistryIndex::add(const std::string& name,
                        std::function<std::vector<std::string>()> names) {
  registries_[name] = std::move(names);
}

void RegistryIndex::remove(const std::string& name) { registries_.erase(name); }

std::vector<std::string> RegistryIndex::registry_names() const {
  std::vector<std::string> out;
  for (const auto& item : registries_) out.push_back(item.first);
  return out;
}

std::vector<std::string> RegistryIndex::names_of(const std::string& name) const {
  auto it = registries_.find(name);
  if (it == registries_.end()) {
    throw config_error("unknown registry \"", name, "\"", did_you_mean(name, registry_names()),
                       " (registries: ", join(registry_names(), ", "), ")");
  }
  return it->second();
}

}  // namespace razor
