// The PTQ refinements on a ResNet-8 with 4-bit weights: bias correction makes the quantised
// model's per-channel output means equal the float model's at the corrected layers; AdaRound
// moves each weight to one of its two neighbouring grid points, lowers every layer's output
// error below rounding to nearest, and its choice survives the weight quantiser.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "algorithms/quantization/adaround.h"
#include "algorithms/quantization/bias_correction.h"
#include "algorithms/quantization/layer_data.h"
#include "algorithms/quantization/mixed_precision.h"
#include "algorithms/quantization/mm_architecture_quant.h"
#include "engine/checkpoint.h"
#include "components/architectures/image_classifier.h"
#include "components/nn/batch_norm.h"
#include "components/quant/quant.h"
#include "tests/components/architectures/build.h"
#include "tests/components/quant/shipped_qconfig.h"

using namespace razor;
using namespace razor::test;

namespace {

struct Quantised {
  std::shared_ptr<MMArchitectureQuant> model;
  std::vector<torch::Tensor> batches;
};

/// A random ResNet-8 (BN statistics randomised) with OpenVINO placement and 4-bit weights,
/// calibrated on random batches, observers then off.
Quantised quantised_resnet8(uint64_t seed, int64_t weight_bits = 4) {
  torch::manual_seed(seed);
  quant::register_quant();
  auto architecture = std::dynamic_pointer_cast<Model>(
      build_model(classifier({{"type", "ResNet_CIFAR"}, {"depth", 8}, {"in_channels", 1}}, 64)));
  {
    torch::NoGradGuard no_grad;
    for (const auto& m : architecture->modules(false)) {
      if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m.get())) {
        bn->running_mean.copy_(torch::randn_like(bn->running_mean) * 0.1);
        bn->running_var.copy_(torch::rand_like(bn->running_var) + 0.5);
        bn->bias.copy_(torch::randn_like(bn->bias) * 0.1);
      }
    }
  }
  Json qconfig = shipped_qconfig();
  qconfig["w_qscheme"]["bit"] = weight_bits;
  Json table = {{"type", "OpenVINOQuantizer"}, {"global_qconfig", qconfig}};
  Args args = Args::of(table, "model.quantizer");
  Quantised q;
  q.model = std::make_shared<MMArchitectureQuant>(architecture, quant::QuantizerOptions::parse(args),
                                                  std::vector<int64_t>{1, 1, 28, 28});
  q.model->eval();
  for (int i = 0; i < 4; ++i) q.batches.push_back(torch::randn({16, 1, 28, 28}));
  torch::NoGradGuard no_grad;
  for (const auto& b : q.batches) q.model->forward_tensor(b);
  quant::enable_observer(*q.model, false);
  return q;
}

nn::WeightedOp& op_at(MMArchitectureQuant& model, const std::string& path) {
  auto& op = dynamic_cast<nn::WeightedOp&>(nn::find_module(model.architecture(), path));
  return op;
}

}  // namespace

TEST_CASE("Bias correction gives the quantised model the float model's output means", "[quant][ptq][bias_correction]") {
  Quantised q = quantised_resnet8(0);
  MMArchitectureQuant& model = *q.model;
  auto& conv = op_at(model, "backbone.conv1");
  auto& fc = op_at(model, "head.fc");
  nn::Module& bn = nn::find_module(model.architecture(), "backbone.bn1");
  // Float targets before any correction: the stem's BN output and the logits.
  const auto bn_float = output_channel_means(model, bn, q.batches, Precision::Float);
  const auto fc_float = output_channel_means(model, fc, q.batches, Precision::Float);
  const auto bn_before = output_channel_means(model, bn, q.batches, Precision::Quantised);
  const auto fc_before = output_channel_means(model, fc, q.batches, Precision::Quantised);
  const double shift_before = (bn_before - bn_float).abs().max().item<double>();
  REQUIRE(shift_before > 1e-4);  // 4-bit weights shift the means

  const BiasCorrectionReport report = correct_biases(model, q.batches);
  // Every conv (each with a folded BN) and the classifier.
  CHECK(report.corrected == static_cast<int64_t>(model.plan().weight_fake_quants.size()));
  CHECK(report.skipped == 0);
  CHECK(conv.folded_bn() != nullptr);
  // The stem conv is corrected first, on an unchanged input: its BN output means now match.
  const auto bn_after = output_channel_means(model, bn, q.batches, Precision::Quantised);
  CHECK((bn_after - bn_float).abs().max().item<double>() < shift_before / 100);
  // The classifier, last: its bias took the remaining shift (OpenVINO leaves logits unquantised).
  const double fc_shift = (fc_before - fc_float).abs().max().item<double>();
  REQUIRE(fc_shift > 1e-4);
  const auto fc_after = output_channel_means(model, fc, q.batches, Precision::Quantised);
  CHECK((fc_after - fc_float).abs().max().item<double>() < fc_shift / 100);
}

