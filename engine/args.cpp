#include "engine/args.h"

#include "engine/strings.h"

namespace razor {

namespace detail {
std::string json_type_name(const Json& value) {
  if (value.is_object()) return "table";
  if (value.is_array()) return "array";
  if (value.is_string()) return "string";
  if (value.is_boolean()) return "boolean";
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "float";
  return "null";
}
}  // namespace detail

Args::Args(const Json& table, std::string path, std::shared_ptr<const Config> config)
    : table_(&table), path_(std::move(path)), config_(std::move(config)) {
  if (!table.is_object()) {
    throw config_error(where(), ": expected a table, got ", detail::json_type_name(table), " ",
                       table.dump());
  }
}

Args Args::of(const Json& table, std::string path) {
  auto owned = std::make_shared<Json>(table);
  Args args(*owned, std::move(path));
  args.owned_ = owned;
  return args;
}

bool Args::has(const std::string& key) const { return table_->contains(key); }

const Json* Args::find(const std::string& key) {
  used_.insert(key);
  auto it = table_->find(key);
  return it == table_->end() ? nullptr : &*it;
}

const Json& Args::raw(const std::string& key) {
  const Json* value = find(key);
  if (!value) fail_missing(key);
  return *value;
}

void Args::fail_missing(const std::string& key) const {
  std::vector<std::string> present;
  for (const auto& item : table_->items()) present.push_back(item.key());
  const std::string typo = nearest(key, present);
  if (!typo.empty() && typo != key) {
    fail(key, "missing required key (the table has \"" + typo + "\": a typo? did you mean \"" + key + "\"?)");
  }
  fail(key, "missing required key");
}

Args Args::sub(const std::string& key) {
  const Json& value = raw(key);
  if (!value.is_object()) fail(key, "expected a table, got " + value.dump());
  Args child(value, join_key(path_, key), config_);
  child.owned_ = owned_;
  return child;
}

std::vector<Args> Args::sub_list(const std::string& key) {
  std::vector<Args> out;
  const Json* value = find(key);
  if (!value || value->is_null()) return out;
  if (value->is_object()) {  // a single table where a list is expected: accept it
    Args child(*value, join_key(path_, key), config_);
    child.owned_ = owned_;
    out.push_back(std::move(child));
    return out;
  }
  if (!value->is_array()) fail(key, "expected an array of tables, got " + value->dump());
  for (size_t i = 0; i < value->size(); ++i) {
    if (!(*value)[i].is_object()) {
      fail(key + "[" + std::to_string(i) + "]", "expected a table, got " + (*value)[i].dump());
    }
    Args child((*value)[i], join_key(path_, key) + "[" + std::to_string(i) + "]", config_);
    child.owned_ = owned_;
    out.push_back(std::move(child));
  }
  return out;
}

void Args::finish() const {
  std::vector<std::string> known(used_.begin(), used_.end());
  for (const auto& item : table_->items()) {
    if (used_.count(item.key())) continue;
    std::string message = "unknown key";
    const std::string best = nearest(item.key(), known);
    if (!best.empty()) {
      message += "; did you mean \"" + best + "\"?";
    } else if (!known.empty()) {
      message += " (valid keys: " + join(known, ", ") + ")";
    }
    fail(item.key(), message);
  }
}

std::string Args::where(const std::string& key) const {
  const std::string full = join_key(path_, key);
  std::string file = config_ ? config_->origin_of(full) : std::string();
  if (file.empty()) return full.empty() ? "<config>" : full;
  return full.empty() ? file : file + ": " + full;
}

void Args::fail(const std::string& key, const std::string& message) const {
  throw config_error(where(key), ": ", message);
}

}  // namespace razor
