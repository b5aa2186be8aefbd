#pragma once
// Channel units: the groups of channels that must be pruned together, found on the traced op
// graph as MMRazor's ChannelAnalyzer finds them. Every value's channels are followed through
// the ops by each op's channel rule (components/nn/op_description.h): a plain conv or linear
// makes channels of its own, norms, activations, pools and depthwise convs pass theirs on, an
// add binds its inputs' into one, a concat lays them side by side, a flatten widens each
// channel to its spatial size of features. The channels that travel together, at the same
// offsets in the same ops, form one unit; the ops with state per channel (convs, linears,
// norms) are its members, on the output side (they make the channels) and the input side
// (they read them).
//
// A unit is prunable when ops with weights make its channels and read them, and none of its
// channels is the model's input or output, or passes through an op the analyser does not
// follow (those freeze, with a warning naming the op, never guess).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "components/nn/dataflow.h"
#include "engine/config.h"

namespace razor::channel {

/// One op's part in a unit: its output (or input) channels [start, end), each of the unit's
/// channels `expand_ratio` times over (a Linear reading a flattened feature map).
struct UnitChannel {
  /// The op's name relative to the analysed model ("backbone.layer1.0.conv1").
  std::string name;
  nn::Module* module = nullptr;
  int64_t start = 0;
  int64_t end = 0;
  int64_t expand_ratio = 1;
  bool is_output = true;
};

struct ChannelUnitSpec {
  /// MMRazor's unit name: the first member, its range and the unit's width,
  /// "backbone.conv1_(0, 16)_16".
  std::string name;
  int64_t num_channels = 0;
  /// In graph order.
  std::vector<UnitChannel> output_related;
  std::vector<UnitChannel> input_related;
  /// Empty for a prunable unit; else why it is frozen.
  std::string frozen_because;
};

struct ChannelAnalysis {
  /// The prunable units, in graph order (where their channels first appear).
  std::vector<ChannelUnitSpec> units;
  /// The units that are not prunable, with the reason.
  std::vector<ChannelUnitSpec> frozen;
  /// One line per kind of op the analyser could not follow, naming where it was called.
  std::vector<std::string> warnings;
};

/// The units of a traced graph. `names` gives each op's name (default: the node's path).
ChannelAnalysis find_channel_units(
    const nn::Dataflow& flow,
    const std::function<std::string(const nn::DataflowNode&)>& names = nullptr);

struct ChannelAnalyzerOptions {
  /// N C H W of the demo input traced (MMRazor's default; razor's commands pass the shape the
  /// estimator or the dataloader gives).
  std::vector<int64_t> demo_input = {1, 3, 224, 224};
  /// MMRazor's "BackwardTracer" or "FxTracer": razor has one tracer for both names.
  std::string tracer_type = "BackwardTracer";
};

/// MMRazor's ChannelAnalyzer (`parse_cfg = { type = "ChannelAnalyzer", ... }`).
class ChannelAnalyzer {
 public:
  explicit ChannelAnalyzer(ChannelAnalyzerOptions options = {});
  /// Reads `demo_input` and `tracer_type` from a parse_cfg table (at `where` in `file`).
  static ChannelAnalyzerOptions options_from(const Json& table, const std::string& where);

  /// Traces `forward` on a demo input (eval mode, no grad) and forms the units of `root`'s
  /// ops, named relative to `root`; then runs each unit at a random narrower width, and
  /// freezes those whose forward fails or changes the output's shape. Throws when no unit is
  /// prunable.
  ChannelAnalysis analyze(torch::nn::Module& root,
                          const std::function<torch::Tensor(const torch::Tensor&)>& forward) const;

  const ChannelAnalyzerOptions& options() const { return options_; }

 private:
  ChannelAnalyzerOptions options_;
};

/// MMRazor's ChannelMutator.config_template: {unit: {"init_args": {...}, "channels":
/// {"input_related": [...], "output_related": [...]}, "choice": 1.0}}, each part optional as
/// get_channel_units.py's -i and -c. The init args are those of MMRazor's default unit
/// (L1MutableChannelUnit in ratio mode); the choice is the full width.
Json units_config(const ChannelAnalysis& analysis, bool with_channels, bool with_init_args);
/// get_channel_units.py --choice: {unit: 1.0}.
Json choice_template(const ChannelAnalysis& analysis);

}  // namespace razor::channel
