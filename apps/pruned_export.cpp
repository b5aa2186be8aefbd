#include "apps/pruned_export.h"

#include <torch/torch.h>

#include <filesystem>

#include "algorithms/pruning/ite_prune_algorithm.h"
#include "apps/export.h"
#include "components/estimators/resource_estimator.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

int64_t parameter_count(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace

PrunedExport export_pruned(std::shared_ptr<Config> config, const std::string& checkpoint, const std::string& out_dir,
                           int64_t divisor) {
  RAZOR_CHECK(!out_dir.empty(), "give the output directory with --out");
  RAZOR_CHECK(divisor >= 1, "--divisor must be at least 1, got ", divisor);
  auto runner = runner_for_export(config, checkpoint);
  auto* pruner = dynamic_cast<ItePruneAlgorithm*>(&runner->model());
  RAZOR_CHECK(pruner, config->file, ": --pruned exports a pruning algorithm's model (model.type = "
              "\"ItePruneAlgorithm\"); this config's model is not one");
  const std::string why_not = pruner->not_exportable_because();
  RAZOR_CHECK(why_not.empty(), config->file, ": ", why_not);
  Model& architecture = pruner->architecture();
  ChannelMutator& mutator = pruner->mutator();
  const auto demo_shape = mutator.options().parse.demo_input;

  PrunedExport report;
  torch::NoGradGuard no_grad;
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape(demo_shape).with_units(""));
  const Json widths = pruner->widths(divisor);
  std::vector<int64_t> batch_shape = demo_shape;
  batch_shape[0] = 4;
  torch::manual_seed(0);
  const torch::Tensor probe = torch::randn(batch_shape);
  const torch::Tensor expected = architecture.forward_tensor(probe);

  // The cut model, and the config that builds it (at full width, then cut to `widths`):
  // the cut weights must load into what the config builds.
  const std::shared_ptr<Model> cut_model = pruner->static_architecture(divisor);
  Json architecture_table = config->tree.at("model").at("architecture");
  architecture_table.erase("init_cfg");
  Json tree = config->tree;
  tree["model"] = Json{{"type", "sub_model"},
                       {"cfg", architecture_table},
                       {"fix_subnet", widths},
                       {"mode", "mutator"},
                       {"demo_input", demo_shape}};
  for (const char* key : {"load_from", "resume"}) tree.erase(key);
  // The loops that need the pruning algorithm give way to the plain ones.
  for (const char* loop : {"val_cfg", "test_cfg"}) {
    const std::string type = tree.contains(loop) ? tree[loop].value("type", "") : "";
    if (type == "ItePruneValLoop" || type == "SlimmableValLoop" || type == "SlimmableTestLoop") tree.erase(loop);
  }
  auto exported = std::make_shared<Config>(*config);
  exported->tree = tree;
  Args model_args(exported->tree.at("model"), "model", exported);
  auto static_model = build_model_as<Model>(model_args, {}, "a pruned model");
  load_state_dict(*static_model, state_dict(*cut_model), /*strict=*/true, checkpoint);
  static_model->eval();
  const torch::Tensor cut = static_model->forward_tensor(probe);
  report.max_relative_error = relative_error(cut, expected);
  RAZOR_CHECK(report.max_relative_error < 1e-4, "export --pruned: the cut model's logits differ from the pruned "
              "model's by ", report.max_relative_error, " (relative); nothing was written");
  // What the static model counts (the pruned model's count, or more with padding).
  report.pruned_flops = estimator.estimate_report(*static_model, [&](const torch::Tensor& x) {
                                  return static_model->forward_tensor(x);
                                }).totals.flops;
  report.pruned_params = parameter_count(*static_model);

  // Full width: what the algorithm counted before pruning (not a slimmable network's
  // per-width BatchNorms).
  report.full_flops = pruner->full_flops();
  report.full_params = static_cast<int64_t>(pruner->full_params());

  fs::create_directories(out_dir);
  report.config = (fs::path(out_dir) / "pruned.toml").string();
  report.weights = (fs::path(out_dir) / "pruned.pth").string();
  const std::string text = to_toml(tree);
  write_file_atomically(report.config, "# The pruned model of " + config->file + " (" + checkpoint +
                                           "), cut to its channel units' widths by razor export --pruned.\n" + text);
  CheckpointContents contents;
  contents.meta = {{"format", kCheckpointFormat}, {"razor_version", kVersion}, {"config", text},
                   {"config_file", report.config}, {"exported_from", checkpoint}, {"epoch", 0}, {"iter", 0}};
  contents.model = state_dict(*static_model);
  write_checkpoint(report.weights, contents, nullptr);
  return report;
}

}  // namespace razor
