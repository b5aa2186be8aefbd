#pragma once
// MMRazor's ChannelMutator: parses a model into channel units (parse_cfg, a ChannelAnalyzer),
// makes each a mutable unit of channel_unit_cfg's type, and sets, reports and templates
// their choices by unit name. Setting choices slices every member op to its unit's kept
// channels (dynamic width, components/nn/dynamic_channels.h); make_static cuts the model
// to them for good.
#include <memory>
#include <string>
#include <vector>

#include "components/channel/channel_analyzer.h"
#include "components/channel/channel_selection.h"
#include "components/channel/mutable_channel_unit.h"
#include "components/mutators/subnet_mutator.h"
#include "engine/config.h"
#include "engine/model.h"

namespace razor {

struct ChannelMutatorOptions {
  /// "ChannelMutator", "OneShotChannelMutator", "SlimmableChannelMutator",
  /// "GroupFisherChannelMutator" or "DCFFChannelMutator": which unit type channel_unit_cfg.type
  /// defaults to (Sequential, OneShot, Slimmable, GroupFisher, DCFF).
  std::string type = "ChannelMutator";
  /// channel_unit_cfg.type.
  std::string unit_type = "SequentialMutableChannelUnit";
  /// channel_unit_cfg.default_args: every unit's init args.
  Json default_args = Json::object();
  /// channel_unit_cfg.units: {unit name: {"init_args": {...}, "choice": ...}}, as
  /// get_channel_units.py writes them (its "channels" are the traced ones, checked).
  Json units = Json::object();
  channel::ChannelAnalyzerOptions parse;
  /// DMCPChannelMutator's [min_rate, max_rate, offset] (null: its default).
  Json pruning_cfg;

  /// From a mutator table { type = "ChannelMutator", channel_unit_cfg = {...}, parse_cfg = {...} }
  /// at `where`; `units` may be a path to a JSON file (relative to `config_dir`).
  static ChannelMutatorOptions from(const Json& table, const std::string& where, const std::string& config_dir);
};

/// `width` of a unit of `channels` rounded up to a multiple of `divisor`, at most `channels`
/// (make_static's zero-padded widths).
int64_t padded_width(int64_t width, int64_t channels, int64_t divisor);

class ChannelMutator : public SubnetMutator {
 public:
  explicit ChannelMutator(ChannelMutatorOptions options);
  const ChannelMutatorOptions& options() const { return options_; }

  /// Finds the units of `architecture` (tracing its forward_tensor) and makes them mutable
  /// at the choices the options give (else full width).
  virtual void prepare_from_supernet(Model& architecture);

  const std::vector<std::unique_ptr<channel::SequentialMutableChannelUnit>>& units() const { return units_; }
  /// The unit by name; an unknown name is an error naming the nearest.
  channel::SequentialMutableChannelUnit& unit(const std::string& name) const;

  /// {unit name: choice} for the units listed (the others keep theirs): each such unit picks
  /// its channels now (an L1 unit from the current weights) and keeps them until set again;
  /// then every op at its units' widths.
  void set_choices(const Json& choices) override;
  /// {unit name: [kept channel indices]}: what a checkpoint holds, so that a resumed or
  /// exported model keeps exactly the channels it was trained with.
  Json current_masks() const;
  /// Restores current_masks() (and the choices beside them), then applies them.
  void load_masks(const Json& masks, const Json& choices);
  Json current_choices() const override;
  /// The kept channels with the choices (an importance unit's channels follow the weights
  /// when its choice is set again), and back.
  Json state() const override { return {{"masks", current_masks()}, {"choices", current_choices()}}; }
  void restore(const Json& state) override { load_masks(state.at("masks"), state.at("choices")); }
  /// {unit name: choice} of `kind` "max", "min" or "random" (each unit's own draw from
  /// `generator`: a candidate of a OneShot unit, any width of another).
  Json sample_choices(const std::string& kind, at::Generator& generator) override;
  /// MMRazor's SlimmableChannelMutator.subnets: the i-th takes every unit's i-th candidate
  /// (sorted); every unit must be a OneShot one with as many candidates.
  std::vector<Json> subnets() const;
  /// {unit name: the full width in its mode}.
  Json choice_template() const;
  /// {unit name: {"init_args", "channels", "choice"}}, each part as get_channel_units.py's -i and -c.
  Json config_template(bool with_channels, bool with_init_args) const;
  /// The whole mutator at its current choices, as MMRazor's export_fix_subnet writes
  /// fix_subnet.json: {type, channel_unit_cfg = {type, default_args, units}, parse_cfg}.
  /// ChannelMutatorOptions::from reads it back.
  Json to_config() const;

  /// Sets the kept channels of the unit named `name` itself (its width and choice follow):
  /// an algorithm that removes channels one by one (GroupFisher).
  void set_mask(const std::string& name, const torch::Tensor& mask);
  /// The kept channels of the unit named `name` (bool).
  const torch::Tensor& mask_of(const std::string& name) const;

  /// Every op at its units' kept channels.
  void apply() const;
  /// The units' kept channels as one selection.
  channel::ChannelSelection selection() const;
  /// Cuts the architecture to the current widths for good; the units are gone afterwards.
  /// With `divisor` > 1 each unit is cut to its width rounded up to a multiple of `divisor`
  /// (at most all its channels): the extra channels are pruned ones that every conv and
  /// linear reading them reads with zero weights, so the model computes the same function
  /// at widths that fast kernels prefer.
  void make_static(int64_t divisor = 1);

 private:
  /// The position of the unit named `name`; an unknown name is an error naming the nearest.
  size_t index_of(const std::string& name) const;

  ChannelMutatorOptions options_;
  std::vector<std::unique_ptr<channel::SequentialMutableChannelUnit>> units_;
  /// Each unit's kept channels (bool), picked when its choice was set.
  std::vector<torch::Tensor> masks_;
};

}  // namespace razor
