#include "engine/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "engine/error.h"
#include "engine/text_file.h"

namespace razor {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBaseKey = "_base_";
constexpr const char* kDeleteKey = "_delete_";
constexpr const char* kOverrideOrigin = "--cfg-options";

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// ---------------------------------------------------------------------------------------
// TOML -> JSON

Json to_json(const toml::node& node);

Json table_to_json(const toml::table& table) {
  // toml::table is a sorted map; sorting keys by where they appear in the text restores
  // the order the user wrote them in.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, value] : table) entries.emplace_back(&key, &value);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& pa = a.first->source().begin;
    const auto& pb = b.first->source().begin;
    return std::make_pair(pa.line, pa.column) < std::make_pair(pb.line, pb.column);
  });
  Json out = Json::object();
  for (const auto& [key, value] : entries) out[std::string(key->str())] = to_json(*value);
  return out;
}

template <class T>
std::string streamed(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

Json to_json(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return table_to_json(*node.as_table());
    case toml::node_type::array: {
      Json out = Json::array();
      for (const toml::node& item : *node.as_array()) out.push_back(to_json(item));
      return out;
    }
    case toml::node_type::string: return node.as_string()->get();
    case toml::node_type::integer: return node.as_integer()->get();
    case toml::node_type::floating_point: return node.as_floating_point()->get();
    case toml::node_type::boolean: return node.as_boolean()->get();
    // JSON has no dates; keep the TOML spelling so printing gives back a readable value.
    case toml::node_type::date: return streamed(node.as_date()->get());
    case toml::node_type::time: return streamed(node.as_time()->get());
    case toml::node_type::date_time: return streamed(node.as_date_time()->get());
    default: RAZOR_ASSERT(false);
  }
  return nullptr;
}

Json parse_toml_text(const std::string& text, const std::string& name) {
  try {
    return table_to_json(toml::parse(text, std::string_view(name)));
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    throw config_error(name, ":", at.line, ":", at.column, ": ", e.description());
  }
}

// ---------------------------------------------------------------------------------------
// Merging

// Removes `_delete_` markers left inside values that replace wholesale (arrays, new tables).
void strip_markers(Json& value) {
  if (value.is_object()) {
    value.erase(kDeleteKey);
    for (auto& [key, child] : value.items()) strip_markers(child);
  } else if (value.is_array()) {
    for (auto& child : value) strip_markers(child);
  }
}

bool wants_replace(const Json& table, const std::string& path, const std::string& origin) {
  auto it = table.find(kDeleteKey);
  if (it == table.end()) return false;
  RAZOR_CHECK(it->is_boolean(), origin, ": ", join_path(path, kDeleteKey),
              " must be true or false, got ", it->dump());
  return it->get<bool>();
}

void erase_origins_under(std::map<std::string, std::string>& origins, const std::string& path) {
  if (path.empty()) {
    origins.clear();
    return;
  }
  origins.erase(path);
  const std::string prefix = path + ".";
  for (auto it = origins.lower_bound(prefix); it != origins.end() && it->first.rfind(prefix, 0) == 0;)
    it = origins.erase(it);
}

struct Merger {
  std::map<std::string, std::string>& origins;
  const std::string& origin;

  // Merges the entries of `src` into the table `dst` (at `path`): tables key by key unless
  // `src` asks to replace, everything else replaces.
  void merge_table(Json& dst, const Json& src, const std::string& path) {
    if (wants_replace(src, path, origin)) {
      dst = Json::object();
      erase_origins_under(origins, path);
    }
    if (!path.empty()) origins[path] = origin;
    for (const auto& [key, value] : src.items()) {
      if (key == kDeleteKey) continue;
      set(dst, key, value, join_path(path, key));
    }
  }

  void set(Json& table, const std::string& key, const Json& value, const std::string& path) {
    auto it = table.find(key);
    if (value.is_object()) {
      if (it == table.end() || !it->is_object()) {
        erase_origins_under(origins, path);
        table[key] = Json::object();
      }
      merge_table(table[key], value, path);
      return;
    }
    erase_origins_under(origins, path);
    Json copy = value;
    strip_markers(copy);
    table[key] = std::move(copy);
    origins[path] = origin;
  }
};

// ---------------------------------------------------------------------------------------
// Loading files

// A pipe or device (`<(cat a.toml)`, /dev/stdin) names no directory of its own, and
// canonicalising it fails (its link target "pipe:[N]" is no path): it keeps its spelling.
bool is_stream(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  return !ec && fs::exists(status) && !fs::is_regular_file(status) && !fs::is_directory(status);
}

fs::path normalise(const fs::path& path) {
  if (is_stream(path)) return fs::absolute(path).lexically_normal();
  return fs::weakly_canonical(fs::absolute(path)).lexically_normal();
}

// Where the `_base_` paths of `file` are taken from: its directory, or the working
// directory for a stream.
fs::path base_dir(const fs::path& file) {
  return is_stream(file) ? fs::current_path() : file.parent_path();
}

