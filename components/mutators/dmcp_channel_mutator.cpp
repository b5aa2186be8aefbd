#include "components/mutators/dmcp_channel_mutator.h"

#include <torch/torch.h>

#include "components/nn/batch_norm.h"
#include "engine/dist.h"
#include "engine/error.h"

namespace razor {

DMCPGroups dmcp_groups(int64_t channels, const std::array<double, 3>& pruning_cfg) {
  const auto [min_rate, max_rate, offset] = pruning_cfg;
  DMCPGroups g;
  g.group_size = static_cast<int64_t>(offset * static_cast<double>(channels) / max_rate);
  g.num_groups = static_cast<int64_t>((max_rate - min_rate) / offset + 1e-4);
  g.min_ch = channels - g.group_size * g.num_groups;
  RAZOR_CHECK(g.min_ch > 0, "DMCPChannelMutator: pruning_cfg (", min_rate, ", ", max_rate, ", ", offset, ") leaves no ",
              "channel of a unit of ", channels);
  return g;
}

DMCPChannelMutator::DMCPChannelMutator(ChannelMutatorOptions options, std::array<double, 3> pruning_cfg, uint64_t seed)
    : ChannelMutator(std::move(options)),
      pruning_cfg_(pruning_cfg),
      generator_(dist::shared_generator(seed, 0x646d6370u)) {
  const auto [min_rate, max_rate, offset] = pruning_cfg_;
  RAZOR_CHECK(0 < min_rate && min_rate < max_rate && max_rate <= 1 && offset > 0, "DMCPChannelMutator: pruning_cfg ",
              "must be (min_rate, max_rate, offset) with 0 < min_rate < max_rate <= 1 and offset > 0, got (", min_rate,
              ", ", max_rate, ", ", offset, ")");
}

DMCPChannelMutator::~DMCPChannelMutator() {
  for (auto& gate : gates_) gate.remove();
}

void DMCPChannelMutator::prepare_from_supernet(Model& architecture) {
  ChannelMutator::prepare_from_supernet(architecture);
  for (auto& gate : gates_) gate.remove();
  gates_.clear();
  groups_.clear();
  arch_params_.clear();
  arch_module_ = std::make_shared<torch::nn::Module>("DMCPArchParams");
  for (size_t i = 0; i < units().size(); ++i) {
    const auto& unit = *units()[i];
    groups_.push_back(dmcp_groups(unit.num_channels(), pruning_cfg_));
    arch_params_.push_back(arch_module_->register_parameter(std::to_string(i), torch::zeros({groups_[i].num_groups})));
    for (const auto& c : unit.spec().output_related) {
      auto* bn = dynamic_cast<nn::BatchNorm2d*>(c.module);
      if (!bn || c.start != 0 || c.end != bn->num_features()) continue;
      gates_.push_back(bn->add_forward_hook([this, i](nn::Module&, const nn::Inputs&, torch::Tensor& out) {
        if (!gated_) return;
        const DMCPGroups& g = groups_[i];
        const int64_t present = g.group_size > 0 ? (out.size(1) - g.min_ch) / g.group_size : 0;
        if (present <= 0) return;
        // Group k of the channels after min_ch, times the probability it is kept.
        const torch::Tensor p = keep_probabilities(i).narrow(0, 0, present).to(out.dtype());
        std::vector<int64_t> shape = out.sizes().vec();
        const torch::Tensor head = out.narrow(1, 0, g.min_ch);
        torch::Tensor groups = out.narrow(1, g.min_ch, present * g.group_size);
        std::vector<int64_t> grouped = {shape[0], present, g.group_size};
        for (size_t d = 2; d < shape.size(); ++d) grouped.push_back(shape[d]);
        std::vector<int64_t> view(grouped.size(), 1);
        view[1] = present;
        groups = (groups.reshape(grouped) * p.view(view)).reshape(groups.sizes());
        torch::Tensor rest = out.narrow(1, g.min_ch + present * g.group_size,
                                        out.size(1) - g.min_ch - present * g.group_size);
        out = torch::cat({head, groups, rest}, 1);
      }));
    }
  }
}

torch::Tensor DMCPChannelMutator::keep_probabilities(size_t unit) const {
  return torch::cumprod(torch::exp(-arch_params_[unit].clamp_min(0)), 0);
}

Json DMCPChannelMutator::sample_subnet_choices(const std::string& mode) {
  RAZOR_CHECK(mode == "max" || mode == "min" || mode == "random" || mode == "direct",
              "DMCPChannelMutator: a subnet is \"max\", \"min\", \"random\" or \"direct\", got \"", mode, "\"");
  Json choices = Json::object();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < units().size(); ++i) {
    const DMCPGroups& g = groups_[i];
    int64_t kept = 0;
    if (mode == "max") {
      kept = g.num_groups;
    } else if (mode == "random") {
      kept = torch::randint(g.num_groups + 1, {1}, generator_, torch::kLong).item<int64_t>();
    } else if (mode == "direct") {
      const torch::Tensor step = torch::exp(-arch_params_[i].detach().clamp_min(0)).cpu();
      const torch::Tensor draws = torch::rand({g.num_groups}, generator_, torch::kDouble);
      while (kept < g.num_groups && draws[kept].item<double>() <= step[kept].item<double>()) ++kept;
    }
    const int64_t width = g.min_ch + g.group_size * kept;
    choices[units()[i]->name()] = units()[i]->choice_of_width(width);
  }
  return choices;
}

void DMCPChannelMutator::sample_subnet(const std::string& mode, bool gated) {
  set_choices(sample_subnet_choices(mode));
  gated_ = gated;
}

std::vector<torch::Tensor> DMCPChannelMutator::expected_channels() const {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < units().size(); ++i) {
    const DMCPGroups& g = groups_[i];
    out.push_back(keep_probabilities(i).sum() * static_cast<double>(g.group_size) + static_cast<double>(g.min_ch));
  }
  return out;
}

double DMCPChannelMutator::uniform() { return torch::rand({1}, generator_, torch::kDouble).item<double>(); }

std::string DMCPChannelMutator::generator_state() const { return dist::generator_state_hex(generator_); }

void DMCPChannelMutator::set_generator_state(const std::string& state) {
  dist::set_generator_state_hex(generator_, state);
}

}  // namespace razor
