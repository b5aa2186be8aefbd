#include "apps/pytorch_export.h"

#include <filesystem>
#include <map>

#include <torch/torch.h>

#include "components/nn/batch_norm.h"
#include "components/nn/weighted_op.h"
#include "engine/args.h"
#include "engine/checkpoint.h"
#include "engine/checkpoint_names.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/pytorch_file.h"
#include "engine/runner.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

// `source`'s tensors with every folded BatchNorm folded for good into its op.
std::map<std::string, torch::Tensor> folded_tensors(torch::nn::Module& source) {
  std::map<std::string, torch::Tensor> values;
  for (const auto& [name, tensor] : state_dict(source)) values[name] = tensor.detach();
  std::map<const nn::BatchNorm2d*, std::string> bn_names;
  for (const auto& item : source.named_modules()) {
    if (auto* bn = dynamic_cast<const nn::BatchNorm2d*>(item.value().get())) bn_names[bn] = item.key();
  }
  torch::NoGradGuard no_grad;
  for (const auto& item : source.named_modules()) {
    auto* op = dynamic_cast<nn::WeightedOp*>(item.value().get());
    if (!op || !op->folded_bn()) continue;
    const nn::BatchNorm2d* bn = op->folded_bn();
    const std::string& bn_name = bn_names.at(bn);
    const auto [weight, bias] = op->deployed_weight(bn);
    values[item.key() + ".weight"] = weight;
    if (op->bias.defined()) values[item.key() + ".bias"] = bias;
    // The BN becomes y = x + bias: (x - 0) / sqrt((1 - eps) + eps) * 1 + bias.
    const torch::Tensor like = values.at(bn_name + ".running_mean");  // a copy: the entry is replaced
    values[bn_name + ".running_mean"] = torch::zeros_like(like);
    values[bn_name + ".running_var"] = torch::full_like(like, 1.0 - bn->eps());
    if (values.count(bn_name + ".weight")) values[bn_name + ".weight"] = torch::ones_like(like);
    if (values.count(bn_name + ".bias")) values[bn_name + ".bias"] = op->bias.defined() ? torch::zeros_like(like) : bias;
  }
  return values;
}

}  // namespace

ExportReport export_pytorch(std::shared_ptr<Config> config, const std::string& checkpoint, const std::string& out,
                            const std::string& names) {
  RAZOR_CHECK(!out.empty(), "give the file to write with --out");
  RAZOR_CHECK(fs::exists(checkpoint), "checkpoint not found: ", checkpoint);
  RAZOR_CHECK(fs::absolute(out) != fs::absolute(checkpoint), "--out must not overwrite the checkpoint ", checkpoint);
  RAZOR_CHECK(config->tree.contains("model"), config->file, ": the config has no [model] table");
  const Json& model_table = config->tree.at("model");
  const bool wrapped = model_table.contains("architecture");
  const std::unique_ptr<Runner> runner = runner_for_export(config, checkpoint);
  Model& model = runner->model();
  torch::nn::Module* source = &model;
  if (wrapped) {
    for (const auto& child : model.named_children()) {
      if (child.key() == "architecture") source = child.value().get();
    }
    RAZOR_CHECK(source != &model, config->file, ": model.type = \"", model_table.value("type", ""),
                "\" has a model.architecture table but no architecture module to export");
  }
  const std::map<std::string, torch::Tensor> values = folded_tensors(*source);

  // The plain float model of the same architecture: the names and shapes the file must have.
  Args plain_args(wrapped ? model_table.at("architecture") : model_table, wrapped ? "model.architecture" : "model",
                  config);
  auto plain = build_model_as<Model>(plain_args, {}, "a model to export");
  StateDict tensors;
  std::vector<std::string> missing;
  for (const auto& [name, like] : state_dict(*plain)) {
    auto it = values.find(name);
    if (it == values.end() || !it->second.sizes().equals(like.sizes())) {
      missing.push_back(name);
      continue;
    }
    tensors.emplace_back(name, it->second.to(like.dtype()));
  }
  RAZOR_CHECK(missing.empty(), checkpoint, ": ", missing.size(), " tensor(s) of the plain model are not in the loaded ",
              "model (first: ", missing.empty() ? "" : missing.front(), ")");
  tensors = rename_for_tool(tensors, *plain, names);
  write_pytorch_state_dict(out, tensors);
  return {out, tensors.size()};
}

}  // namespace razor
