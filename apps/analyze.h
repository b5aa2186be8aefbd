#pragma once
// `razor analyze`: FLOPs and params of a config's model, per op and in total, counted as
// MMRazor's ResourceEstimator counts them (components/estimators/resource_estimator.h); with
// --channel-units, the model's channel units as MMRazor's ChannelAnalyzer forms them
// (components/channel/channel_analyzer.h) and tools/pruning/get_channel_units.py writes them.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "components/channel/channel_analyzer.h"
#include "components/estimators/resource_estimator.h"

namespace razor {

struct AnalyzeOptions {
  /// The config (TOML) whose `model` is analysed.
  std::string config_file;
  /// Weights to load first ("" = as initialised); FLOPs and params do not depend on them.
  std::string checkpoint;
  /// --cfg-options a.b.c=VALUE overrides.
  std::vector<std::string> overrides;
  /// N C H W of the input (empty: the config's estimator_cfg, else one dataset sample).
  std::vector<int64_t> input_shape;
  /// A subnet YAML to fix a NAS supernet to before counting ("" = the supernet as built).
  std::string subnet;
  /// Overrides the config's device (latency is measured there).
  std::optional<std::string> device;

  /// --channel-units: the channel units instead of FLOPs and params.
  bool channel_units = false;
  /// -o: where the units' JSON goes ("" = none).
  std::string units_file;
  /// -c, -i, --choice: get_channel_units.py's parts of that JSON.
  bool with_channels = false;
  bool with_init_args = false;
  bool choice_only = false;
};

struct Analysis {
  /// The input shape counted, and where it came from ("--input-shape", a config key or a
  /// dataloader).
  std::vector<int64_t> input_shape;
  std::string input_shape_source;
  /// In M (FLOPs and params) and ms.
  ResourceReport report;
};

/// Builds the model from the config (and checkpoint) and counts it.
Analysis analyze(const AnalyzeOptions& options);

/// The per-op table and the totals ("FLOPs: X M", "Params: Y M").
void print_analysis(const Analysis& analysis, std::ostream& out);

struct ChannelUnitsAnalysis {
  std::vector<int64_t> input_shape;
  std::string input_shape_source;
  channel::ChannelAnalysis analysis;
};

/// Builds the model from the config and finds its architecture's channel units.
ChannelUnitsAnalysis analyze_channel_units(const AnalyzeOptions& options);

/// The unit table: each prunable unit with its width and members, then the frozen ones.
void print_channel_units(const ChannelUnitsAnalysis& units, std::ostream& out);

/// The JSON of get_channel_units.py for these options (-c, -i, --choice).
Json channel_units_json(const channel::ChannelAnalysis& analysis, const AnalyzeOptions& options);

/// analyze (or analyze_channel_units) + print to stdout; returns the exit code.
int run_analyze(const AnalyzeOptions& options);

class Runner;
/// 1 x C x H x W of what the model of `runner`'s config takes, and where that was read: the
/// config's estimator_cfg input_shape, else one sample of its first dataloader (test, val,
/// train). A config with neither is an error naming it.
std::pair<std::vector<int64_t>, std::string> model_input_shape(Runner& runner);

}  // namespace razor
