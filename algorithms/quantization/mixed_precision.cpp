#include "algorithms/quantization/mixed_precision.h"

#include <algorithm>
#include <limits>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "components/quant/fake_quantize.h"
#include "engine/error.h"

namespace razor {

MixedPrecisionOptions MixedPrecisionOptions::parse(Args& args, const std::string& key) {
  Args sub = args.sub(key);
  MixedPrecisionOptions options;
  options.bits = sub.get<std::vector<int64_t>>("bits", options.bits);
  options.size_ratio = sub.get<double>("size_ratio", options.size_ratio);
  std::sort(options.bits.begin(), options.bits.end());
  options.bits.erase(std::unique(options.bits.begin(), options.bits.end()), options.bits.end());
  if (options.bits.size() < 2) sub.fail("bits", "needs at least two widths, e.g. [4, 8]");
  if (options.bits.front() < 2 || options.bits.back() > 8) sub.fail("bits", "widths must be between 2 and 8");
  const double lowest = static_cast<double>(options.bits.front()) / static_cast<double>(options.bits.back());
  if (options.size_ratio < lowest || options.size_ratio > 1.0) {
    sub.fail("size_ratio", "must be between " + std::to_string(lowest) + " (every layer at the lowest width) and 1");
  }
  sub.finish();
  return options;
}

namespace {

torch::Tensor outputs(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (const auto& b : batches) out.push_back(model.forward_tensor(b).to(torch::kFloat));
  return torch::cat(out);
}

double kl_divergence(const torch::Tensor& reference, const torch::Tensor& other) {
  const torch::Tensor p = torch::log_softmax(reference, 1), q = torch::log_softmax(other, 1);
  return (p.exp() * (p - q)).sum(1).mean().item<double>();
}

}  // namespace

MixedPrecisionReport assign_weight_bits(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches,
                                        const MixedPrecisionOptions& options) {
  RAZOR_CHECK(!batches.empty(), "mixed precision: no calibration batches");
  const quant::QuantPlan& plan = model.plan();
  const bool was_training = model.is_training();
  model.eval();
  QuantSwitches switches(model);
  const int64_t top = options.bits.back();

  std::vector<int64_t> nodes;
  MixedPrecisionReport report;
  for (const auto& [node, fq] : plan.weight_fake_quants) {
    auto* op = dynamic_cast<nn::WeightedOp*>(plan.flow.nodes[static_cast<size_t>(node)].module);
    nodes.push_back(node);
    report.layers.push_back({op->path(), op->weight.numel(), top, {}});
    model.set_weight_bit(node, top);
  }

  // 1. Each layer alone at each width: every other quantiser off.
  switches.all_off();
  const torch::Tensor reference = outputs(model, batches);
  for (size_t l = 0; l < nodes.size(); ++l) {
    quant::FakeQuantizer& fq = *plan.weight_fake_quants.at(nodes[l]);
    fq.enable_fake_quant(true);
    for (const int64_t bit : options.bits) {
      if (bit == top) {
        report.layers[l].sensitivity.push_back(0.0);
        continue;
      }
      model.set_weight_bit(nodes[l], bit);
      report.layers[l].sensitivity.push_back(kl_divergence(reference, outputs(model, batches)));
    }
    model.set_weight_bit(nodes[l], top);
    fq.disable_fake_quant();
  }
  switches.restore();

  // 2. Greedy steps down, cheapest sensitivity per byte saved first.
  double full = 0, size = 0;
  for (const auto& layer : report.layers) full += static_cast<double>(layer.weights * top);
  size = full;
  std::vector<size_t> level(nodes.size(), options.bits.size() - 1);
  while (size > options.size_ratio * full + 1e-9) {
    size_t best = nodes.size();
    double best_cost = std::numeric_limits<double>::infinity();
    for (size_t l = 0; l < nodes.size(); ++l) {
      if (level[l] == 0) continue;
      const auto& s = report.layers[l].sensitivity;
      const double saved = static_cast<double>(report.layers[l].weights * (options.bits[level[l]] - options.bits[level[l] - 1]));
      const double cost = std::max(0.0, s[level[l] - 1] - s[level[l]]) / saved;
      if (cost < best_cost) {
        best_cost = cost;
        best = l;
      }
    }
    RAZOR_ASSERT(best < nodes.size());  // the ratio is above every layer at the lowest width
    size -= static_cast<double>(report.layers[best].weights * (options.bits[level[best]] - options.bits[level[best] - 1]));
    --level[best];
  }
  for (size_t l = 0; l < nodes.size(); ++l) {
    report.layers[l].bits = options.bits[level[l]];
    model.set_weight_bit(nodes[l], report.layers[l].bits);
  }
  report.size_ratio = size / full;
  model.train(was_training);
  return report;
}

}  // namespace razor
