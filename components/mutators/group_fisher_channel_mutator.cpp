#include "components/mutators/group_fisher_channel_mutator.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <limits>

#include "engine/dist.h"
#include "engine/error.h"

namespace razor {

channel::GroupFisherChannelUnit& GroupFisherChannelMutator::fisher_unit(size_t index) const {
  auto* unit = dynamic_cast<channel::GroupFisherChannelUnit*>(units().at(index).get());
  RAZOR_CHECK(unit, "GroupFisherChannelMutator: unit ", units().at(index)->name(), " is a ", units().at(index)->type(),
              "; channel_unit_cfg.type must be \"GroupFisherChannelUnit\"");
  return *unit;
}

void GroupFisherChannelMutator::start_record_info() {
  for (size_t i = 0; i < units().size(); ++i) fisher_unit(i).start_record();
}

void GroupFisherChannelMutator::end_record_info() {
  for (size_t i = 0; i < units().size(); ++i) fisher_unit(i).end_record();
}

void GroupFisherChannelMutator::reset_recorded_info() {
  for (size_t i = 0; i < units().size(); ++i) fisher_unit(i).reset_recorded();
}

void GroupFisherChannelMutator::update_imp() {
  for (size_t i = 0; i < units().size(); ++i) {
    auto& unit = fisher_unit(i);
    unit.update_fisher(mask_of(unit.name()), /*across_ranks=*/true);
  }
}

void GroupFisherChannelMutator::reset_imp() {
  for (size_t i = 0; i < units().size(); ++i) fisher_unit(i).reset_fisher();
}

std::string GroupFisherChannelMutator::try_prune() {
  double least = std::numeric_limits<double>::infinity();
  int64_t best_unit = -1, best_channel = -1;
  for (size_t i = 0; i < units().size(); ++i) {
    auto& unit = fisher_unit(i);
    if (!unit.is_mutable() || unit.width() <= 1) continue;
    const torch::Tensor importance = unit.fisher_importance(mask_of(unit.name()));
    if (importance.isnan().any().item<bool>()) {
      if (dist::is_main()) spdlog::warn("GroupFisher: {} has a NaN importance; no channel is pruned this time", unit.name());
      return {};
    }
    // The lowest index among equals, in the first unit that has it.
    const auto [value, channel] = importance.min(0);
    if (value.item<double>() < least) {
      least = value.item<double>();
      best_unit = static_cast<int64_t>(i);
      best_channel = channel.item<int64_t>();
    }
  }
  if (best_unit < 0) return {};
  const std::string name = units()[static_cast<size_t>(best_unit)]->name();
  torch::Tensor mask = mask_of(name).clone();
  mask[best_channel] = false;
  set_mask(name, mask);
  if (dist::is_main()) spdlog::debug("GroupFisher: {} prunes channel {} (importance {})", name, best_channel, least);
  return name;
}

}  // namespace razor
