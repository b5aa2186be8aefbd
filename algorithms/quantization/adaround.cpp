#include "algorithms/quantization/adaround.h"

#include <cmath>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/quantization/layer_data.h"
#include "components/quant/fake_quantize.h"
#include "engine/error.h"

namespace razor {

namespace {

constexpr double kZeta = 1.1, kGamma = -0.1;

torch::Tensor rectified_sigmoid(const torch::Tensor& v) {
  return torch::clamp(torch::sigmoid(v) * (kZeta - kGamma) + kGamma, 0.0, 1.0);
}

/// `t` ([C]) shaped to broadcast along dimension 0 of a `dim`-dimensional weight.
torch::Tensor per_channel(const torch::Tensor& t, int64_t dim) {
  std::vector<int64_t> shape(static_cast<size_t>(dim), 1);
  shape[0] = -1;
  return t.reshape(shape);
}

}  // namespace

AdaRoundOptions AdaRoundOptions::parse(Args& args, const std::string& key) {
  AdaRoundOptions options;
  if (!args.table().at(key).is_object()) {
    args.accept(key);
    return options;
  }
  Args sub = args.sub(key);
  options.iters = sub.get<int64_t>("iters", options.iters);
  options.batch_size = sub.get<int64_t>("batch_size", options.batch_size);
  options.lr = sub.get<double>("lr", options.lr);
  options.reg = sub.get<double>("reg", options.reg);
  options.warmup = sub.get<double>("warmup", options.warmup);
  const auto beta = sub.get<std::vector<double>>("beta", {options.beta_start, options.beta_end});
  if (beta.size() != 2 || beta[0] < beta[1] || beta[1] <= 0) sub.fail("beta", "must be [start, end] with start >= end > 0");
  options.beta_start = beta[0];
  options.beta_end = beta[1];
  if (options.iters < 1) sub.fail("iters", "must be >= 1");
  if (options.batch_size < 1) sub.fail("batch_size", "must be >= 1");
  if (options.lr <= 0) sub.fail("lr", "must be > 0");
  if (options.reg < 0) sub.fail("reg", "must be >= 0");
  if (options.warmup < 0 || options.warmup >= 1) sub.fail("warmup", "must be in [0, 1)");
  sub.finish();
  return options;
}

AdaRoundReport adaround(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches,
                        const AdaRoundOptions& options) {
  AdaRoundReport report;
  const quant::QuantPlan& plan = model.plan();
  torch::Generator generator = at::detail::createCPUGenerator(options.seed);
  // The float model's inputs to a layer come from the original weights, not the rounded ones.
  std::vector<std::pair<nn::WeightedOp*, torch::Tensor>> originals;
  for (const auto& [node, fq] : plan.weight_fake_quants) {
    if (auto* op = dynamic_cast<nn::WeightedOp*>(plan.flow.nodes[static_cast<size_t>(node)].module)) {
      originals.emplace_back(op, op->weight.detach().clone());
    }
  }
  const auto float_inputs = [&](nn::WeightedOp& op) {
    std::vector<torch::Tensor> rounded;
    torch::NoGradGuard no_grad;
    for (auto& [o, w] : originals) {
      rounded.push_back(o->weight.detach().clone());
      o->weight.copy_(w);
    }
    torch::Tensor x = capture_inputs(model, op, batches, Precision::Float);
    for (size_t i = 0; i < originals.size(); ++i) originals[i].first->weight.copy_(rounded[i]);
    return x;
  };
  for (const auto& [node, fq_ptr] : plan.weight_fake_quants) {
    auto* op = dynamic_cast<nn::WeightedOp*>(plan.flow.nodes[static_cast<size_t>(node)].module);
    quant::FakeQuantizer& fq = *fq_ptr;
    if (!op || plan.flow.nodes[static_cast<size_t>(node)].call > 0 || !fq.fake_quant_enabled()) continue;
    if (op->out_channel_mask().defined()) {
      spdlog::warn("AdaRound: {} has a channel mask; left to round to nearest", op->path());
      continue;
    }

    const torch::Tensor x_float = float_inputs(*op);
    const torch::Tensor x_quant = capture_inputs(model, *op, batches, Precision::Quantised);
    const torch::Tensor weight = folded_weight(*op);
    const quant::QParams qp = fq.calculate_qparams();
    const int64_t dim = weight.dim();
    const torch::Tensor scale = fq.per_channel() ? per_channel(qp.scale.to(weight.dtype()), dim)
                                                 : qp.scale.to(weight.dtype()).reshape({});
    const torch::Tensor zero_point = fq.per_channel() ? per_channel(qp.zero_point.to(weight.dtype()), dim)
                                                      : qp.zero_point.to(weight.dtype()).reshape({});
    const double qmin = static_cast<double>(fq.quant_min()), qmax = static_cast<double>(fq.quant_max());
    const torch::Tensor scaled = weight / scale;
    const torch::Tensor floor = torch::floor(scaled);
    const torch::Tensor rest = (scaled - floor).clamp(0.01, 0.99);
    torch::Tensor v = (-torch::log((kZeta - kGamma) / (rest - kGamma) - 1.0)).detach().requires_grad_(true);
    const auto soft_weight = [&](const torch::Tensor& h) {
      return scale * (torch::clamp(floor + h + zero_point, qmin, qmax) - zero_point);
    };

    torch::Tensor target;
    {
      torch::NoGradGuard no_grad;
      target = op->apply(x_float, weight, {});
    }
    torch::optim::Adam optimizer({v}, torch::optim::AdamOptions(options.lr));
    const int64_t n = x_quant.size(0);
    const int64_t warmup = static_cast<int64_t>(options.warmup * static_cast<double>(options.iters));
    const auto output_error = [&](const torch::Tensor& w) {
      torch::NoGradGuard no_grad;
      const torch::Tensor diff = op->apply(x_quant, w, {}) - target;
      return diff.pow(2).reshape({diff.size(0), -1}).sum(1).mean().item<double>();
    };
    const torch::Tensor nearest = torch::clamp(torch::round(scaled) + zero_point, qmin, qmax);
    const double nearest_error = output_error(scale * (nearest - zero_point));
    for (int64_t it = 0; it < options.iters; ++it) {
      const torch::Tensor idx = torch::randint(n, {std::min(options.batch_size, n)}, generator, torch::kLong);
      const torch::Tensor h = rectified_sigmoid(v);
      const torch::Tensor out = op->apply(x_quant.index_select(0, idx), soft_weight(h), {});
      const torch::Tensor diff = out - target.index_select(0, idx);
      torch::Tensor loss = diff.pow(2).reshape({diff.size(0), -1}).sum(1).mean();
      if (it >= warmup && options.reg > 0) {
        const double progress = static_cast<double>(it - warmup) / std::max<double>(1.0, options.iters - warmup);
        const double beta = options.beta_end + 0.5 * (options.beta_start - options.beta_end) * (1.0 + std::cos(progress * M_PI));
        loss = loss + options.reg * (1.0 - (2.0 * h - 1.0).abs().pow(beta)).sum();
      }
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }

    // The hard choice, written back as the op's float weight.
    torch::NoGradGuard no_grad;
    const torch::Tensor up = (rectified_sigmoid(v) >= 0.5).to(weight.dtype());
    const torch::Tensor ints = torch::clamp(floor + up + zero_point, qmin, qmax);
    const double chosen_error = output_error(scale * (ints - zero_point));
    report.nearest_error += nearest_error;
    report.adaround_error += chosen_error;
    report.flipped += (ints != nearest).sum().item<int64_t>();
    report.weights += ints.numel();
    torch::Tensor grid = scale * (ints - zero_point);
    if (const torch::Tensor f = folded_bn_factor(*op); f.defined()) grid = grid / per_channel(f, dim);
    op->weight.copy_(grid);
    // The op's own quantiser (scales frozen) must land on the chosen integers.
    fq.disable_observer();
    const torch::Tensor landed = torch::round(fq(folded_weight(*op)) / scale) + zero_point;
    const int64_t missed = (landed != ints).sum().item<int64_t>();
    RAZOR_CHECK(missed == 0, op->path(), ": AdaRound's rounding is not reproduced by the weight quantiser on ", missed,
                " weights");
    ++report.layers;
    spdlog::info("AdaRound: {}: output error {:.4g} rounding to nearest, {:.4g} adaptive", op->path(), nearest_error,
                 chosen_error);
  }
  return report;
}

}  // namespace razor
