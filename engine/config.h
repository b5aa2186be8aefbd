#pragma once
// TOML configs with `_base_` inheritance, read into an ordered JSON tree so that merging,
// printing and checkpoint snapshots share one code path.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace razor {

using Json = nlohmann::ordered_json;

/// A fully resolved config and where each of its keys came from.
struct Config {
  Json tree = Json::object();
  /// The file the user named (absolute path as given, normalised).
  std::string file;
  /// Dotted key path -> the file (or "--cfg-options") that set it last.
  std::map<std::string, std::string> origins;

  /// The file that set `key_path`, or the nearest enclosing table's file, or `file`.
  std::string origin_of(const std::string& key_path) const;
};

/// Loads `path`: merges the files listed in `_base_` (paths relative to the including file)
/// in order, then the file itself. Tables merge key by key; a table with `_delete_ = true`
/// replaces what it merges onto. Arrays and scalars replace. `_base_` and `_delete_` do not
/// appear in the result. Errors (Kind::Config) name the file, and for TOML syntax errors
/// "file:line:column"; a cycle lists the chain of files.
Config load_config(const std::string& path);

/// Parses TOML text as a config with no `_base_` support (for tests and checkpoints).
Config parse_config_text(const std::string& text, const std::string& name = "<text>");

/// Applies `a.b.c=VALUE` overrides in order. VALUE is read as a TOML value (`3`, `0.1`,
/// `true`, `"s"`, `[1, 2]`, `{ a = 1 }`); anything else that does not parse is a bare
/// string, but a VALUE opening an array, a table or a quoted string that does not parse is
/// a config error naming the option.
/// Intermediate tables are created; indexing into a non-table is an error naming the key.
/// A table VALUE merges into an existing table as a config file would (`_delete_ = true`
/// replaces it). Overridden keys have "--cfg-options" as their origin.
void apply_overrides(Config& config, const std::vector<std::string>& overrides);

/// Reads one TOML value (the right-hand side of `key = VALUE`) as JSON; bare words that
/// do not parse as TOML become strings. Text opening with `[`, `{` or a quote must parse
/// (a config error otherwise).
Json parse_toml_value(const std::string& text);

/// Prints a config tree as TOML that `parse_config_text` reads back to the same tree
/// (exact floats; within each table, plain values come before sub-tables, as TOML requires).
std::string to_toml(const Json& tree);

}  // namespace razor
