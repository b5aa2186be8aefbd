#include "apps/analyze.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include <spdlog/spdlog.h>

#include "algorithms/base_algorithm.h"
#include "algorithms/nas/nas_algorithm.h"
#include "components/mutators/fix_subnet.h"
#include "datasets/data_loader.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/error.h"
#include "engine/runner.h"
#include "engine/strings.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::vector<std::string> sizes;
  for (int64_t v : shape) sizes.push_back(std::to_string(v));
  return "[" + join(sizes, ", ") + "]";
}

std::string millions(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.3f", value / 1e6);
  return text;
}

/// The first estimator_cfg in the config (a search's train_cfg, or a test_cfg), read as the
/// estimator would read it, with the key that holds it.
std::optional<std::pair<ResourceEstimatorOptions, std::string>> config_estimator(
    const std::shared_ptr<const Config>& config, bool* has_input_shape) {
  Args root(config->tree, "", config);
  for (const char* cfg : {"train_cfg", "test_cfg"}) {
    const Json& tree = config->tree;
    if (!tree.contains(cfg) || !tree[cfg].is_object() || !tree[cfg].contains("estimator_cfg")) {
      continue;
    }
    Args loop = root.sub(cfg);
    Args estimator = loop.sub("estimator_cfg");
    const Json& table = estimator.table();
    *has_input_shape =
        table.contains("input_shape") ||
        (table.contains("flops_params_cfg") && table["flops_params_cfg"].is_object() &&
         table["flops_params_cfg"].contains("input_shape"));
    return std::make_pair(estimator_options_from(estimator), std::string(cfg) + ".estimator_cfg");
  }
  return std::nullopt;
}

/// 1 x C x H x W of one sample of the first dataloader the config has (test, val, train),
/// read through the dataset's pipeline without starting the loader's workers.
std::optional<std::pair<std::vector<int64_t>, std::string>> sample_shape(Runner& runner) {
  const Json& tree = runner.config().tree;
  for (const char* key : {"test_dataloader", "val_dataloader", "train_dataloader"}) {
    if (!tree.contains(key)) continue;
    DataLoader& loader = key == std::string("test_dataloader")  ? runner.test_dataloader()
                         : key == std::string("val_dataloader") ? runner.val_dataloader()
                                                                : runner.train_dataloader();
    if (auto* threaded = dynamic_cast<data::ThreadedDataLoader*>(&loader)) {
      RAZOR_CHECK(threaded->dataset().size() > 0, runner.config().file, ": ", key,
                  " has an empty dataset; pass --input-shape N C H W");
      std::mt19937_64 rng(runner.seed());
      const data::Sample sample = threaded->dataset().load(0, rng);
      return std::make_pair(
          std::vector<int64_t>{1, sample.image.channels(), sample.image.rows, sample.image.cols},
          std::string(key));
    }
    loader.start();
    auto batch = loader.next();
    RAZOR_CHECK(batch && batch->inputs.dim() == 4, runner.config().file, ": ", key,
                " gave no N x C x H x W batch; pass --input-shape N C H W");
    auto shape = batch->inputs.sizes().vec();
    shape[0] = 1;
    return std::make_pair(shape, std::string(key));
  }
  return std::nullopt;
}

constexpr const char* kNoShape = "the config has no train_cfg.estimator_cfg.input_shape and no dataloader";

}  // namespace

std::pair<std::vector<int64_t>, std::string> model_input_shape(Runner& runner) {
  const auto config = std::make_shared<const Config>(runner.config());
  bool has_shape = false;
  if (auto from_config = config_estimator(config, &has_shape); from_config && has_shape) {
    return {from_config->first.input_shape, from_config->second + ".input_shape"};
  }
  auto sampled = sample_shape(runner);
  RAZOR_CHECK(sampled, runner.config().file, ": cannot tell the model's input shape: ", kNoShape);
  return {sampled->first, "one sample of " + sampled->second};
}

