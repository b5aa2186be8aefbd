#include "algorithms/quantization/mm_architecture_quant.h"

#include <filesystem>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/quantization/quant_loops.h"
#include "components/nn/batch_norm.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace fs = std::filesystem;

MMArchitectureQuant::MMArchitectureQuant(std::shared_ptr<Model> architecture, const quant::QuantizerOptions& options,
                                         std::vector<int64_t> input_shape)
    : BaseAlgorithm(std::move(architecture)), input_shape_(std::move(input_shape)) {
  Model& arch = *architecture_;
  nn::assign_paths(arch);
  const bool was_training = arch.is_training();
  arch.eval();
  const torch::Tensor example = torch::zeros(input_shape_);
  try {
    plan_ = quant::prepare(arch, options, example, [&arch](const torch::Tensor& x) { return arch.forward_tensor(x); });
  } catch (const c10::Error& e) {
    throw config_error("model.input_shapes = ", torch::IntArrayRef(input_shape_),
                       ": the architecture cannot run on an input of this shape: ", e.what_without_backtrace());
  }
  arch.train(was_training);
  nn::assign_paths(*this);
}

void MMArchitectureQuant::freeze_bn(bool on) {
  bn_frozen_ = on;
  train(is_training());
}

void MMArchitectureQuant::train(bool on) {
  BaseAlgorithm::train(on);
  if (!on || !bn_frozen_) return;
  for (const auto& m : modules(/*include_self=*/false)) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m.get())) bn->eval();
  }
}

Json MMArchitectureQuant::extra_state() const { return Json{{"bn_frozen", bn_frozen_}}; }

void MMArchitectureQuant::load_extra_state(const Json& state) {
  if (state.is_object()) freeze_bn(state.value("bn_frozen", false));
}

QuantSwitches::QuantSwitches(torch::nn::Module& root) {
  for (auto* fq : quant::fake_quantizers(root)) saved_.push_back({fq, {fq->observer_enabled(), fq->fake_quant_enabled()}});
}

void QuantSwitches::all_off() {
  for (auto& [fq, flags] : saved_) {
    fq->disable_observer();
    fq->disable_fake_quant();
  }
}

void QuantSwitches::observers_off() {
  for (auto& [fq, flags] : saved_) fq->disable_observer();
}

void QuantSwitches::restore() {
  for (auto& [fq, flags] : saved_) {
    fq->enable_observer(flags.first);
    fq->enable_fake_quant(flags.second);
  }
}

namespace {

/// Loads the float weights into the architecture: a plain checkpoint of it, or an
/// algorithm's ("architecture.*" keys, e.g. a distilled student).
void load_float_checkpoint(Model& architecture, Args& args) {
  const auto path = args.optional<std::string>("float_checkpoint");
  if (!path) {
    spdlog::warn("{}: no float_checkpoint: quantising a randomly initialised model", args.where());
    return;
  }
  if (path->empty()) {
    spdlog::debug("{}: float_checkpoint = \"\": the weights come from a checkpoint loaded afterwards", args.where());
    return;
  }
  RAZOR_CHECK(fs::exists(*path), args.where("float_checkpoint"), ": checkpoint not found: ", *path);
  CheckpointReader reader(*path);
  StateDict weights = reader.contents().model;
  const std::string prefix = "architecture.";
  const bool from_algorithm = std::any_of(weights.begin(), weights.end(), [&](const auto& item) {
    return item.first.rfind(prefix, 0) == 0;
  });
  if (from_algorithm) {
    StateDict stripped;
    for (const auto& item : weights) {
      if (item.first.rfind(prefix, 0) == 0) stripped.emplace_back(item.first.substr(prefix.size()), item.second);
    }
    weights = std::move(stripped);
  }
  try {
    load_state_dict(architecture, weights, /*strict=*/true, *path);
  } catch (const Error& e) {
    throw e.with_context(args.where("float_checkpoint") + ": the checkpoint does not fit model.architecture");
  }
  spdlog::info("Loaded the float model from {}", *path);
}

}  // namespace

void register_quantization_algorithms() {
  static bool done = false;
  if (done) return;
  done = true;
  model_registry().add("MMArchitectureQuant", [](Args& args, const BuildContext& context) {
    Args architecture_args = args.sub("architecture");
    auto architecture = build_model_as<Model>(architecture_args, context, "an architecture to quantise");
    nn::assign_paths(*architecture);
    // The config first, then the weights: a config error costs no loading.
    Args quantizer_args = args.sub("quantizer");
    const quant::QuantizerOptions options = quant::QuantizerOptions::parse(quantizer_args);
    auto shape = args.get<std::vector<int64_t>>("input_shapes", {1, 3, 224, 224});
    if (shape.size() != 4 || std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 1; })) {
      args.fail("input_shapes", "must be four positive sizes [N, C, H, W]");
    }
    if (args.has("data_preprocessor")) args.accept("data_preprocessor");  // razor's pipelines normalise
    load_float_checkpoint(*architecture, args);
    args.finish();
    auto algorithm = std::make_shared<MMArchitectureQuant>(architecture, options, shape);
    spdlog::debug("{}", algorithm->plan().describe());
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
  register_quant_loops();
}

}  // namespace razor
