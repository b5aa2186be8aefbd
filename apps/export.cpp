#include "apps/export.h"

#include <filesystem>

#include <torch/torch.h>

#include "components/nn/module.h"
#include "engine/args.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

std::unique_ptr<Runner> runner_for_export(std::shared_ptr<Config> config, const std::string& checkpoint,
                                          const std::function<void(Model&)>& before_loading) {
  Json& model_table = config->tree["model"];
  if (model_table.is_object() && model_table.value("type", "") == "MMArchitectureQuant") {
    model_table["float_checkpoint"] = "";
  }
  RunnerOptions options;
  options.device = "cpu";
  options.write_files = false;
  auto runner = std::make_unique<Runner>(std::move(config), options);
  if (before_loading) before_loading(runner->model());
  runner->load_weights(checkpoint, /*require_all=*/true);
  runner->model().eval();
  return runner;
}

ExportReport export_architecture(const Config& config, const std::string& checkpoint, const std::string& out) {
  RAZOR_CHECK(config.tree.contains("model"), config.file, ": the config has no [model] table");
  const Json& model = config.tree.at("model");
  RAZOR_CHECK(model.contains("architecture"), config.file,
              ": model has no architecture to export (it is a plain model already: its checkpoints load as they are)");
  RAZOR_CHECK(!out.empty(), "give the exported file with --out");
  RAZOR_CHECK(fs::absolute(out) != fs::absolute(checkpoint), "--out must not overwrite the checkpoint ", checkpoint);

  CheckpointReader reader(checkpoint);
  const std::string prefix = "architecture.";
  StateDict weights;
  for (const auto& item : reader.contents().model) {
    if (item.first.rfind(prefix, 0) == 0) weights.emplace_back(item.first.substr(prefix.size()), item.second);
  }
  RAZOR_CHECK(!weights.empty(), checkpoint, " has no \"architecture.*\" weights: it was not written by an algorithm");

  // The exported file must load, strictly, into the model the architecture table builds.
  Json exported_tree = config.tree;
  exported_tree["model"] = model.at("architecture");
  auto exported_config = std::make_shared<Config>(config);
  exported_config->tree = exported_tree;
  Args architecture_args(exported_config->tree.at("model"), "model", exported_config);
  auto architecture = build_model_as<Model>(architecture_args, {}, "an exportable architecture");
  nn::assign_paths(*architecture);
  try {
    load_state_dict(*architecture, weights, /*strict=*/true, checkpoint);
  } catch (const Error& e) {
    throw e.with_context(config.file + ": model.architecture does not fit the checkpoint's architecture weights");
  }

  CheckpointContents contents;
  contents.meta = {{"format", kCheckpointFormat},
                   {"razor_version", kVersion},
                   {"config", to_toml(exported_tree)},
                   {"config_file", config.file},
                   {"exported_from", checkpoint},
                   {"epoch", reader.contents().meta.value("epoch", int64_t{0})},
                   {"iter", reader.contents().meta.value("iter", int64_t{0})}};
  contents.model = state_dict(*architecture);
  write_checkpoint(out, contents, nullptr);
  return {out, contents.model.size()};
}

}  // namespace razor