namespace {

/// The config's runner and the input shape to trace, as both analyses need them.
struct Prepared {
  std::unique_ptr<Runner> runner;
  std::vector<int64_t> input_shape;
  std::string input_shape_source;
  ResourceEstimatorOptions estimator_options;
};

Prepared prepare(const AnalyzeOptions& options) {
  Prepared prepared;
  if (!options.input_shape.empty()) {
    bool ok = options.input_shape.size() == 4;
    for (int64_t v : options.input_shape) ok = ok && v > 0;
    RAZOR_CHECK(ok, "--input-shape: expected 4 positive integers N C H W, got ",
                shape_text(options.input_shape));
    prepared.input_shape = options.input_shape;
    prepared.input_shape_source = "--input-shape";
  }

  auto config = std::make_shared<Config>(load_config(options.config_file));
  apply_overrides(*config, options.overrides);
  bool config_has_shape = false;
  if (auto from_config = config_estimator(config, &config_has_shape)) {
    prepared.estimator_options = from_config->first;
    if (prepared.input_shape.empty() && config_has_shape) {
      prepared.input_shape = prepared.estimator_options.input_shape;
      prepared.input_shape_source = from_config->second + ".input_shape";
    }
  }

  RunnerOptions runner_options;
  runner_options.write_files = false;  // analysing writes no work dir
  runner_options.log_level = "warn";   // stdout is the table
  runner_options.launcher = "none";
  runner_options.device = options.device;
  prepared.runner = std::make_unique<Runner>(config, runner_options);
  Runner& runner = *prepared.runner;
  if (prepared.input_shape.empty()) {
    auto sampled = sample_shape(runner);
    RAZOR_CHECK(sampled, config->file, ": cannot tell the model's input shape: ", kNoShape,
                "; pass --input-shape N C H W");
    prepared.input_shape = sampled->first;
    prepared.input_shape_source = "one sample of " + sampled->second;
  }

  Model& model = runner.model();
  if (!options.checkpoint.empty()) {
    RAZOR_CHECK(fs::exists(options.checkpoint), "checkpoint not found: ", options.checkpoint);
    runner.load_weights(options.checkpoint, /*require_all=*/true);
  }
  if (!options.subnet.empty()) {
    auto* nas = dynamic_cast<NasAlgorithm*>(&model);
    RAZOR_CHECK(nas, "--subnet ", options.subnet,
                ": the config's model is not a NAS supernet (model.type = \"SPOS\", ...)");
    nas->fix_subnet(read_subnet_file(options.subnet), options.subnet);
  }
  return prepared;
}

}  // namespace

Analysis analyze(const AnalyzeOptions& options) {
  Prepared prepared = prepare(options);
  Analysis analysis;
  analysis.input_shape = prepared.input_shape;
  analysis.input_shape_source = prepared.input_shape_source;
  prepared.estimator_options.with_input_shape(analysis.input_shape).with_units("M");
  ResourceEstimator estimator(prepared.estimator_options);
  analysis.report = estimator.estimate_report(prepared.runner->model());
  return analysis;
}

ChannelUnitsAnalysis analyze_channel_units(const AnalyzeOptions& options) {
  Prepared prepared = prepare(options);
  ChannelUnitsAnalysis units;
  units.input_shape = prepared.input_shape;
  units.input_shape_source = prepared.input_shape_source;
  // Units are the architecture's, named from it, as MMRazor's mutators name them.
  Model& model = prepared.runner->model();
  auto* algorithm = dynamic_cast<BaseAlgorithm*>(&model);
  Model& architecture = algorithm ? algorithm->architecture() : model;
  channel::ChannelAnalyzerOptions analyzer_options;
  analyzer_options.demo_input = units.input_shape;
  units.analysis = channel::ChannelAnalyzer(analyzer_options)
                       .analyze(architecture, [&](const torch::Tensor& x) { return architecture.forward_tensor(x); });
  for (const auto& warning : units.analysis.warnings) spdlog::warn("{}", warning);
  return units;
}

