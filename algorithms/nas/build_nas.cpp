#include "algorithms/nas/build_nas.h"

#include "components/mutators/fix_subnet.h"

#include <filesystem>

#include "engine/strings.h"

namespace razor {

std::shared_ptr<NasMutator> build_nas_mutator(Args& args, const BuildContext& context) {
  Args table = args.sub("mutator");
  const std::string type = table.require<std::string>("type");
  if (type != "NasMutator") {
    table.fail("type", "unknown mutator \"" + type + "\" (NAS algorithms take \"NasMutator\")");
  }
  NasMutatorOptions options;
  options.seed = context.seed;
  if (table.has("custom_groups")) {
    const Json& groups = table.raw("custom_groups");
    bool ok = groups.is_array();
    for (const auto& g : groups) {
      ok = ok && g.is_array() && !g.empty();
      for (const auto& name : g) ok = ok && name.is_string();
    }
    if (!ok) {
      table.fail("custom_groups",
                 "must be a list of lists of mutable names, got " + groups.dump());
    }
    for (const auto& g : groups) options.custom_groups.push_back(g.get<std::vector<std::string>>());
  }
  table.finish();
  return std::make_shared<NasMutator>(options);
}

std::shared_ptr<Model> build_nas_supernet(Args& args, const BuildContext& context) {
  Args architecture_args = args.sub("architecture");
  auto architecture = build_model_as<Model>(architecture_args, context, "an architecture");
  if (auto path = args.optional<std::string>("fix_subnet")) {
    // A relative path is looked up from the working directory, then from the directory of
    // the config file that set it (so a shipped config can name the subnet beside it).
    const std::string origin = args.config() ? args.config()->origin_of(join_key(args.path(), "fix_subnet")) : "";
    if (!std::filesystem::exists(*path) && std::filesystem::path(*path).is_relative() && !origin.empty() &&
        std::filesystem::exists(std::filesystem::path(origin).parent_path() / *path)) {
      *path = (std::filesystem::path(origin).parent_path() / *path).string();
    }
    try {
      load_fix_subnet(*architecture, read_subnet_file(*path), *path);
    } catch (const Error& e) {
      throw e.with_context(args.where("fix_subnet"));
    }
  }
  return architecture;
}

}  // namespace razor
