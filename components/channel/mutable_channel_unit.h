#pragma once
// MMRazor's mutable channel units: a channel unit (components/channel/channel_analyzer.h)
// with a choice of how many of its channels to keep, and a rule for which ones.
//   SequentialMutableChannelUnit: the first k (a prefix), k from a ratio or a number, made
//     divisible by `divisor` as MMRazor's make_divisible (min_value, min_ratio);
//   L1MutableChannelUnit: the k with the largest mean |W| over the convs and linears that
//     make the unit's channels (MMRazor's L1 norm), ties to the lowest index, recomputed
//     from the current weights whenever the choice is set. The same, by other importances:
//   L2MutableChannelUnit: the L2 norm of each filter;
//   FPGMMutableChannelUnit: each filter's summed distance to the others (FPGM, He et al.
//     2019: the filters nearest the geometric median are the most replaceable, pruned first);
//   BNScaleMutableChannelUnit: |gamma| of the unit's BatchNorms (network slimming);
//   TaylorMutableChannelUnit: each filter's first-order Taylor estimate of the loss change
//     when it is removed, (sum W * dL/dW)^2 (Molchanov et al. 2019), from the gradients of
//     the last backward pass (ItePruneAlgorithm computes one on the step's batch first).
//   OneShotMutableChannelUnit: a prefix whose width is one of `candidate_choices` (made
//     divisible and sorted, duplicates kept), sampled uniformly: weight-sharing width search;
//   SlimmableChannelUnit: a OneShot unit whose BatchNorms keep statistics and affine
//     parameters of their own at each candidate width (SwitchableBatchNorm2d).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "components/channel/channel_analyzer.h"
#include "engine/config.h"

namespace razor::channel {

struct MutableChannelUnitOptions {
  /// "ratio": a choice is a fraction of the channels in (0, 1]; "number": a channel count.
  std::string choice_mode = "number";
  int64_t divisor = 1;
  int64_t min_value = 1;
  double min_ratio = 0.9;
  /// GroupFisherChannelUnit's: what the Fisher information is divided by ("flops", "act",
  /// "none"), and whether units read by a linear are pruned.
  std::string normalization_type = "flops";
  bool mutate_linear = false;
  /// OneShot and Slimmable units': the widths to choose from, in choice_mode (null: the
  /// unit type's default).
  Json candidate_choices;

  /// From MMRazor's init args (num_channels, if given, must match the traced unit) for a unit
  /// of `unit_type` (whose defaults apply: OneShot units choose by ratio); `where` names the
  /// table in errors.
  static MutableChannelUnitOptions from(const Json& args, const std::string& where, int64_t num_channels,
                                        const std::string& unit_type = "SequentialMutableChannelUnit");
};

/// MMRazor's make_divisible: `value` rounded to a multiple of `divisor` (at least min_value,
/// and not below min_ratio * value).
int64_t make_divisible(double value, int64_t divisor, int64_t min_value, double min_ratio = 0.9);

class SequentialMutableChannelUnit {
 public:
  SequentialMutableChannelUnit(ChannelUnitSpec spec, MutableChannelUnitOptions options);
  virtual ~SequentialMutableChannelUnit() = default;

  /// "SequentialMutableChannelUnit", "L1MutableChannelUnit".
  virtual std::string type() const { return "SequentialMutableChannelUnit"; }
  const ChannelUnitSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  int64_t num_channels() const { return spec_.num_channels; }
  const MutableChannelUnitOptions& options() const { return options_; }

  /// The channels a choice keeps: a ratio in (0, 1] (max(1, int(C * ratio))) or a number in
  /// [1, C], then made divisible (at most C). An integer in ratio mode is an error (it would
  /// read as 1.0 or as one channel), as is anything out of range.
  int64_t width_of(const Json& choice) const;
  /// Sets the choice (checked as width_of does).
  virtual void set_choice(const Json& choice);
  /// Sets the width itself, the choice following it (width / C in ratio mode): for units
  /// whose channels an algorithm removes one by one (GroupFisher).
  void set_width(int64_t width);
  const Json& current_choice() const { return choice_; }
  int64_t width() const { return width_; }
  /// The full width, in this unit's mode (1.0 or C).
  virtual Json max_choice() const;
  /// The narrowest choice (1 channel, or the first candidate).
  virtual Json min_choice() const;
  /// A choice drawn from `generator`: a width uniform in [1, C], or a uniform candidate.
  virtual Json sample_choice(at::Generator& generator) const;

  /// What the unit changes in its ops once, after the mutator has made it (a slimmable unit:
  /// its BatchNorms' per-width copies).
  virtual void prepare_for_pruning() {}

  /// Which channels are kept at the current width: a bool tensor of num_channels.
  virtual torch::Tensor mask() const;

  /// MMRazor's init args of this unit (its config_template with_init_args).
  virtual Json init_args() const;

  /// The choice in the unit's mode that keeps `width` channels (width / C as a ratio).
  Json choice_of_width(int64_t width) const;

 private:
  ChannelUnitSpec spec_;
  MutableChannelUnitOptions options_;
  Json choice_;
  int64_t width_;
};

/// A unit that keeps its `width()` channels of largest importance, ties to the lowest index.
class ImportanceChannelUnit : public SequentialMutableChannelUnit {
 public:
  using SequentialMutableChannelUnit::SequentialMutableChannelUnit;
  /// One score per channel, from the current weights (float, on the CPU).
  virtual torch::Tensor importance() const = 0;
  /// Whether importance() reads the weights' gradients (a backward pass must come first).
  virtual bool needs_gradients() const { return false; }
  torch::Tensor mask() const override;

