#include "apps/static_export.h"

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <vector>

#include "algorithms/nas/nas_algorithm.h"
#include "algorithms/pruning/ite_prune_algorithm.h"
#include "apps/analyze.h"
#include "apps/export.h"
#include "components/estimators/resource_estimator.h"
#include "components/mutators/fix_subnet.h"
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

/// What an algorithm's model becomes: the sub_model table that builds it, the weights it
/// loads, and the logits it must give on a probe batch.
struct StaticForm {
  std::string name;    // the files' stem: "pruned" or "subnet"
  std::string origin;  // what the config's first line says it was made from
  Json model;
  StateDict weights;
  std::vector<int64_t> input_shape;  // where FLOPs are counted (batch 1)
  torch::Tensor probe, expected;
  double full_flops = 0;
  int64_t full_params = 0;
};

/// A batch of 4 from a fixed seed, so that the check does not move the run's generator.
torch::Tensor probe_batch(std::vector<int64_t> shape) {
  shape[0] = 4;
  torch::manual_seed(0);
  return torch::randn(shape);
}

/// The architecture table a sub_model builds from: the algorithm's, without its init_cfg
/// (the exported weights replace it).
Json architecture_table(const Config& config) {
  Json table = config.tree.at("model").at("architecture");
  table.erase("init_cfg");
  return table;
}

StaticForm pruned_form(std::shared_ptr<Config> config, const std::string& checkpoint,
                       int64_t divisor) {
  auto runner = runner_for_export(config, checkpoint);
  auto* pruner = dynamic_cast<ItePruneAlgorithm*>(&runner->model());
  RAZOR_CHECK(pruner, config->file,
              ": --pruned exports a pruning algorithm's model (model.type = "
              "\"ItePruneAlgorithm\"); this config's model is not one");
  const std::string why_not = pruner->not_exportable_because();
  RAZOR_CHECK(why_not.empty(), config->file, ": ", why_not);
  StaticForm form;
  form.name = "pruned";
  form.origin = "The pruned model of " + config->file + " (" + checkpoint +
                "), cut to its channel units' widths by razor export --pruned.";
  form.input_shape = pruner->mutator().options().parse.demo_input;
  // Counted on the demo input the algorithm counted its ratios on, and at full width as it
  // counted them before pruning (not a slimmable network's per-width BatchNorms).
  form.full_flops = pruner->full_flops();
  form.full_params = static_cast<int64_t>(pruner->full_params());
  form.probe = probe_batch(form.input_shape);
  form.expected = pruner->architecture().forward_tensor(form.probe);
  // Built at full width, then cut to the widths: the cut weights load into what it builds.
  form.model = Json{{"type", "sub_model"},
                    {"cfg", architecture_table(*config)},
                    {"mode", "mutator"},
                    {"fix_subnet", pruner->widths(divisor)},
                    {"demo_input", form.input_shape}};
  form.weights = state_dict(*pruner->static_architecture(divisor));
  return form;
}

StaticForm subnet_form(std::shared_ptr<Config> config, const std::string& checkpoint,
                       const std::string& subnet) {
  RAZOR_CHECK(
      config->tree.contains("model") && config->tree.at("model").contains("architecture"),
      config->file,
      ": --subnet exports a NAS supernet's subnet; this config's model has no architecture");
  const Json fix = read_subnet_file(subnet);
  StaticForm form;
  // The subnet first: a supernet checkpoint then loads into the chosen path (the other
  // candidates' weights are ignored), and so does a checkpoint of the subnet alone.
  auto runner = runner_for_export(config, checkpoint, [&](Model& model) {
    auto* nas = dynamic_cast<NasAlgorithm*>(&model);
    RAZOR_CHECK(nas, config->file, ": --subnet ", subnet,
                ": the config's model is not a NAS supernet "
                "(model.type = \"SPOS\", ...)");
    form.full_params = parameter_count(nas->architecture());
    nas->fix_subnet(fix, subnet);
  });
  Model& architecture = dynamic_cast<NasAlgorithm&>(runner->model()).architecture();
  form.name = "subnet";
  form.origin = "The static subnet of " + config->file + " fixed to " + subnet + " (" + checkpoint +
                "), exported by razor export --subnet.";
  form.input_shape = model_input_shape(*runner).first;
  form.probe = probe_batch(form.input_shape);
  form.expected = architecture.forward_tensor(form.probe);
  form.model = Json{{"type", "sub_model"},
                    {"cfg", architecture_table(*config)},
                    {"mode", "mutable"},
                    {"fix_subnet", fix}};
  inline_fixed_ops(architecture);
  form.weights = state_dict(architecture);
  return form;
}

