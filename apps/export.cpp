#include "apps/export.h"

#include <filesystem>

#include <torch/torch.h>

#include "algorithms/nas/nas_algorithm.h"
#include "components/mutables/mutable_op.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/module.h"
#include "engine/args.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

std::unique_ptr<Runner> runner_for_export(std::shared_ptr<Config> config, const std::string& checkpoint) {
  Json& model_table = config->tree["model"];
  if (model_table.is_object() && model_table.value("type", "") == "MMArchitectureQuant") {
    model_table["float_checkpoint"] = "";
  }
  RunnerOptions options;
  options.device = "cpu";
  options.write_files = false;
  auto runner = std::make_unique<Runner>(std::move(config), options);
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

namespace {

/// The candidate tables a stage's blocks were built from (its own row table or mutable_cfg).
const Json& stage_candidates(const Json& backbone, size_t stage, size_t block) {
  const Json& row = backbone.at("arch_setting").at(stage);
  const Json* table = backbone.contains("mutable_cfg") ? &backbone.at("mutable_cfg") : nullptr;
  if (row.size() == 3) table = row[2].is_array() ? &row[2][block] : &row[2];
  RAZOR_CHECK(table && table->contains("candidates"), "export --subnet: block ", stage, ".", block,
              " of the backbone is not a searchable block");
  return table->at("candidates");
}

}  // namespace

SubnetExport export_subnet(const Config& config, const std::string& checkpoint,
                           const std::string& subnet_file, const std::string& out_dir) {
  RAZOR_CHECK(config.tree.contains("model") && config.tree.at("model").contains("architecture"),
              config.file, ": model is not a NAS algorithm over an architecture");
  const Json& backbone_table = config.tree.at("model").at("architecture").value("backbone", Json());
  RAZOR_CHECK(backbone_table.value("type", "") == "SearchableShuffleNetV2", config.file,
              ": export --subnet writes static SearchableShuffleNetV2 subnets; this backbone is \"",
              backbone_table.value("type", ""), "\"");
  RAZOR_CHECK(!out_dir.empty(), "give the output directory with --out");

  auto shared = std::make_shared<Config>(config);
  Args model_args(shared->tree.at("model"), "model", shared);
  auto nas = build_model_as<NasAlgorithm>(model_args, {}, "a NAS supernet");
  SubnetExport report;
  for (const auto& p : nas->architecture().parameters()) report.supernet_params += p.numel();
  nas->fix_subnet(read_subnet_file(subnet_file), subnet_file);
  CheckpointReader reader(checkpoint);
  const LoadReport loaded = load_state_dict(*nas, reader.contents().model, /*strict=*/false, checkpoint);
  RAZOR_CHECK(loaded.missing.empty(), checkpoint, " does not hold ", loaded.missing.size(),
              " weights of the subnet (first: ", loaded.missing.empty() ? "" : loaded.missing.front(), ")");

  // The static architecture: every searchable block becomes its chosen op's table.
  Json architecture = config.tree.at("model").at("architecture");
  Json& backbone = architecture["backbone"];
  std::vector<std::pair<std::string, std::string>> renames;  // "<block>._candidates.<op>." -> "<block>."
  for (size_t stage = 0; stage < backbone.at("arch_setting").size(); ++stage) {
    Json& row = backbone["arch_setting"][stage];
    Json tables = Json::array();
    for (int64_t b = 0; b < row[1].get<int64_t>(); ++b) {
      const std::string block = "backbone.layers." + std::to_string(stage) + "." + std::to_string(b);
      auto* op = dynamic_cast<MutableOP*>(&nn::find_module(nas->architecture(), block));
      RAZOR_CHECK(op, "export --subnet: ", block, " is not an op mutable");
      const std::string chosen = op->current_choice().get<std::string>();
      tables.push_back(stage_candidates(config.tree.at("model").at("architecture").at("backbone"), stage,
                                        static_cast<size_t>(b))
                           .at(chosen));
      renames.emplace_back(block + "._candidates." + chosen + ".", block + ".");
    }
    if (row.size() == 3) row.erase(2);
    row.push_back(tables);
  }
  backbone.erase("mutable_cfg");
  Json tree = config.tree;
  tree["model"] = architecture;
  for (const char* key : {"val_cfg", "test_cfg"}) {
    if (tree.contains(key) && tree[key].value("type", "").rfind("Subnet", 0) == 0) {
      tree[key] = Json{{"type", std::string(key) == "val_cfg" ? "ValLoop" : "TestLoop"}};
    }
  }
  if (tree.contains("train_cfg") && tree["train_cfg"].value("type", "").find("Search") != std::string::npos) {
    tree.erase("train_cfg");
  }

  StateDict weights;
  for (auto [name, tensor] : state_dict(nas->architecture())) {
    for (const auto& [from, to] : renames) {
      if (name.rfind(from, 0) == 0) {
        name = to + name.substr(from.size());
        break;
      }
    }
    weights.emplace_back(name, tensor);
  }
  auto exported_config = std::make_shared<Config>(config);
  exported_config->tree = tree;
  Args static_args(exported_config->tree.at("model"), "model", exported_config);
  auto static_model = build_model_as<Model>(static_args, {}, "a static subnet");
  load_state_dict(*static_model, weights, /*strict=*/true, checkpoint);
  for (const auto& p : static_model->parameters()) report.subnet_params += p.numel();

  fs::create_directories(out_dir);
  report.config = (fs::path(out_dir) / "subnet.toml").string();
  report.weights = (fs::path(out_dir) / "subnet.pth").string();
  write_file_atomically(report.config, "# The static subnet of " + config.file + " fixed to " + subnet_file +
                                           ", exported by razor export.\n" + to_toml(tree));
  CheckpointContents contents;
  contents.meta = {{"format", kCheckpointFormat}, {"razor_version", kVersion}, {"config", to_toml(tree)},
                   {"config_file", report.config}, {"exported_from", checkpoint}, {"subnet", subnet_file},
                   {"epoch", 0}, {"iter", 0}};
  contents.model = state_dict(*static_model);
  write_checkpoint(report.weights, contents, nullptr);
  return report;
}

}  // namespace razor
