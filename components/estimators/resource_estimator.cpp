#include "components/estimators/resource_estimator.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "components/nn/module.h"
#include "components/nn/op_description.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace {

const std::vector<std::string>& unit_names() {
  static const std::vector<std::string> names = {"G", "M", "K", ""};
  return names;
}

bool known_unit(const std::string& unit) {
  const auto& names = unit_names();
  return std::find(names.begin(), names.end(), unit) != names.end();
}

std::vector<int64_t> read_input_shape(Args& args, const std::string& key) {
  const Json& value = args.raw(key);
  bool ok = value.is_array() && value.size() == 4;
  for (size_t i = 0; ok && i < value.size(); ++i) {
    ok = value[i].is_number_integer() && value[i].get<int64_t>() > 0;
  }
  if (!ok) args.fail(key, "expected 4 positive integers [N, C, H, W], got " + value.dump());
  return value.get<std::vector<int64_t>>();
}

std::string read_units(Args& args, const std::string& key) {
  const Json& value = args.raw(key);
  std::string unit;
  if (value.is_object()) {
    // MMRazor's units = dict(flops='M', params='M', latency='ms').
    Args table = args.sub(key);
    const std::string flops = table.get("flops", "M");
    const std::string params = table.get("params", "M");
    const std::string latency = table.get("latency", "ms");
    table.finish();
    if (flops != params) {
      args.fail(key, "razor counts FLOPs and params in one unit; got flops \"" + flops +
                         "\" and params \"" + params + "\"");
    }
    if (latency != "ms")
      args.fail(key, "latency is measured in \"ms\" only, got \"" + latency + "\"");
    unit = flops;
  } else if (value.is_string()) {
    unit = value.get<std::string>();
  } else {
    args.fail(key, "expected \"G\", \"M\", \"K\" or \"\", got " + value.dump());
  }
  if (!known_unit(unit)) {
    args.fail(key, "expected \"G\", \"M\", \"K\" or \"\" (raw counts), got \"" + unit + "\"");
  }
  return unit;
}

/// How an op is counted: its description's rule (MMRazor picks a counter by class name).
nn::CostRule cost_rule_of(const nn::Module& module) {
  const nn::OpDescription* d = module.description();
  return d ? d->cost : nullptr;
}

/// Removes the counting hooks and restores every module's train/eval flag, also when the
/// forward throws.
class CountingScope {
 public:
  explicit CountingScope(torch::nn::Module& root)
      : root_(root), root_training_(root.is_training()) {
    bool any_training = root_training_;
    for (const auto& module : root.modules(/*include_self=*/false)) {
      modes_.emplace_back(module, module->is_training());
      any_training = any_training || module->is_training();
    }
    if (!any_training) modes_.clear();  // already all in eval: nothing to restore
    restore_ = any_training;
    root.eval();
  }
  ~CountingScope() {
    remove_hooks();
    if (!restore_) return;
    // Pre-order, so that a child's own flag (a frozen teacher in eval) wins over its parent's
    // recursive train().
    root_.train(root_training_);
    for (auto& item : modes_) {
      if (item.first->is_training() != item.second) item.first->train(item.second);
    }
  }
  CountingScope(const CountingScope&) = delete;
  CountingScope& operator=(const CountingScope&) = delete;

  void add(nn::HookHandle handle) { hooks_.push_back(std::move(handle)); }
  void remove_hooks() {
    for (auto& handle : hooks_) handle.remove();
    hooks_.clear();
  }

 private:
  torch::nn::Module& root_;
  bool root_training_;
  bool restore_ = false;
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> modes_;
  std::vector<nn::HookHandle> hooks_;
};

torch::Tensor zero_input(torch::nn::Module& root, const std::vector<int64_t>& shape) {
  auto options = torch::TensorOptions().dtype(torch::kFloat);
  auto memory_format = torch::MemoryFormat::Contiguous;
  const auto params = root.parameters();
  if (!params.empty()) {
    options = options.dtype(params.front().scalar_type()).device(params.front().device());
  }
  // A model the runner laid out channels_last gets its input the same way (as to_device does).
  for (const auto& p : params) {
    if (p.dim() != 4) continue;
    if (p.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) {
      memory_format = torch::MemoryFormat::ChannelsLast;
    }
    break;
  }
  return torch::zeros(shape, options).contiguous(memory_format);
}

}  // namespace

void check_estimator_options(const ResourceEstimatorOptions& options, const std::string& where) {
  bool shape_ok = options.input_shape.size() == 4;
  std::vector<std::string> sizes;
  for (int64_t v : options.input_shape) {
    shape_ok = shape_ok && v > 0;
    sizes.push_back(std::to_string(v));
  }
  RAZOR_CHECK(shape_ok, where, ".input_shape: expected 4 positive integers [N, C, H, W], got [",
              join(sizes, ", "), "]");
  RAZOR_CHECK(known_unit(options.units), where,
              ".units: expected \"G\", \"M\", \"K\" or \"\", got \"", options.units, "\"");
  RAZOR_CHECK(options.latency_warmup >= 0, where, ".latency_warmup: must be >= 0, got ",
              options.latency_warmup);
  RAZOR_CHECK(options.latency_iters >= 1, where, ".latency_iters: must be >= 1, got ",
              options.latency_iters);
}