/// The config of the static model: `model` in place of the algorithm, no load_from or
/// resume, and the plain loops in place of those that need the algorithm (its validation
/// over subnets or widths; a search, or DARTS's bi-level loop, goes).
Json static_tree(Json tree, const Json& model) {
  tree["model"] = model;
  for (const char* key : {"load_from", "resume"}) tree.erase(key);
  for (const auto& [loop, plain] :
       {std::pair<const char*, const char*>{"val_cfg", "ValLoop"}, {"test_cfg", "TestLoop"}}) {
    const std::string type = tree.contains(loop) ? tree[loop].value("type", "") : "";
    for (const char* needs_algorithm : {"Subnet", "Slimmable", "ItePrune"}) {
      if (type.rfind(needs_algorithm, 0) == 0) tree[loop] = Json{{"type", plain}};
    }
  }
  const std::string train = tree.contains("train_cfg") ? tree["train_cfg"].value("type", "") : "";
  if (train.find("Search") != std::string::npos || train.rfind("Darts", 0) == 0)
    tree.erase("train_cfg");
  return tree;
}

}  // namespace

StaticExport export_static(std::shared_ptr<Config> config, const std::string& checkpoint,
                           const std::string& out_dir, const StaticExportOptions& options) {
  RAZOR_CHECK(!out_dir.empty(), "give the output directory with --out");
  RAZOR_CHECK(options.divisor >= 1, "--divisor must be at least 1, got ", options.divisor);
  RAZOR_CHECK(options.subnet.empty() || options.divisor == 1,
              "--divisor applies to --pruned, not --subnet");
  torch::NoGradGuard no_grad;
  StaticForm form = options.subnet.empty() ? pruned_form(config, checkpoint, options.divisor)
                                           : subnet_form(config, checkpoint, options.subnet);

  // The static model as its config builds it, with its weights loaded strictly.
  const Json tree = static_tree(config->tree, form.model);
  auto exported = std::make_shared<Config>(*config);
  exported->tree = tree;
  Args model_args(exported->tree.at("model"), "model", exported);
  auto static_model = build_model_as<Model>(model_args, {}, "a static model");
  load_state_dict(*static_model, form.weights, /*strict=*/true, checkpoint);
  static_model->eval();

  StaticExport report;
  report.max_relative_error =
      relative_error(static_model->forward_tensor(form.probe), form.expected);
  RAZOR_CHECK(report.max_relative_error < 1e-4, "export: the static ", form.name,
              " model's logits differ from the "
              "algorithm's by ",
              report.max_relative_error, " (relative); nothing was written");
  ResourceEstimator estimator(
      ResourceEstimatorOptions().with_input_shape(form.input_shape).with_units(""));
  report.static_flops =
      estimator
          .estimate_report(*static_model,
                           [&](const torch::Tensor& x) { return static_model->forward_tensor(x); })
          .totals.flops;
  report.static_params = parameter_count(*static_model);
  report.full_flops = form.full_flops;
  report.full_params = form.full_params;

  fs::create_directories(out_dir);
  report.config = (fs::path(out_dir) / (form.name + ".toml")).string();
  report.weights = (fs::path(out_dir) / (form.name + ".pth")).string();
  const std::string text = to_toml(tree);
  write_file_atomically(report.config, "# " + form.origin + "\n" + text);
  CheckpointContents contents;
  contents.meta = {{"format", kCheckpointFormat},
                   {"razor_version", kVersion},
                   {"config", text},
                   {"config_file", report.config},
                   {"exported_from", checkpoint},
                   {"epoch", 0},
                   {"iter", 0}};
  if (!options.subnet.empty()) contents.meta["subnet"] = options.subnet;
  contents.model = state_dict(*static_model);
  write_checkpoint(report.weights, contents, nullptr);
  return report;
}

}  // namespace razor