std::vector<std::string> base_list(const Json& value, const fs::path& file) {
  std::vector<std::string> bases;
  if (value.is_string()) {
    bases.push_back(value.get<std::string>());
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      RAZOR_CHECK(value[i].is_string(), file.string(), ": ", kBaseKey, "[", i,
                  "] must be a string (a path), got ", value[i].dump());
      bases.push_back(value[i].get<std::string>());
    }
  } else {
    throw config_error(file.string(), ": ", kBaseKey,
                       " must be a path or an array of paths, got ", value.dump());
  }
  return bases;
}

class Loader {
 public:
  explicit Loader(const fs::path& top) : top_dir_(base_dir(top)) {}

  Config load(const fs::path& file, const fs::path* included_by) {
    if (std::find(chain_.begin(), chain_.end(), file) != chain_.end()) {
      std::string message = "config _base_ cycle: ";
      for (const auto& link : chain_) message += shown(link) + " -> ";
      throw config_error(message, shown(file), " (paths relative to ", top_dir_.string(), ")");
    }
    if (!fs::is_regular_file(file) && !is_stream(file)) {
      std::string message = "config file not found: " + file.string();
      if (included_by) {
        message += " (listed in _base_ of " + included_by->string();
        if (is_stream(*included_by))
          message += ", a stream, whose _base_ paths are relative to the working directory";
        message += ")";
      }
      throw config_error(message);
    }
    Json own = parse_toml_text(read_text_file(file.string(), "config file"), file.string());

    Config result;
    result.file = file.string();
    chain_.push_back(file);
    if (auto it = own.find(kBaseKey); it != own.end()) {
      for (const auto& base : base_list(*it, file)) {
        Config loaded = load(normalise(base_dir(file) / base), &file);
        // Merge with a placeholder origin, then copy the base's own record over it: the
        // base's origins cover every key of its tree.
        const std::string placeholder;
        Merger{result.origins, placeholder}.merge_table(result.tree, loaded.tree, "");
        for (auto& [path, origin] : loaded.origins) result.origins[path] = std::move(origin);
      }
      own.erase(kBaseKey);
    }
    Merger{result.origins, result.file}.merge_table(result.tree, own, "");
    chain_.pop_back();
    return result;
  }

 private:
  // Cycle chains read best relative to the file the user named.
  std::string shown(const fs::path& file) const {
    fs::path relative = file.lexically_relative(top_dir_);
    return relative.empty() ? file.string() : relative.string();
  }

  fs::path top_dir_;
  std::vector<fs::path> chain_;
};

// ---------------------------------------------------------------------------------------
// JSON -> TOML

bool is_bare_key(const std::string& key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04X", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string format_key(const std::string& key) { return is_bare_key(key) ? key : quoted(key); }

std::string format_path(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& key : keys) out += (out.empty() ? "" : ".") + format_key(key);
  return out;
}

// Shortest text that reads back to the same double, always spelled as a TOML float.
std::string format_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  char buf[64];
  auto end = std::to_chars(buf, buf + sizeof(buf), value).ptr;
  std::string text(buf, end);
  auto e = text.find('e');
  if (e == std::string::npos) {
    if (text.find('.') == std::string::npos) text += ".0";
    return text;
  }
  // "5e-04" -> "5e-4", "1e+20" -> "1e20"
  std::string mantissa = text.substr(0, e), exponent = text.substr(e + 1);
  bool negative = exponent[0] == '-';
  exponent = exponent.substr(exponent[0] == '-' || exponent[0] == '+' ? 1 : 0);
  exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return mantissa + "e" + (negative ? "-" : "") + exponent;
}

std::string format_inline(const Json& value, const std::string& path) {
  switch (value.type()) {
    case Json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer: return std::to_string(value.get<int64_t>());
    case Json::value_t::number_unsigned:
      RAZOR_CHECK(value.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), path,
                  ": integer ", value.dump(), " does not fit in TOML");
      return std::to_string(value.get<uint64_t>());
    case Json::value_t::number_float: return format_float(value.get<double>());
    case Json::value_t::string: return quoted(value.get<std::string>());
    case Json::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < value.size(); ++i)
        out += (i ? ", " : "") + format_inline(value[i], path + "[" + std::to_string(i) + "]");
      return out + "]";
    }
    case Json::value_t::object: {
      if (value.empty()) return "{}";
      std::string out = "{ ";
      bool first = true;
      for (const auto& [key, child] : value.items()) {
        out += (first ? "" : ", ") + format_key(key) + " = " + format_inline(child, join_path(path, key));
        first = false;
      }
      return out + " }";
    }
    default: throw config_error(path, ": ", value.type_name(), " cannot be written as TOML");
  }
}

bool is_array_of_tables(const Json& value) {
  return value.is_array() && !value.empty() &&
         std::all_of(value.begin(), value.end(), [](const Json& v) { return v.is_object(); });
}

bool is_section(const Json& value) { return value.is_object() || is_array_of_tables(value); }

enum class Header { None, Table, ArrayElement };

