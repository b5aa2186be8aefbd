#include "algorithms/pruning/group_fisher_algorithm.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>

#include "algorithms/pruning/pruning_hooks.h"
#include "components/nn/module.h"
#include "engine/dist.h"
#include "engine/error.h"

namespace razor {

GroupFisherAlgorithm::GroupFisherAlgorithm(std::shared_ptr<Model> architecture,
                                           std::unique_ptr<GroupFisherChannelMutator> mutator, int64_t interval,
                                           Runner* runner, ArchitectureBuilder build_copy)
    : ItePruneAlgorithm(std::move(architecture), std::move(mutator), ItePruneOptions{}, runner, std::move(build_copy)),
      interval_(interval) {
  RAZOR_CHECK(interval_ >= 1, "GroupFisherAlgorithm: interval must be at least 1, got ", interval_);
  int64_t pruned_units = 0;
  for (const auto& unit : this->mutator().units()) {
    if (dynamic_cast<const channel::GroupFisherChannelUnit&>(*unit).is_mutable()) ++pruned_units;
  }
  RAZOR_CHECK(pruned_units > 0, "GroupFisherAlgorithm: no channel unit can be pruned (units read by a linear are "
              "kept unless mutate_linear = true)");
}

GroupFisherChannelMutator& GroupFisherAlgorithm::fisher_mutator() {
  return static_cast<GroupFisherChannelMutator&>(mutator());
}

LossMap GroupFisherAlgorithm::train_step(const Batch& batch, OptimWrapper& optim) {
  if (!pruning_) return ItePruneAlgorithm::train_step(batch, optim);
  const int64_t iter = iteration();
  GroupFisherChannelMutator& m = fisher_mutator();
  m.start_record_info();
  LossMap losses;
  try {
    losses = ItePruneAlgorithm::train_step(batch, optim);
  } catch (...) {
    m.end_record_info();
    m.reset_recorded_info();
    throw;
  }
  m.end_record_info();
  m.update_imp();
  m.reset_recorded_info();
  // As MMRazor: at iterations 0, interval, 2 interval, ... from what was gathered since.
  if (iter % interval_ == 0) {
    if (!m.try_prune().empty()) {
      ++pruned_channels_;
      update_ratios();
    }
    m.reset_imp();
  }
  losses.back().second = torch::tensor(params_ratio());
  losses[losses.size() - 2].second = torch::tensor(flops_ratio());
  return losses;
}

Json GroupFisherAlgorithm::extra_state() const {
  Json state = ItePruneAlgorithm::extra_state();
  Json fisher = Json::object();
  for (const auto& unit : mutator().units()) {
    const torch::Tensor f = dynamic_cast<const channel::GroupFisherChannelUnit&>(*unit).accumulated().contiguous();
    fisher[unit->name()] = std::vector<double>(f.data_ptr<double>(), f.data_ptr<double>() + f.numel());
  }
  state["fisher"] = fisher;
  state["pruning"] = pruning_;
  state["pruned_channels"] = pruned_channels_;
  return state;
}

void GroupFisherAlgorithm::load_extra_state(const Json& state) {
  ItePruneAlgorithm::load_extra_state(state);
  if (!state.is_object()) return;
  pruning_ = state.value("pruning", true);
  pruned_channels_ = state.value("pruned_channels", int64_t{0});
  if (!state.contains("fisher")) return;
  for (const auto& unit : mutator().units()) {
    if (!state["fisher"].contains(unit->name())) continue;
    const auto values = state["fisher"][unit->name()].get<std::vector<double>>();
    dynamic_cast<channel::GroupFisherChannelUnit&>(*unit).set_accumulated(
        torch::tensor(values, torch::kDouble));
  }
}

void register_group_fisher() {
  model_registry().add("GroupFisherAlgorithm", [](Args& args, const BuildContext& context) {
    auto [architecture, build_copy] = build_architecture_to_prune(args, context, "GroupFisherAlgorithm");
    auto mutator =
        std::make_unique<GroupFisherChannelMutator>(channel_mutator_options_from(args, "mutator", "GroupFisherChannelMutator"));
    const int64_t interval = args.get<int64_t>("interval", 10);
    auto algorithm = std::make_shared<GroupFisherAlgorithm>(architecture, std::move(mutator), interval, context.runner,
                                                            std::move(build_copy));
    nn::assign_paths(*algorithm);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
  register_pruning_hooks();
}

}  // namespace razor
