#pragma once
// String-keyed typed registries: `type = "ResNet"` in a config table selects a factory that
// builds the object from the rest of the table. Registries are function-local statics,
// filled by explicit register_*() calls (see register_all in apps/), so nothing can be
// dropped by the linker.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/args.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

class Runner;

/// What a factory gets besides its config table: runtime objects owned by others.
struct BuildContext {
  /// The runner being built, when there is one (hooks and loops need it).
  Runner* runner = nullptr;
  /// The run's seed: data shuffling and random transforms derive from it.
  uint64_t seed = 0;
  /// This process's place among the processes of a run (data sharding).
  int rank = 0;
  int world_size = 1;
  /// Data shards of equal length (training) or each sample exactly once (evaluation).
  bool even_shards = true;
};

/// Every registry, by name, for `razor list`.
class RegistryIndex {
 public:
  static RegistryIndex& instance();
  void add(const std::string& name, std::function<std::vector<std::string>()> names);
  void remove(const std::string& name);
  std::vector<std::string> registry_names() const;
  /// Registered type names of registry `name`; an unknown registry is a config error.
  std::vector<std::string> names_of(const std::string& name) const;

 private:
  std::map<std::string, std::function<std::vector<std::string>()>> registries_;
};

template <class T>
class Registry {
 public:
  using Factory = std::function<std::shared_ptr<T>(Args&, const BuildContext&)>;

  explicit Registry(std::string name) : name_(std::move(name)) {
    RegistryIndex::instance().add(name_, [this] { return names(); });
  }
  ~Registry() { RegistryIndex::instance().remove(name_); }
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const std::string& name() const { return name_; }

  /// Adds a factory; a duplicate name is a bug in our registration code.
  void add(const std::string& type, Factory factory) {
    RAZOR_ASSERT(!factories_.count(type));
    factories_[type] = std::move(factory);
  }

  bool contains(const std::string& type) const { return factories_.count(type) > 0; }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& item : factories_) out.push_back(item.first);
    return out;
  }

  /// Builds from `args`: reads `type` (or uses `default_type` when given and absent), calls
  /// the factory, then checks that every key of the table was understood. Errors from the
  /// factory gain "building PATH (TYPE)" context.
  std::shared_ptr<T> build(Args& args, const BuildContext& context = {},
                           const std::string& default_type = "") const {
    const std::string type = default_type.empty() ? args.require<std::string>("type")
                                                  : args.get<std::string>("type", default_type);
    auto it = factories_.find(type);
    if (it == factories_.end()) {
      args.fail("type", "unknown " + name_ + " type \"" + type + "\"" +
                            did_you_mean(type, names()) + " (registered: " +
                            join(names(), ", ") + ")");
    }
    std::shared_ptr<T> object;
    try {
      object = it->second(args, context);
    } catch (const Error& e) {
      // Errors that already name a key inside this table, or come wrapped by an inner build,
      // say where they are; only bare ones get "building PATH (TYPE)" in front.
      const std::string message = e.what();
      if (message.rfind("building ", 0) == 0 ||
          (!args.path().empty() && message.find(args.path() + ".") != std::string::npos)) {
        throw;
      }
      throw e.with_context("building " + args.where() + " (" + type + ")");
    }
    args.finish();
    return object;
  }

 private:
  std::string name_;
  std::map<std::string, Factory> factories_;
};

}  // namespace razor