TEST_CASE("AdaRound picks a neighbouring grid point per weight and lowers each layer's error", "[quant][ptq][adaround]") {
  Quantised q = quantised_resnet8(1);
  MMArchitectureQuant& model = *q.model;
  auto& conv = op_at(model, "backbone.layer1.0.conv1");
  auto* fq = dynamic_cast<quant::FakeQuantizer*>(conv.weight_fake_quant());
  REQUIRE(fq);
  const auto qp = fq->calculate_qparams();
  const auto scale = qp.scale.view({-1, 1, 1, 1});
  const auto before = folded_weight(conv) / scale;

  AdaRoundOptions options;
  options.iters = 200;
  options.batch_size = 16;
  const AdaRoundReport report = adaround(model, q.batches, options);
  CHECK(report.layers == static_cast<int64_t>(model.plan().weight_fake_quants.size()));
  CHECK(report.flipped > 0);
  CHECK(report.adaround_error < report.nearest_error);

  // Each weight now sits on floor(w / s) or floor(w / s) + 1 (within the 4-bit range), and
  // the quantiser reproduces it exactly.
  const auto after = folded_weight(conv) / scale;
  const auto ints = torch::round(after);
  CHECK((after - ints).abs().max().item<double>() < 1e-3);
  const auto lo = torch::clamp(torch::floor(before), fq->quant_min(), fq->quant_max());
  const auto hi = torch::clamp(torch::floor(before) + 1, fq->quant_min(), fq->quant_max());
  CHECK(torch::logical_or(ints == lo, ints == hi).all().item<bool>());
  torch::NoGradGuard no_grad;
  const auto fake = (*fq)(folded_weight(conv));
  CHECK(torch::allclose(fake / scale, ints, 0, 1e-3));
}

TEST_CASE("AdaRound options are checked", "[quant][ptq][adaround]") {
  const auto parse = [](const Json& table) {
    Json root = {{"adaround", table}};
    Args args = Args::of(root, "train_cfg");
    return AdaRoundOptions::parse(args, "adaround");
  };
  CHECK(parse({{"iters", 10}, {"beta", {10, 2}}}).beta_start == 10);
  CHECK(error_of([&] { parse({{"beta", {2, 10}}}); }).find("train_cfg.adaround.beta") != std::string::npos);
  CHECK(error_of([&] { parse({{"iters", 0}}); }).find("train_cfg.adaround.iters") != std::string::npos);
  CHECK(error_of([&] { parse({{"itters", 5}}); }).find("iters") != std::string::npos);
}

TEST_CASE("Mixed precision fits the size budget, lowering the cheapest layers first, checkpoints carry it",
          "[quant][ptq][mixed_precision]") {
  Quantised q = quantised_resnet8(2, 8);
  MMArchitectureQuant& model = *q.model;
  MixedPrecisionOptions options;
  options.bits = {4, 8};
  options.size_ratio = 0.75;
  const MixedPrecisionReport report = assign_weight_bits(model, q.batches, options);
  REQUIRE(report.layers.size() == model.plan().weight_fake_quants.size());

  double full = 0, size = 0, largest = 0;
  double lowered_max_cost = 0, kept_min_cost = 1e30;
  for (const auto& layer : report.layers) {
    INFO(layer.path);
    REQUIRE(layer.sensitivity.size() == 2);
    CHECK(layer.sensitivity[0] > 0);  // 4 bits move the outputs
    CHECK(layer.sensitivity[1] == 0);
    CHECK((layer.bits == 4 || layer.bits == 8));
    full += layer.weights * 8.0;
    size += static_cast<double>(layer.weights * layer.bits);
    largest = std::max(largest, layer.weights * 4.0);
    const double cost = layer.sensitivity[0] / (layer.weights * 4.0);
    if (layer.bits == 4) lowered_max_cost = std::max(lowered_max_cost, cost);
    if (layer.bits == 8) kept_min_cost = std::min(kept_min_cost, cost);
  }
  CHECK(report.size_ratio == Approx(size / full));
  CHECK(report.size_ratio <= 0.75);
  CHECK(report.size_ratio > 0.75 - largest / full);  // it stops as soon as the budget fits
  CHECK(lowered_max_cost <= kept_min_cost);          // the greedy order: cheapest per byte first
  CHECK(model.weight_bytes() == Approx(size / 8));

  // The ranges follow the bits, and a fresh model of the same config takes them from the
  // state dict.
  size_t i = 0;
  for (const auto& [node, fq] : model.plan().weight_fake_quants) {
    const int64_t bits = report.layers[i++].bits;
    CHECK(model.weight_bit(node) == bits);
    CHECK(fq->quant_max() == (bits == 4 ? 7 : 127));
  }
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model.forward_tensor(q.batches[0]);
  }
  Quantised fresh = quantised_resnet8(3, 8);
  load_state_dict(*fresh.model, state_dict(model), /*strict=*/true, "test");
  torch::NoGradGuard no_grad;
  const auto got = fresh.model->forward_tensor(q.batches[0]);
  CHECK(torch::allclose(got, expected, 1e-5, 1e-5));
  i = 0;
  for (const auto& [node, fq] : fresh.model->plan().weight_fake_quants) {
    CHECK(fq->quant_max() == (report.layers[i++].bits == 4 ? 7 : 127));
  }
}

TEST_CASE("Mixed precision options are checked", "[quant][ptq][mixed_precision]") {
  const auto parse = [](const Json& table) {
    Json root = {{"mixed_precision", table}};
    Args args = Args::of(root, "train_cfg");
    return MixedPrecisionOptions::parse(args, "mixed_precision");
  };
  CHECK(parse({{"bits", {8, 4, 6}}}).bits == std::vector<int64_t>{4, 6, 8});
  CHECK(error_of([&] { parse({{"bits", {8}}}); }).find("train_cfg.mixed_precision.bits") != std::string::npos);
  CHECK(error_of([&] { parse({{"bits", {1, 8}}}); }).find("between 2 and 8") != std::string::npos);
  CHECK(error_of([&] { parse({{"size_ratio", 0.3}}); }).find("train_cfg.mixed_precision.size_ratio") != std::string::npos);
}
