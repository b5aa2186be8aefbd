#include "algorithms/pruning/pruning_hooks.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>

#include "algorithms/pruning/group_fisher_algorithm.h"
#include "components/channel/group_fisher_channel_unit.h"
#include "engine/dist.h"
#include "engine/error.h"
#include "engine/runner.h"

namespace razor {

namespace {

ItePruneAlgorithm& pruner_of(Runner& runner, const char* hook) {
  auto* pruner = dynamic_cast<ItePruneAlgorithm*>(&runner.model());
  RAZOR_CHECK(pruner, hook, " needs a pruning algorithm (model.type = \"GroupFisherAlgorithm\" or \"ItePruneAlgorithm\")");
  return *pruner;
}

}  // namespace

ResourceInfoHook::ResourceInfoHook(int64_t interval, std::string resource_type, std::vector<double> thresholds,
                                   bool early_stop)
    : interval_(interval), resource_type_(std::move(resource_type)), thresholds_(std::move(thresholds)),
      early_stop_(early_stop) {
  std::sort(thresholds_.begin(), thresholds_.end(), std::greater<>());
}

void ResourceInfoHook::after_train_iter(Runner& runner, int64_t, const Batch&, const LossMap&) {
  // The iteration just done, counted from 0 as MMRazor's RuntimeInfo.iter().
  if ((runner.iter() - 1) % interval_ != 0 || thresholds_.empty()) return;
  ItePruneAlgorithm& pruner = pruner_of(runner, "ResourceInfoHook");
  if (!demo_input_.is_null()) {
    RAZOR_CHECK(demo_input_ == Json(pruner.mutator().options().parse.demo_input), demo_input_where_, ": ",
                demo_input_.dump(), " differs from the mutator's parse_cfg.demo_input ",
                Json(pruner.mutator().options().parse.demo_input).dump(), ", on which the resources are counted");
    demo_input_ = nullptr;
  }
  const double share = resource_type_ == "flops" ? pruner.flops_ratio() : pruner.params_ratio();
  if (share < thresholds_.front()) {
    char filename[64];
    std::snprintf(filename, sizeof(filename), "%s_%.2f.pth", resource_type_.c_str(), thresholds_.front());
    thresholds_.erase(thresholds_.begin());
    runner.train_loop().check_finite();
    if (runner.write_files()) {
      const std::string path = runner.save_checkpoint(filename);
      spdlog::info("ResourceInfoHook: {:.2f}% of the {} left: saved {}", 100 * share, resource_type_, path);
    }
    if (early_stop_ && thresholds_.empty()) {
      if (auto* fisher = dynamic_cast<GroupFisherAlgorithm*>(&pruner)) {
        fisher->stop_pruning();
        spdlog::info("ResourceInfoHook: every threshold is saved; the pruning stops, training goes on at these widths");
      }
    }
  }
}

void ResourceInfoHook::after_train_epoch(Runner& runner) {
  ItePruneAlgorithm& pruner = pruner_of(runner, "ResourceInfoHook");
  if (dist::is_main()) {
    spdlog::info("ResourceInfoHook: {:.2f}% of the FLOPs, {:.2f}% of the params", 100 * pruner.flops_ratio(),
                 100 * pruner.params_ratio());
  }
}

void ResourceInfoHook::before_save_checkpoint(Runner&, Json& state) { state["thresholds"] = thresholds_; }

void ResourceInfoHook::after_load_checkpoint(Runner&, const Json& state) {
  if (state.contains("thresholds")) thresholds_ = state["thresholds"].get<std::vector<double>>();
}

void PruningStructureHook::after_train_epoch(Runner& runner) {
  if (by_epoch_ && runner.epoch() % interval_ == 0) show(runner);
}

void PruningStructureHook::after_train_iter(Runner& runner, int64_t, const Batch&, const LossMap&) {
  if (!by_epoch_ && (runner.iter() - 1) % interval_ == 0) show(runner);
}

void PruningStructureHook::show(Runner& runner) {
  if (!dist::is_main()) return;
  ItePruneAlgorithm& pruner = pruner_of(runner, "PruningStructureHook");
  std::string lines;
  for (const auto& unit : pruner.mutator().units()) {
    lines += "\n  " + unit->name() + ": " + std::to_string(unit->width()) + " of " + std::to_string(unit->num_channels());
    if (const auto* fisher = dynamic_cast<const channel::GroupFisherChannelUnit*>(unit.get())) {
      const torch::Tensor f = fisher->fisher_importance(pruner.mutator().mask_of(unit->name()));
      lines += "  importance " + std::to_string(f.min().item<double>()) + " .. " + std::to_string(f.max().item<double>());
    }
  }
  spdlog::info("PruningStructureHook: channels kept:{}", lines);
}

void register_pruning_hooks() {
  hook_registry().add("ResourceInfoHook", [](Args& args, const BuildContext&) {
    const int64_t interval = args.get<int64_t>("interval", 10);
    if (interval < 1) args.fail("interval", "must be at least 1");
    const std::string type = args.get<std::string>("resource_type", "flops");
    if (type != "flops" && type != "params") args.fail("resource_type", "expected \"flops\" or \"params\"");
    const auto thresholds = args.get<std::vector<double>>("save_ckpt_thr", {0.5});
    for (const double t : thresholds) {
      if (!(t > 0 && t <= 1)) args.fail("save_ckpt_thr", "each threshold is a share in (0, 1]");
    }
    auto hook = std::make_shared<ResourceInfoHook>(interval, type, thresholds, args.get<bool>("early_stop", true));
    // The resources are counted on the mutator's demo input; MMRazor's demo_input, if
    // given, must be that one.
    if (args.has("demo_input")) {
      const Json& v = args.raw("demo_input");
      hook->set_demo_input(v.is_object() && v.contains("input_shape") ? v["input_shape"] : v, args.where("demo_input"));
    }
    hook->set_priority(parse_priority(args, "priority", kNormal));
    return hook;
  });
  hook_registry().add("PruningStructureHook", [](Args& args, const BuildContext&) {
    const int64_t interval = args.get<int64_t>("interval", 1);
    if (interval < 1) args.fail("interval", "must be at least 1");
    auto hook = std::make_shared<PruningStructureHook>(args.get<bool>("by_epoch", true), interval);
    hook->set_priority(parse_priority(args, "priority", kNormal));
    return hook;
  });
}

}  // namespace razor