 protected:
  /// The filters of an output-side conv or linear, this unit's range of its weight flattened
  /// to [channels, fan_in], and the same rows of its gradient (undefined if it has none).
  using FilterScore = std::function<torch::Tensor(const torch::Tensor& filters, const torch::Tensor& gradients)>;
  /// The mean over the output-side convs and linears of `score` of their filters; an error
  /// naming `what` if no conv or linear makes the unit's channels.
  torch::Tensor mean_over_filters(const FilterScore& score, const char* what) const;
};

class L1MutableChannelUnit : public ImportanceChannelUnit {
 public:
  using ImportanceChannelUnit::ImportanceChannelUnit;
  std::string type() const override { return "L1MutableChannelUnit"; }
  /// mean over the output-side convs and linears of mean_{in, kh, kw} |W[c]|.
  torch::Tensor importance() const override;
};

class L2MutableChannelUnit : public ImportanceChannelUnit {
 public:
  using ImportanceChannelUnit::ImportanceChannelUnit;
  std::string type() const override { return "L2MutableChannelUnit"; }
  /// mean over the output-side convs and linears of ||W[c]||_2.
  torch::Tensor importance() const override;
};

class FPGMMutableChannelUnit : public ImportanceChannelUnit {
 public:
  using ImportanceChannelUnit::ImportanceChannelUnit;
  std::string type() const override { return "FPGMMutableChannelUnit"; }
  /// mean over the output-side convs and linears of sum_j ||W[c] - W[j]||_2.
  torch::Tensor importance() const override;
};

class BNScaleMutableChannelUnit : public ImportanceChannelUnit {
 public:
  using ImportanceChannelUnit::ImportanceChannelUnit;
  std::string type() const override { return "BNScaleMutableChannelUnit"; }
  /// mean over the output-side BatchNorms of |gamma[c]|.
  torch::Tensor importance() const override;
};

class TaylorMutableChannelUnit : public ImportanceChannelUnit {
 public:
  using ImportanceChannelUnit::ImportanceChannelUnit;
  std::string type() const override { return "TaylorMutableChannelUnit"; }
  /// mean over the output-side convs and linears of (sum_{in, kh, kw} W[c] * dL/dW[c])^2;
  /// an error naming the op if it has no gradient.
  torch::Tensor importance() const override;
  bool needs_gradients() const override { return true; }
};

/// MMRazor's OneShotMutableChannelUnit: the first k channels, k one of the candidates.
class OneShotMutableChannelUnit : public SequentialMutableChannelUnit {
 public:
  /// `candidate_choices` default to [0.5, 1.0] in ratio mode; each is made divisible as a
  /// choice is, then they are sorted (a ratio candidate is stored as its width / C).
  OneShotMutableChannelUnit(ChannelUnitSpec spec, MutableChannelUnitOptions options);
  std::string type() const override { return "OneShotMutableChannelUnit"; }

  const std::vector<Json>& candidate_choices() const { return candidates_; }
  /// Each candidate's width, in the same order.
  const std::vector<int64_t>& candidate_widths() const { return widths_; }
  /// The last (widest) candidate, and the first.
  Json max_choice() const override;
  Json min_choice() const override;
  /// A uniformly drawn candidate.
  Json sample_choice(at::Generator& generator) const override;
  Json init_args() const override;

  /// A choice must be one of the candidates (matched by its width, so that a ratio need not
  /// be bit-equal); anything else is an error listing them.
  void set_choice(const Json& choice) override;

 private:
  std::vector<Json> candidates_;
  std::vector<int64_t> widths_;
  /// Each candidate as the config gave it.
  std::vector<double> given_;
};

/// MMRazor's SlimmableChannelUnit: a OneShot unit (number mode by default) whose BatchNorms
/// get one BatchNorm per candidate width narrower than the full one (SwitchableBatchNorm2d),
/// so every width of a slimmable network normalises with statistics of its own.
class SlimmableChannelUnit : public OneShotMutableChannelUnit {
 public:
  using OneShotMutableChannelUnit::OneShotMutableChannelUnit;
  std::string type() const override { return "SlimmableChannelUnit"; }
  /// Gives each output-side BatchNorm its per-width copies; a BatchNorm that the unit covers
  /// only in part (a concat's slice) is an error naming it.
  void prepare_for_pruning() override;
};

/// MMRazor's DMCPChannelUnit: a sequential unit (number mode, min_ratio 0.5 by default) whose
/// width DMCPChannelMutator samples from its groups (components/mutators/dmcp_channel_mutator.h).
class DMCPChannelUnit : public SequentialMutableChannelUnit {
 public:
  using SequentialMutableChannelUnit::SequentialMutableChannelUnit;
  std::string type() const override { return "DMCPChannelUnit"; }
};

/// A unit of MMRazor's type name ("SequentialMutableChannelUnit", "L1MutableChannelUnit",
/// "OneShotMutableChannelUnit", "SlimmableChannelUnit", "GroupFisherChannelUnit", and
/// razor's L2, FPGM and BNScale units); an unknown type is an error listing the known ones.
std::unique_ptr<SequentialMutableChannelUnit> make_unit(const std::string& type, ChannelUnitSpec spec,
                                                        MutableChannelUnitOptions options,
                                                        const std::string& where);

}  // namespace razor::channel