void print_analysis(const Analysis& analysis, std::ostream& out) {
  const std::vector<std::string> header = {"Name", "Type", "Output shape", "FLOPs (M)",
                                           "Params (M)"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& layer : analysis.report.layers) {
    std::string type = layer.type;
    if (layer.calls > 1) type += " (x" + std::to_string(layer.calls) + ")";
    rows.push_back({layer.path, type, shape_text(layer.output_shape), millions(layer.flops),
                    millions(static_cast<double>(layer.params))});
  }
  std::vector<size_t> widths(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    widths[c] = header[c].size();
    for (const auto& row : rows) widths[c] = std::max(widths[c], row[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      // Names and types to the left, numbers to the right.
      const std::string pad(widths[c] - row[c].size(), ' ');
      line += c < 3 ? row[c] + pad : pad + row[c];
      if (c + 1 < row.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  out << "Input shape: " << shape_text(analysis.input_shape) << " (" << analysis.input_shape_source
      << ")\n";
  print_row(header);
  size_t total_width = 2 * (widths.size() - 1);
  for (size_t w : widths) total_width += w;
  out << std::string(total_width, '-') << "\n";
  for (const auto& row : rows) print_row(row);
  out << std::string(total_width, '-') << "\n";
  char text[128];
  std::snprintf(text, sizeof(text), "FLOPs: %.3f M\nParams: %.3f M\n", analysis.report.totals.flops,
                analysis.report.totals.params);
  out << text;
  if (analysis.report.totals.latency > 0) {
    std::snprintf(text, sizeof(text), "Latency: %.3f ms\n", analysis.report.totals.latency);
    out << text;
  }
}

namespace {

std::string member_text(const channel::UnitChannel& c, int64_t num_channels) {
  std::string text = c.name;
  if (c.start != 0 || c.end != num_channels * c.expand_ratio) {
    text += "[" + std::to_string(c.start) + ":" + std::to_string(c.end) + "]";
  }
  if (c.expand_ratio > 1) text += " (x" + std::to_string(c.expand_ratio) + ")";
  return text;
}

std::string members_text(const std::vector<channel::UnitChannel>& channels, int64_t num_channels) {
  std::vector<std::string> parts;
  for (const auto& c : channels) parts.push_back(member_text(c, num_channels));
  return parts.empty() ? "-" : join(parts, ", ");
}

}  // namespace

void print_channel_units(const ChannelUnitsAnalysis& units, std::ostream& out) {
  const auto& analysis = units.analysis;
  out << "Input shape: " << shape_text(units.input_shape) << " (" << units.input_shape_source << ")\n";
  out << "Channel units: " << analysis.units.size() << " prunable, " << analysis.frozen.size() << " frozen\n";
  size_t width = 4;
  for (const auto& u : analysis.units) width = std::max(width, u.name.size());
  char line[64];
  std::snprintf(line, sizeof(line), "  %8s  ", "Channels");
  out << "Unit" << std::string(width - 4, ' ') << line << "Members\n";
  for (const auto& u : analysis.units) {
    std::snprintf(line, sizeof(line), "  %8lld  ", static_cast<long long>(u.num_channels));
    const std::string indent(width + 12, ' ');
    out << u.name << std::string(width - u.name.size(), ' ') << line
        << "out: " << members_text(u.output_related, u.num_channels) << "\n"
        << indent << "in:  " << members_text(u.input_related, u.num_channels) << "\n";
  }
  if (!analysis.frozen.empty()) {
    out << "Frozen (not prunable):\n";
    for (const auto& u : analysis.frozen) out << "  " << u.name << ": " << u.frozen_because << "\n";
  }
}

Json channel_units_json(const channel::ChannelAnalysis& analysis, const AnalyzeOptions& options) {
  if (options.choice_only) return channel::choice_template(analysis);
  return channel::units_config(analysis, options.with_channels, options.with_init_args);
}

int run_analyze(const AnalyzeOptions& options) {
  if (!options.channel_units) {
    RAZOR_CHECK(options.units_file.empty() && !options.with_channels && !options.with_init_args &&
                    !options.choice_only,
                "-o, -c, -i and --choice go with --channel-units");
    print_analysis(analyze(options), std::cout);
    return 0;
  }
  const ChannelUnitsAnalysis units = analyze_channel_units(options);
  print_channel_units(units, std::cout);
  if (!options.units_file.empty()) {
    write_file_atomically(options.units_file, channel_units_json(units.analysis, options).dump(4) + "\n");
    std::cout << "Wrote " << units.analysis.units.size() << " units to " << options.units_file << "\n";
  }
  return 0;
}

}  // namespace razor
