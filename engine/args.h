#pragma once
// Typed access to one config table, as a component's factory reads it. Every key read is
// remembered, so that `finish()` can report a key nobody asked for (a typo) together with
// the nearest valid key. Errors name the config file and the dotted key path.
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/error.h"

namespace razor {

class Args {
 public:
  /// `table` must outlive this object. `path` is the table's dotted key path ("model.backbone").
  /// `config` (may be null) tells which file set which key, for error messages.
  Args(const Json& table, std::string path, std::shared_ptr<const Config> config = nullptr);

  /// An Args over a table that is not part of a loaded config (tests, code-built tables).
  static Args of(const Json& table, std::string path = "");

  const std::string& path() const { return path_; }
  const Json& table() const { return *table_; }
  bool has(const std::string& key) const;

  /// The value of `key` converted to T, or `fallback` if absent. A value of the wrong type
  /// is an error naming the key, the expected type and the value.
  template <class T>
  T get(const std::string& key, const T& fallback) {
    auto value = optional<T>(key);
    return value ? *value : fallback;
  }
  std::string get(const std::string& key, const char* fallback) {
    return get<std::string>(key, std::string(fallback));
  }

  /// The value of `key`; missing is an error ("missing required key").
  template <class T>
  T require(const std::string& key) {
    auto value = optional<T>(key);
    if (!value) fail_missing(key);
    return *value;
  }

  template <class T>
  std::optional<T> optional(const std::string& key) {
    const Json* value = find(key);
    if (!value || value->is_null()) return std::nullopt;
    return convert<T>(key, *value);
  }

  /// The raw JSON at `key` (marks it used); missing is an error.
  const Json& raw(const std::string& key);

  /// An Args over the sub-table at `key`; missing or not a table is an error.
  Args sub(const std::string& key);

  /// Args over each table of the array of tables at `key` (absent -> empty).
  std::vector<Args> sub_list(const std::string& key);

  /// Marks `key` as known without reading it (e.g. keys consumed by someone else).
  void accept(const std::string& key) { used_.insert(key); }

  /// Fails if the table has a key that no accessor asked for, naming the nearest used key.
  void finish() const;

  /// Throws a config error "FILE: PATH.KEY: message".
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  /// "missing required key", naming a present key that looks like a typo of it.
  [[noreturn]] void fail_missing(const std::string& key) const;

  /// "FILE: PATH.KEY" for messages built elsewhere.
  std::string where(const std::string& key = "") const;

  std::shared_ptr<const Config> config() const { return config_; }

 private:
  const Json* find(const std::string& key);
  template <class T>
  T convert(const std::string& key, const Json& value) const;

  const Json* table_;
  std::string path_;
  std::shared_ptr<const Config> config_;
  std::shared_ptr<Json> owned_;  // keeps a copied table alive for Args::of
  std::set<std::string> used_;
};

namespace detail {
std::string json_type_name(const Json& value);
}

template <class T>
T Args::convert(const std::string& key, const Json& value) const {
  if constexpr (std::is_same_v<T, bool>) {
    if (!value.is_boolean()) fail(key, "expected true or false, got " + value.dump());
    return value.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!value.is_number_integer()) fail(key, "expected an integer, got " + value.dump());
    return value.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number()) fail(key, "expected a number, got " + value.dump());
    return value.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!value.is_string()) fail(key, "expected a string, got " + value.dump());
    return value.get<std::string>();
  } else if constexpr (std::is_same_v<T, Json>) {
    return value;
  } else {
    // std::vector<...> of the above.
    if (!value.is_array()) fail(key, "expected an array, got " + value.dump());
    T out;
    for (size_t i = 0; i < value.size(); ++i) {
      out.push_back(convert<typename T::value_type>(key + "[" + std::to_string(i) + "]",
                                                    value[i]));
    }
    return out;
  }
}

}  // namespace razor
