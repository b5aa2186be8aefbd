#include "engine/checkpoint_names.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

#include <spdlog/spdlog.h>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace {

std::map<std::string, NameMapping>& mappings() {
  static std::map<std::string, NameMapping> registry;
  return registry;
}

}  // namespace

void register_name_mapping(const std::string& name, NameMapping mapping) {
  RAZOR_ASSERT(!name.empty() && name != "auto" && name != "none" && name != "razor");
  RAZOR_ASSERT(mappings().emplace(name, std::move(mapping)).second);
}

std::vector<std::string> name_mapping_names() {
  std::vector<std::string> out;
  for (const auto& item : mappings()) out.push_back(item.first);
  return out;
}

namespace {

// Python's re.sub spells group references \1 and \g<1>; std::regex_replace spells them $1, and
// reads a bare $ as the start of one.
std::string ecmascript_replacement(const std::string& python) {
  std::string out;
  for (size_t i = 0; i < python.size(); ++i) {
    const char c = python[i];
    if (c == '$') {
      out += "$$";
    } else if (c == '\\' && i + 1 < python.size() && std::isdigit(static_cast<unsigned char>(python[i + 1]))) {
      out += '$';
      out += python[++i];
    } else if (c == '\\' && python.compare(i, 3, "\\g<") == 0 && python.find('>', i) != std::string::npos) {
      const size_t end = python.find('>', i);
      out += "$" + python.substr(i + 3, end - i - 3);
      i = end;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

CheckpointNaming CheckpointNaming::from_config(const Config& config) {
  CheckpointNaming naming;
  const Json& tree = config.tree;
  if (auto it = tree.find("checkpoint_key"); it != tree.end()) {
    RAZOR_CHECK(it->is_string(), config.origin_of("checkpoint_key"), ": checkpoint_key must be a string");
    naming.checkpoint_key = it->get<std::string>();
  }
  if (auto it = tree.find("revise_keys"); it != tree.end()) {
    const std::string where = config.origin_of("revise_keys") + ": revise_keys";
    RAZOR_CHECK(it->is_array(), where, " must be a list of [regex, replacement] pairs");
    naming.revise_keys.clear();
    for (const auto& pair : *it) {
      RAZOR_CHECK(pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string(), where,
                  ": each entry is a [regex, replacement] pair of strings, got ", pair.dump());
      const std::string pattern = pair[0].get<std::string>();
      try {
        std::regex check(pattern);
      } catch (const std::regex_error& e) {
        throw config_error(where, ": \"", pattern, "\" is not a valid regular expression (", e.what(), ")");
      }
      naming.revise_keys.emplace_back(pattern, ecmascript_replacement(pair[1].get<std::string>()));
    }
  }
  if (auto it = tree.find("checkpoint_mapping"); it != tree.end()) {
    std::vector<std::string> allowed = name_mapping_names();
    allowed.insert(allowed.begin(), {"auto", "none"});
    RAZOR_CHECK(it->is_string() && std::count(allowed.begin(), allowed.end(), it->get<std::string>()),
                config.origin_of("checkpoint_mapping"), ": checkpoint_mapping must be one of ", join(allowed, ", "),
                ", got ", it->dump());
    naming.mapping = it->get<std::string>();
  }
  return naming;
}

namespace {

// How many of the model's tensors `names` (razor -> file) finds in the file with their shape.
size_t fitting(const std::map<std::string, torch::Tensor>& model, const std::map<std::string, torch::Tensor>& file,
               const std::map<std::string, std::string>* names) {
  size_t count = 0;
  for (const auto& [name, tensor] : model) {
    std::string in_file = name;
    if (names) {
      auto it = names->find(name);
      if (it == names->end()) continue;
      in_file = it->second;
    }
    auto found = file.find(in_file);
    if (found != file.end() && found->second.sizes().equals(tensor.sizes())) ++count;
  }
  return count;
}

}  // namespace

StateDict rename_for_model(StateDict tensors, const torch::nn::Module& model, const CheckpointNaming& naming,
                           const std::string& origin) {
  for (const auto& [pattern, replacement] : naming.revise_keys) {
    const std::regex re(pattern);
    for (auto& item : tensors) item.first = std::regex_replace(item.first, re, replacement);
  }
  if (naming.mapping == "none") return tensors;

  const StateDict own = state_dict(model);
  const std::map<std::string, torch::Tensor> targets(own.begin(), own.end());
  const std::map<std::string, torch::Tensor> file(tensors.begin(), tensors.end());
  std::string chosen;
  std::map<std::string, std::string> names;
  if (naming.mapping == "auto") {
    size_t best = fitting(targets, file, nullptr);
    if (best == targets.size()) return tensors;
    for (const auto& [name, mapping] : mappings()) {
      auto candidate = mapping(model);
      if (candidate.empty()) continue;
      const size_t fit = fitting(targets, file, &candidate);
      if (fit > best) {
        best = fit;
        chosen = name;
        names = std::move(candidate);
      }
    }
    if (chosen.empty()) return tensors;
  } else {
    auto it = mappings().find(naming.mapping);
    RAZOR_ASSERT(it != mappings().end());  // checked by from_config
    names = it->second(model);
    RAZOR_CHECK(!names.empty(), origin, ": checkpoint_mapping = \"", naming.mapping,
                "\" does not know this model's architecture");
    chosen = naming.mapping;
  }
  std::map<std::string, std::string> to_razor;
  for (const auto& [ours, theirs] : names) to_razor[theirs] = ours;
  for (auto& item : tensors) {
    auto it = to_razor.find(item.first);
    if (it != to_razor.end()) item.first = it->second;
  }
  spdlog::info("{}: {} names, mapped onto the model's{}", origin, chosen,
               naming.mapping == "auto" ? " (checkpoint_mapping = \"auto\")" : "");
  return tensors;
}

StateDict rename_for_tool(const StateDict& tensors, const torch::nn::Module& model, const std::string& mapping) {
  if (mapping == "razor") return tensors;
  auto it = mappings().find(mapping);
  std::vector<std::string> allowed = name_mapping_names();
  allowed.insert(allowed.begin(), "razor");
  RAZOR_CHECK(it != mappings().end(), "--names must be one of ", join(allowed, ", "), ", got \"", mapping, "\"");
  const auto names = it->second(model);
  RAZOR_CHECK(!names.empty(), "--names ", mapping, ": ", mapping, " has no model of this architecture");
  StateDict out;
  std::vector<std::string> unnamed;
  for (const auto& [name, tensor] : tensors) {
    auto found = names.find(name);
    if (found == names.end()) {
      unnamed.push_back(name);
      continue;
    }
    out.emplace_back(found->second, tensor);
  }
  RAZOR_CHECK(unnamed.empty(), "--names ", mapping, ": ", unnamed.size(), " tensor(s) have no ", mapping,
              " name (first: ", unnamed.empty() ? "" : unnamed.front(), ")");
  return out;
}

}  // namespace razor
