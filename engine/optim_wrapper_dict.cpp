#include "engine/optim_wrapper_dict.h"

#include <algorithm>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace {

/// The optimisers of a dict as one torch optimiser with no param groups of its own, so that
/// checkpoints save (and resume restores) every optimiser's state, each in a sub-archive
/// named after its wrapper, through the single-optimiser path.
class OptimizerDict : public torch::optim::Optimizer {
 public:
  explicit OptimizerDict(std::vector<OptimWrapperDict::Item> wrappers)
      : torch::optim::Optimizer(std::vector<torch::optim::OptimizerParamGroup>{},
                                std::make_unique<torch::optim::OptimizerOptions>()),
        wrappers_(std::move(wrappers)) {}

  torch::Tensor step(LossClosure) override {
    for (auto& item : wrappers_) item.second->optimizer().step();
    return {};
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    for (const auto& item : wrappers_) {
      torch::serialize::OutputArchive child;
      item.second->optimizer().save(child);
      archive.write(item.first, child);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    for (auto& item : wrappers_) {
      torch::serialize::InputArchive child;
      RAZOR_CHECK(archive.try_read(item.first, child), "the saved optimizer state has no optimiser \"",
                  item.first, "\" (it was saved with other optim_wrapper tables)");
      item.second->optimizer().load(child);
    }
  }

 private:
  std::vector<OptimWrapperDict::Item> wrappers_;
};

std::vector<torch::Tensor> all_parameters(const std::vector<OptimWrapperDict::Item>& wrappers) {
  std::vector<torch::Tensor> out;
  for (const auto& item : wrappers) {
    out.insert(out.end(), item.second->parameters().begin(), item.second->parameters().end());
  }
  return out;
}

[[noreturn]] void single_optimiser_error(const std::vector<std::string>& names, const char* operation) {
  throw config_error("optim_wrapper holds several optimisers (", join(names, ", "), "): ", operation,
                     " needs the model to pick one. A model trained with a single optimiser takes an "
                     "optim_wrapper without constructor = \"", kSeparateOptimWrapperConstructor, "\"");
}

}  // namespace

OptimWrapperDict::OptimWrapperDict(std::vector<Item> wrappers)
    : OptimWrapper(std::make_shared<OptimizerDict>(wrappers), all_parameters(wrappers)),
      wrappers_(std::move(wrappers)) {
  RAZOR_ASSERT(!wrappers_.empty());
}

OptimWrapper& OptimWrapperDict::at(const std::string& name) const {
  for (const auto& item : wrappers_) {
    if (item.first == name) return *item.second;
  }
  throw config_error("optim_wrapper has no optimiser \"", name, "\"", did_you_mean(name, names()),
                     " (it has ", join(names(), ", "), ")");
}

bool OptimWrapperDict::contains(const std::string& name) const {
  return std::any_of(wrappers_.begin(), wrappers_.end(), [&](const Item& item) { return item.first == name; });
}

std::vector<std::string> OptimWrapperDict::names() const {
  std::vector<std::string> out;
  for (const auto& item : wrappers_) out.push_back(item.first);
  return out;
}

void OptimWrapperDict::update_params(const torch::Tensor&) { single_optimiser_error(names(), "update_params"); }
void OptimWrapperDict::backward(const torch::Tensor&, bool) { single_optimiser_error(names(), "backward"); }
void OptimWrapperDict::step() { single_optimiser_error(names(), "step"); }

void OptimWrapperDict::zero_grad() {
  for (auto& item : wrappers_) item.second->zero_grad();
}

void OptimWrapperDict::initialize_count_status(int64_t inner_count, int64_t max_counts) {
  for (auto& item : wrappers_) item.second->initialize_count_status(inner_count, max_counts);
}

std::vector<double> OptimWrapperDict::get(const std::string& name) const {
  std::vector<double> out;
  for (const auto& item : wrappers_) {
    const auto values = item.second->get(name);
    out.insert(out.end(), values.begin(), values.end());
  }
  return out;
}

void OptimWrapperDict::set(const std::string& name, size_t group, double value) {
  for (auto& item : wrappers_) {
    const size_t groups = item.second->num_groups();
    if (group < groups) return item.second->set(name, group, value);
    group -= groups;
  }
  RAZOR_ASSERT(false && "param group index out of range");
}

size_t OptimWrapperDict::num_groups() const {
  size_t total = 0;
  for (const auto& item : wrappers_) total += item.second->num_groups();
  return total;
}

std::shared_ptr<OptimWrapperDict> build_optim_wrapper_dict(Args& args, torch::nn::Module& model) {
  args.accept("constructor");
  const auto children = model.named_children();
  std::vector<OptimWrapperDict::Item> wrappers;
  for (const auto& item : args.table().items()) {
    const std::string& key = item.key();
    if (key == "constructor") continue;
    const auto* child = children.find(key);
    if (!child) {
      args.fail(key, "the model has no child module \"" + key + "\"" + did_you_mean(key, children.keys()) +
                         " (children: " + join(children.keys(), ", ") + "). With constructor = \"" +
                         kSeparateOptimWrapperConstructor +
                         "\" every other key names a child module and holds its own optim_wrapper table "
                         "(replace a base config's optim_wrapper with _delete_ = true)");
    }
    Args child_args = args.sub(key);
    if (child_args.has("constructor")) child_args.fail("constructor", "optim wrapper dicts do not nest");
    wrappers.emplace_back(key, build_optim_wrapper(child_args, **child));
  }
  if (wrappers.empty()) {
    args.fail("constructor", std::string(kSeparateOptimWrapperConstructor) +
                                 " needs one optim_wrapper table per child module to optimise, e.g. "
                                 "architecture = { optimizer = { type = \"SGD\", lr = 0.1 } }");
  }
  args.finish();
  return std::make_shared<OptimWrapperDict>(std::move(wrappers));
}

void check_optim_wrapper_names(Args& args, const std::vector<std::string>& names,
                               const std::string& model_type) {
  const bool separate = args.get("constructor", kDefaultOptimWrapperConstructor) == kSeparateOptimWrapperConstructor;
  const std::string model = "model type \"" + model_type + "\"";
  if (names.empty()) {
    if (separate) {
      args.fail("constructor", std::string("\"") + kSeparateOptimWrapperConstructor +
                                   "\" builds one optimiser per child module, but " + model +
                                   " trains with a single optimiser: give optim_wrapper one optimizer table");
    }
    return;
  }
  const std::string steps = model + " steps a separate optimiser for each of " + join(names, ", ");
  if (!separate) {
    args.fail("constructor", steps + ": set constructor = \"" + kSeparateOptimWrapperConstructor +
                                 "\" with one table per name (optim_wrapper." + names.front() +
                                 " = { optimizer = { ... } }, ...)");
  }
  for (const auto& name : names) {
    if (!args.has(name)) args.fail(name, "missing: " + steps);
  }
  for (const auto& item : args.table().items()) {
    const std::string& key = item.key();
    if (key == "constructor" || std::find(names.begin(), names.end(), key) != names.end()) continue;
    args.fail(key, model + " steps no optimiser \"" + key + "\"" + did_you_mean(key, names) + " (it steps " +
                       join(names, ", ") + ")");
  }
}

OptimWrapperDict& as_optim_wrapper_dict(OptimWrapper& optim, const std::string& who) {
  auto* dict = dynamic_cast<OptimWrapperDict*>(&optim);
  RAZOR_CHECK(dict, who, " steps several optimisers: optim_wrapper needs constructor = \"",
              kSeparateOptimWrapperConstructor, "\" with one table per optimiser");
  return *dict;
}

}  // namespace razor
