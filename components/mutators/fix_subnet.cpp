#include "components/mutators/fix_subnet.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "components/mutables/mutable_op.h"
#include "components/mutators/nas_mutator.h"
#include "components/nn/sequential.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/text_file.h"

namespace razor {

namespace {

Json scalar_to_json(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted: a string even if it looks like a number
  if (text == "true" || text == "True") return true;
  if (text == "false" || text == "False") return false;
  if (text == "null" || text == "~" || text.empty()) return nullptr;
  try {
    size_t used = 0;
    const long long i = std::stoll(text, &used);
    if (used == text.size()) return static_cast<int64_t>(i);
  } catch (const std::exception&) {
  }
  try {
    size_t used = 0;
    const double d = std::stod(text, &used);
    if (used == text.size()) return d;
  } catch (const std::exception&) {
  }
  return text;
}

Json node_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& item : node) out[item.first.as<std::string>()] = node_to_json(item.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) out.push_back(node_to_json(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    default:
      return nullptr;
  }
}

void emit(YAML::Emitter& out, const Json& value) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (const auto& item : value.items()) {
      out << YAML::Key << item.key() << YAML::Value;
      emit(out, item.value());
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& item : value) emit(out, item);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    out << value.get<std::string>();
  } else if (value.is_boolean()) {
    out << (value.get<bool>() ? "true" : "false");
  } else if (value.is_number_integer()) {
    out << value.get<int64_t>();
  } else if (value.is_number()) {
    out << value.get<double>();
  } else {
    out << YAML::Null;
  }
}

}  // namespace

Json yaml_text_to_json(const std::string& text, const std::string& origin) {
  try {
    return node_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw config_error(origin, ": not valid YAML: ", e.what());
  }
}

Json read_subnet_file(const std::string& path) {
  RAZOR_CHECK(std::ifstream(path).good(), "subnet file not found or unreadable: ", path);
  Json subnet = yaml_text_to_json(read_text_file(path, "subnet file"), path);
  RAZOR_CHECK(subnet.is_object(), path,
              ": a subnet file is a table {mutable name: {chosen: value}}");
  return subnet;
}

std::string subnet_to_yaml(const Json& subnet) {
  YAML::Emitter out;
  emit(out, subnet);
  return std::string(out.c_str()) + "\n";
}

void write_subnet_file(const std::string& path, const Json& subnet) {
  write_file_atomically(path, subnet_to_yaml(subnet));
}

Json export_fix_subnet(torch::nn::Module& model) {
  NasMutatorOptions options;
  options.create_arch_params = false;
  NasMutator reader(options);
  reader.prepare(model);
  return reader.current_subnet();
}

void load_fix_subnet(torch::nn::Module& model, const Json& subnet, const std::string& origin) {
  NasMutatorOptions options;
  options.create_arch_params = false;
  NasMutator reader(options);
  reader.prepare(model);
  const Json choices = reader.choices_from_subnet(subnet, origin);
  for (const auto& group : reader.search_groups()) {
    try {
      for (Mutable* m : group.members) m->fix_chosen(choices[group.key]);
    } catch (const Error& e) {
      throw e.with_context(origin);
    }
  }
}

size_t inline_fixed_ops(torch::nn::Module& model) {
  size_t replaced = 0;
  // Held while the chains change: a replaced op (and its modules, listed too) stays alive.
  const auto descendants = model.modules(/*include_self=*/false);
  std::vector<torch::nn::Module*> modules = {&model};
  for (const auto& module : descendants) modules.push_back(module.get());
  for (torch::nn::Module* module : modules) {
    auto* chain = dynamic_cast<nn::Sequential*>(module);
    if (!chain) continue;
    for (size_t i = 0; i < chain->size(); ++i) {
      auto* op = dynamic_cast<MutableOP*>(chain->ptr(i).get());
      if (!op || !op->is_fixed()) continue;
      // A fixed op holds its chosen candidate alone.
      chain->replace(i, std::dynamic_pointer_cast<nn::Module>(op->candidate(0).shared_from_this()));
      ++replaced;
    }
  }
  if (replaced > 0) nn::assign_paths(model);
  return replaced;
}

}  // namespace razor