void write_table(std::string& out, const Json& table, const std::vector<std::string>& keys,
                 Header header) {
  const std::string path = format_path(keys);
  bool has_inline = false, has_sections = false;
  for (const auto& [key, value] : table.items()) (is_section(value) ? has_sections : has_inline) = true;

  // A table holding only sub-tables is implied by their headers; empty ones still get one.
  bool show = header == Header::ArrayElement || (header == Header::Table && (has_inline || !has_sections));
  if (show) {
    if (!out.empty()) out += "\n";
    out += header == Header::ArrayElement ? "[[" + path + "]]\n" : "[" + path + "]\n";
  }
  for (const auto& [key, value] : table.items()) {
    if (!is_section(value)) out += format_key(key) + " = " + format_inline(value, join_path(path, key)) + "\n";
  }
  for (const auto& [key, value] : table.items()) {
    if (!is_section(value)) continue;
    std::vector<std::string> child = keys;
    child.push_back(key);
    if (value.is_object()) {
      write_table(out, value, child, Header::Table);
    } else {
      for (const auto& element : value) write_table(out, element, child, Header::ArrayElement);
    }
  }
}

}  // namespace

std::string Config::origin_of(const std::string& key_path) const {
  std::string path = key_path;
  while (!path.empty()) {
    if (auto it = origins.find(path); it != origins.end()) return it->second;
    auto dot = path.rfind('.');
    if (dot == std::string::npos) break;
    path.erase(dot);
  }
  return file;
}

Config load_config(const std::string& path) {
  fs::path file = normalise(path);
  return Loader(file).load(file, nullptr);
}

Config parse_config_text(const std::string& text, const std::string& name) {
  Config config;
  config.file = name;
  Json tree = parse_toml_text(text, name);
  Merger{config.origins, name}.merge_table(config.tree, tree, "");
  return config;
}

Json parse_toml_value(const std::string& text) {
  // Text that opens an array, a table or a quoted string was meant as one: keeping "[1," as
  // a string would only fail later, far from the typo.
  const size_t first = text.find_first_not_of(" \t");
  const char opener = first == std::string::npos ? '\0' : text[first];
  const bool structured = opener == '[' || opener == '{' || opener == '"' || opener == '\'';
  const char* what = opener == '[' ? "an array" : opener == '{' ? "an inline table" : "a string";
  try {
    toml::table table = toml::parse("v = " + text);
    // Text such as "1\nw = 2" parses but is not one value.
    if (table.size() == 1 && table.contains("v")) return to_json(*table.get("v"));
    RAZOR_CHECK(!structured, "\"", text, "\" is not one TOML value");
  } catch (const toml::parse_error& e) {
    RAZOR_CHECK(!structured, "\"", text, "\" does not parse as ", what, ": ", e.description());
  }
  return text;
}

void apply_overrides(Config& config, const std::vector<std::string>& overrides) {
  for (const auto& item : overrides) {
    auto eq = item.find('=');
    RAZOR_CHECK(eq != std::string::npos, kOverrideOrigin, ": expected KEY=VALUE, got \"", item, "\"");
    std::string key_path = item.substr(0, eq);
    key_path.erase(key_path.find_last_not_of(" \t") + 1);
    key_path.erase(0, key_path.find_first_not_of(" \t"));
    std::vector<std::string> keys;
    std::stringstream split(key_path);
    for (std::string key; std::getline(split, key, '.');) keys.push_back(key);
    RAZOR_CHECK(!keys.empty() && key_path.back() != '.' &&
                    std::none_of(keys.begin(), keys.end(), [](const auto& k) { return k.empty(); }),
                kOverrideOrigin, ": bad key \"", key_path, "\" in \"", item, "\"");

    // Read before any table is created, so that a value in error leaves the config as it was.
    Json value;
    try {
      value = parse_toml_value(item.substr(eq + 1));
    } catch (const Error& e) {
      throw e.with_context(std::string(kOverrideOrigin) + " " + key_path);
    }

    Json* table = &config.tree;
    std::string path;
    for (size_t i = 0; i + 1 < keys.size(); ++i) {
      path = join_path(path, keys[i]);
      auto it = table->find(keys[i]);
      if (it == table->end()) {
        (*table)[keys[i]] = Json::object();
        config.origins[path] = kOverrideOrigin;
      } else {
        RAZOR_CHECK(it->is_object(), kOverrideOrigin, ": cannot set ", key_path, ": ", path,
                    " is a ", it->type_name(), ", not a table (set in ", config.origin_of(path), ")");
      }
      table = &(*table)[keys[i]];
    }
    const std::string origin = kOverrideOrigin;
    Merger{config.origins, origin}.set(*table, keys.back(), std::move(value), key_path);
  }
}

std::string to_toml(const Json& tree) {
  RAZOR_CHECK(tree.is_object(), "to_toml: a config must be a table, got ", tree.type_name());
  std::string out;
  write_table(out, tree, {}, Header::None);
  return out;
}

}  // namespace razor
