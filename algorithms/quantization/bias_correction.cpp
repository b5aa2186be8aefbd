#include "algorithms/quantization/bias_correction.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/quantization/layer_data.h"
#include "components/nn/batch_norm.h"
#include "components/quant/fake_quantize.h"

namespace razor {

BiasCorrectionReport correct_biases(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches) {
  BiasCorrectionReport report;
  const quant::QuantPlan& plan = model.plan();
  std::vector<nn::WeightedOp*> ops;
  for (const auto& [node, fq] : plan.weight_fake_quants) {
    auto* op = dynamic_cast<nn::WeightedOp*>(plan.flow.nodes[static_cast<size_t>(node)].module);
    if (!op || plan.flow.nodes[static_cast<size_t>(node)].call > 0) continue;
    if (!op->folded_bn() && !op->bias.defined()) {
      ++report.skipped;
      continue;
    }
    ops.push_back(op);
  }
  // The float targets first: a corrected BatchNorm changes the float model too.
  std::vector<torch::Tensor> targets;
  for (auto* op : ops) targets.push_back(output_channel_means(model, *op, batches, Precision::Float));
  for (size_t i = 0; i < ops.size(); ++i) {
    nn::WeightedOp* op = ops[i];
    nn::BatchNorm2d* bn = op->folded_bn();
    const torch::Tensor& target = targets[i];
    const torch::Tensor got = output_channel_means(model, *op, batches, Precision::Quantised);
    const torch::Tensor shift = target - got;
    torch::NoGradGuard no_grad;
    if (bn) {
      // The op's output in eval mode is the BN's (the fold is for good there): a shift of the
      // running mean moves it by -shift * gamma / sigma.
      bn->running_mean.sub_((shift / nn::fold_factor(*bn)).to(bn->running_mean.options()));
    } else {
      op->bias.add_(shift.to(op->bias.options()));
    }
    report.max_shift = std::max(report.max_shift, shift.abs().max().item<double>());
    ++report.corrected;
    spdlog::debug("bias correction: {} max |shift| {:.3g}", op->path(), shift.abs().max().item<double>());
  }
  return report;
}

}  // namespace razor
