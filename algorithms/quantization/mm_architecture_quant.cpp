#include "algorithms/quantization/mm_architecture_quant.h"

#include <cmath>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/architecture_weights.h"
#include "algorithms/quantization/quant_loops.h"
#include "components/nn/batch_norm.h"
#include "components/nn/weighted_op.h"
#include "engine/checkpoint.h"
#include "engine/checkpoint_names.h"
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
  for (const auto& [node, fq] : plan_->weight_fake_quants) {
    const auto levels = static_cast<double>(fq->quant_max() - fq->quant_min() + 1);
    applied_bits_.push_back(static_cast<int64_t>(std::ceil(std::log2(levels))));
  }
  weight_bits_ = register_buffer("weight_bits", torch::tensor(applied_bits_, torch::kLong));
  nn::assign_paths(*this);
}

namespace {

/// Index of `node` among the plan's weight quantisers.
size_t weight_index(const quant::QuantPlan& plan, int64_t node) {
  size_t i = 0;
  for (const auto& item : plan.weight_fake_quants) {
    if (item.first == node) return i;
    ++i;
  }
  throw config_error("node ", node, " has no weight quantiser");
}

/// The range of `bit` bits for `fq`, keeping its dtype and whether the range is symmetric.
std::pair<int64_t, int64_t> range_for(const quant::FakeQuantizer& fq, int64_t bit) {
  RAZOR_CHECK(bit >= 2 && bit <= 8, "weight bits must be between 2 and 8, got ", bit);
  return quant::bit_range(fq.dtype(), bit, fq.quant_min() == -fq.quant_max());
}

}  // namespace

int64_t MMArchitectureQuant::weight_bit(int64_t node) const { return applied_bits_.at(weight_index(*plan_, node)); }

void MMArchitectureQuant::set_weight_bit(int64_t node, int64_t bit) {
  const size_t i = weight_index(*plan_, node);
  quant::FakeQuantizer& fq = *plan_->weight_fake_quants.at(node);
  const auto [lo, hi] = range_for(fq, bit);
  fq.observer().set_range(lo, hi);
  {
    torch::NoGradGuard no_grad;
    weight_bits_[static_cast<int64_t>(i)].fill_(bit);
  }
  applied_bits_[i] = bit;
  // The weight again through its observer alone: the scale for the new range.
  auto* op = dynamic_cast<nn::WeightedOp*>(plan_->flow.nodes[static_cast<size_t>(node)].module);
  RAZOR_ASSERT(op);
  torch::NoGradGuard no_grad;
  const bool observing = fq.observer_enabled(), quantising = fq.fake_quant_enabled();
  fq.reset_statistics();
  fq.enable_observer(true);
  fq.enable_fake_quant(true);
  op->effective_weight();
  fq.enable_observer(observing);
  fq.enable_fake_quant(quantising);
}

double MMArchitectureQuant::weight_bytes() const {
  double bytes = 0;
  size_t i = 0;
  for (const auto& [node, fq] : plan_->weight_fake_quants) {
    auto* op = dynamic_cast<nn::WeightedOp*>(plan_->flow.nodes[static_cast<size_t>(node)].module);
    bytes += static_cast<double>(op->weight.numel() * applied_bits_[i++]) / 8.0;
  }
  return bytes;
}

void MMArchitectureQuant::sync_weight_bits() {
  // Read the buffer only when it changed (in place, e.g. by a checkpoint load, or moved): a
  // device read on every forward would synchronise.
  const int64_t version = static_cast<int64_t>(weight_bits_._version());
  if (weight_bits_.data_ptr() == seen_bits_data_ && version == seen_bits_version_) return;
  seen_bits_data_ = weight_bits_.data_ptr();
  seen_bits_version_ = version;
  const torch::Tensor bits = weight_bits_.to(torch::kCPU);
  size_t i = 0;
  for (const auto& [node, fq] : plan_->weight_fake_quants) {
    const int64_t bit = bits[static_cast<int64_t>(i)].item<int64_t>();
    if (bit != applied_bits_[i]) {
      const auto [lo, hi] = range_for(*fq, bit);
      fq->observer().set_range(lo, hi);  // the loaded scale belongs to this range
      applied_bits_[i] = bit;
    }
    ++i;
  }
}

LossMap MMArchitectureQuant::loss(const Batch& batch) {
  sync_weight_bits();
  return BaseAlgorithm::loss(batch);
}

torch::Tensor MMArchitectureQuant::predict(const Batch& batch) {
  sync_weight_bits();
  return BaseAlgorithm::predict(batch);
}

torch::Tensor MMArchitectureQuant::forward_tensor(const torch::Tensor& inputs) {
  sync_weight_bits();
  return BaseAlgorithm::forward_tensor(inputs);
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
  load_architecture_weights(architecture, *path, args.config(), args.where("float_checkpoint"));
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
