#include "components/channel/channel_selection.h"

#include <torch/torch.h>

#include <map>

#include "components/nn/dynamic_channels.h"
#include "engine/error.h"

namespace razor::channel {

namespace {

nn::DynamicChannels& dynamic(const UnitChannel& channel) {
  auto* op = dynamic_cast<nn::DynamicChannels*>(channel.module);
  RAZOR_CHECK(op, channel.name, ": this op cannot change its width");
  return *op;
}

/// A side's active channels from its keep flags: undefined when all are kept.
torch::Tensor active_index(const std::vector<bool>& keep) {
  std::vector<int64_t> index;
  for (size_t i = 0; i < keep.size(); ++i) {
    if (keep[i]) index.push_back(static_cast<int64_t>(i));
  }
  if (index.size() == keep.size()) return {};
  return torch::tensor(index, torch::kLong);
}

}  // namespace

ChannelSelection::ChannelSelection(std::vector<ChannelUnitSpec> units) : units_(std::move(units)) {
  for (const auto& unit : units_) {
    for (const auto* side : {&unit.output_related, &unit.input_related}) {
      for (const auto& c : *side) dynamic(c);  // every member can change its width
    }
  }
  keep_all();
}

void ChannelSelection::keep(size_t unit, const torch::Tensor& mask) {
  const ChannelUnitSpec& u = units_.at(unit);
  RAZOR_CHECK(mask.dim() == 1 && mask.size(0) == u.num_channels, u.name, ": a channel choice must have shape [",
              u.num_channels, "], got ", mask.sizes());
  const torch::Tensor flags = mask.to(torch::kBool).cpu();
  RAZOR_CHECK(flags.any().item<bool>(), u.name, ": at least one channel must be kept");
  masks_[unit] = flags;
}

void ChannelSelection::keep_first(size_t unit, int64_t width) {
  const ChannelUnitSpec& u = units_.at(unit);
  RAZOR_CHECK(width >= 1 && width <= u.num_channels, u.name, ": a width must be in [1, ", u.num_channels, "], got ",
              width);
  torch::Tensor mask = torch::zeros({u.num_channels}, torch::kBool);
  mask.narrow(0, 0, width).fill_(true);
  masks_[unit] = mask;
}

void ChannelSelection::keep_all() {
  masks_.clear();
  for (const auto& unit : units_) masks_.push_back(torch::ones({unit.num_channels}, torch::kBool));
}

void ChannelSelection::apply() const {
  // Per op: the keep flags of its output and input sides, all kept where no unit covers them.
  struct Sides {
    std::vector<bool> out, in;
  };
  std::map<nn::Module*, Sides> ops;
  for (size_t u = 0; u < units_.size(); ++u) {
    const auto* kept = masks_[u].data_ptr<bool>();
    for (const auto* side : {&units_[u].output_related, &units_[u].input_related}) {
      for (const auto& c : *side) {
        nn::DynamicChannels& op = dynamic(c);
        Sides& sides = ops[c.module];
        if (sides.out.empty()) {
          sides.out.assign(static_cast<size_t>(op.out_width()), true);
          sides.in.assign(static_cast<size_t>(op.in_width()), true);
        }
        std::vector<bool>& flags = c.is_output ? sides.out : sides.in;
        RAZOR_CHECK(c.end <= static_cast<int64_t>(flags.size()), c.name, ": channels [", c.start, ", ", c.end,
                    ") are outside its ", flags.size());
        for (int64_t j = 0; j < units_[u].num_channels; ++j) {
          if (kept[j]) continue;
          for (int64_t r = 0; r < c.expand_ratio; ++r) {
            flags[static_cast<size_t>(c.start + j * c.expand_ratio + r)] = false;
          }
        }
      }
    }
  }
  for (const auto& [module, sides] : ops) {
    auto* op = dynamic_cast<nn::DynamicChannels*>(module);
    op->set_active_channels(active_index(sides.out), active_index(sides.in));
  }
}

void ChannelSelection::clear() const {
  for (const auto& unit : units_) {
    for (const auto* side : {&unit.output_related, &unit.input_related}) {
      for (const auto& c : *side) dynamic(c).set_active_channels({}, {});
    }
  }
}

void ChannelSelection::make_static() const {
  std::map<nn::Module*, nn::DynamicChannels*> ops;
  for (const auto& unit : units_) {
    for (const auto* side : {&unit.output_related, &unit.input_related}) {
      for (const auto& c : *side) ops[c.module] = &dynamic(c);
    }
  }
  for (const auto& [module, op] : ops) op->make_static();
}

}  // namespace razor::channel
