#include "algorithms/distill/teacher_loading.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "components/nn/module.h"
#include "engine/checkpoint.h"
#include "engine/checkpoint_names.h"
#include "engine/config.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace fs = std::filesystem;

std::shared_ptr<Model> build_model_from_config_file(Args& args, const std::string& key, const BuildContext& context) {
  std::string file = args.require<std::string>(key);
  if (fs::path(file).is_relative() && !fs::exists(file) && args.config()) {
    const fs::path from = fs::path(args.config()->origin_of(join_key(args.path(), key))).parent_path() / file;
    if (fs::exists(from)) file = from.string();
  }
  RAZOR_CHECK(fs::exists(file), args.where(key), ": config file not found: ", file);
  auto config = std::make_shared<Config>(load_config(file));
  RAZOR_CHECK(config->tree.contains("model"), args.where(key), ": ", file, " has no [model] table");
  Args model_args(config->tree.at("model"), "model", config);
  auto model = build_model_as<Model>(model_args, context, "a teacher model");
  nn::assign_paths(*model);
  return model;
}

void load_teacher_checkpoint(Model& teacher, Args& args, const std::string& key) {
  // Asked for even when absent, so that a misspelt key is answered with this one.
  const auto path = args.optional<std::string>(key);
  if (!path) {
    spdlog::warn("{}: no {}: the teacher keeps its random initial weights", args.where(), key);
    return;
  }
  RAZOR_CHECK(fs::exists(*path), args.where(key), ": checkpoint not found: ", *path);
  const CheckpointNaming naming = args.config() ? CheckpointNaming::from_config(*args.config()) : CheckpointNaming{};
  CheckpointReader reader(*path, naming.checkpoint_key);
  const StateDict weights = rename_for_model(reader.contents().model, teacher, naming, *path);
  try {
    load_state_dict(teacher, weights, /*strict=*/true, *path);
  } catch (const Error& e) {
    throw e.with_context(args.where(key) + ": the teacher checkpoint does not fit the teacher");
  }
  spdlog::info("Loaded the teacher {}from {}", args.path().empty() ? "" : args.path() + " ", *path);
}

}  // namespace razor