ResourceEstimatorOptions estimator_options_from(Args& args) {
  ResourceEstimatorOptions options;
  const std::string type = args.get("type", "ResourceEstimator");
  if (type != "ResourceEstimator") {
    args.fail("type", "unknown estimator type \"" + type + "\"; razor has \"ResourceEstimator\"");
  }
  if (args.has("input_shape")) options.input_shape = read_input_shape(args, "input_shape");
  if (args.has("units")) options.units = read_units(args, "units");
  if (args.has("flops_params_cfg")) {
    // MMRazor merges flops_params_cfg over the estimator's own input_shape and units.
    Args flops = args.sub("flops_params_cfg");
    if (flops.has("input_shape")) options.input_shape = read_input_shape(flops, "input_shape");
    if (flops.has("units")) options.units = read_units(flops, "units");
    for (const char* key : {"input_shape", "units"}) flops.accept(key);
    flops.finish();
  }
  if (args.has("latency_cfg")) {
    Args latency = args.sub("latency_cfg");
    options.measure_latency = true;
    options.latency_iters = latency.get<int64_t>("max_iter", options.latency_iters);
    if (options.latency_iters < 1) latency.fail("max_iter", "must be >= 1");
    options.latency_warmup = latency.get<int64_t>("num_warmup", options.latency_warmup);
    if (options.latency_warmup < 0) latency.fail("num_warmup", "must be >= 0");
    latency.finish();
  }
  // Known keys, so that a typo's message names the nearest one even when it was absent.
  for (const char* key : {"input_shape", "units", "flops_params_cfg", "latency_cfg"}) {
    args.accept(key);
  }
  args.finish();
  return options;
}

ResourceEstimator::ResourceEstimator(ResourceEstimatorOptions options)
    : options_(std::move(options)) {
  check_estimator_options(options_, "estimator");
}

double ResourceEstimator::convert(double raw) const {
  double scale = 0;
  if (options_.units == "G") scale = 1e9;
  if (options_.units == "M") scale = 1e6;
  if (options_.units == "K") scale = 1e3;
  if (scale == 0) return raw;
  // Python's round(x, 3) rounds the exact binary value, as printf does; x*1000 rounded to an
  // integer could differ from it by one in the last place.
  char text[64];
  std::snprintf(text, sizeof(text), "%.3f", raw / scale);
  return std::strtod(text, nullptr);
}

Resources ResourceEstimator::estimate(Model& model) { return estimate_report(model).totals; }

ResourceReport ResourceEstimator::estimate_report(Model& model) {
  return estimate_report(model,
                         [&model](const torch::Tensor& x) { return model.forward_tensor(x); });
}

ResourceReport ResourceEstimator::estimate_report(
    torch::nn::Module& root, const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  struct Slot {
    nn::Module* module;
    nn::CostRule cost;
  };
  std::vector<Slot> slots;
  ResourceReport report;
  CountingScope scope(root);
  // named_modules' keys are the paths assign_paths would give from this root; reading them
  // here leaves the modules' own path() (set relative to whatever root owns them) alone.
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    auto* module = dynamic_cast<nn::Module*>(item.value().get());
    if (!module) continue;
    nn::CostRule cost = cost_rule_of(*module);
    // Containers count nothing themselves; their ops are hooked one by one.
    if (!cost && !module->children().empty()) continue;
    LayerResources row;
    row.path = item.key();
    row.type = module->name();
    report.layers.push_back(std::move(row));
    slots.push_back({module, std::move(cost)});
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const nn::CostRule cost = slots[i].cost;
    LayerResources* row = &report.layers[i];
    scope.add(slots[i].module->add_forward_hook(
        [cost, row](nn::Module& module, const nn::Inputs& inputs, torch::Tensor& output) {
          if (row->calls++ == 0) row->output_shape = output.sizes().vec();
          if (!cost) return;
          const nn::OpCost c = cost(module, inputs, output);
          row->flops += c.flops;
          row->params += c.params;
        }));
  }

  torch::NoGradGuard no_grad;
  const torch::Tensor input = zero_input(root, options_.input_shape);
  forward(input);
  scope.remove_hooks();

  // MMRazor divides the FLOPs (not the params) by its batch counter: the input's batch.
  const double batch = static_cast<double>(options_.input_shape[0]);
  std::vector<LayerResources> ran;
  for (auto& row : report.layers) {
    if (row.calls == 0) continue;  // not on the current path (or never called in forward)
    row.flops /= batch;
    report.raw_flops += row.flops;
    report.raw_params += row.params;
    ran.push_back(std::move(row));
  }
  report.layers = std::move(ran);
  report.totals.flops = convert(report.raw_flops);
  report.totals.params = convert(static_cast<double>(report.raw_params));

  if (options_.measure_latency) {
    const bool cuda = input.is_cuda();
    for (int64_t i = 0; i < options_.latency_warmup; ++i) forward(input);
    if (cuda) torch::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < options_.latency_iters; ++i) forward(input);
    if (cuda) torch::cuda::synchronize();
    const std::chrono::duration<double, std::milli> elapsed =
        std::chrono::steady_clock::now() - start;
    report.totals.latency = elapsed.count() / static_cast<double>(options_.latency_iters);
  }
  return report;
}

}  // namespace razor
