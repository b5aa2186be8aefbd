#include "components/nn/batch_norm.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/dist.h"
#include "engine/error.h"

namespace razor::nn {

namespace {

/// Batch normalisation over the batches of every rank (PyTorch's SyncBatchNorm semantics):
/// the mean and biased variance of the global batch normalise, and backward all-reduces the
/// two sums the input gradient needs. The weight and bias gradients stay local: the
/// data-parallel gradient average sums them over the ranks.
class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               torch::Tensor running_mean, torch::Tensor running_var, double eps,
                               double momentum) {
    const int64_t channels = input.size(1);
    const std::vector<int64_t> dims = {0, 2, 3};
    // Double sums: the variance as E[x^2] - E[x]^2 is exact enough only in double.
    const torch::Tensor x = input.to(torch::kDouble);
    torch::Tensor stats = torch::cat({x.sum(dims), (x * x).sum(dims),
                                      torch::full({1}, static_cast<double>(input.numel() / channels),
                                                  x.options())});
    dist::all_reduce(stats);
    const torch::Tensor count = stats.narrow(0, 2 * channels, 1);
    const torch::Tensor mean = stats.narrow(0, 0, channels) / count;
    const torch::Tensor var = (stats.narrow(0, channels, channels) / count - mean * mean).clamp_min(0);
    const torch::Tensor invstd = (var + eps).rsqrt();
    {
      torch::NoGradGuard no_grad;
      const double n = count.item<double>();
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum)
          .add_((var * (n / std::max(n - 1, 1.0))).to(running_var.scalar_type()), momentum);
    }
    const auto shape = std::vector<int64_t>{1, channels, 1, 1};
    const torch::Tensor mean_f = mean.to(input.scalar_type()).view(shape);
    const torch::Tensor invstd_f = invstd.to(input.scalar_type()).view(shape);
    const torch::Tensor normalized = (input - mean_f) * invstd_f;
    ctx->save_for_backward({normalized, weight, invstd_f});
    ctx->saved_data["count"] = count.item<double>();
    return normalized * weight.view(shape) + bias.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& normalized = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& invstd = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    const torch::Tensor dy = grads[0];
    const int64_t channels = dy.size(1);
    const std::vector<int64_t> dims = {0, 2, 3};
    const torch::Tensor grad_bias = dy.sum(dims);
    const torch::Tensor grad_weight = (dy * normalized).sum(dims);
    torch::Tensor sums = torch::cat({grad_bias, grad_weight}).to(torch::kDouble);
    dist::all_reduce(sums);
    const auto shape = std::vector<int64_t>{1, channels, 1, 1};
    const torch::Tensor mean_dy = (sums.narrow(0, 0, channels) / count).to(dy.scalar_type()).view(shape);
    const torch::Tensor mean_dy_xhat =
        (sums.narrow(0, channels, channels) / count).to(dy.scalar_type()).view(shape);
    const torch::Tensor grad_input =
        (dy - mean_dy - normalized * mean_dy_xhat) * (invstd * weight.view(shape));
    return {grad_input, grad_weight, grad_bias, torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sync_batch_norm(const torch::Tensor& input, const torch::Tensor& weight,
                              const torch::Tensor& bias, torch::Tensor running_mean,
                              torch::Tensor running_var, double eps, double momentum) {
  return SyncBatchNormFunction::apply(input, weight, bias, running_mean, running_var, eps, momentum);
}

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum, bool affine)
    : Module("BatchNorm2d"),
      num_features_(num_features),
      eps_(eps),
      momentum_(momentum),
      affine_(affine) {
  RAZOR_CHECK(num_features > 0, "BatchNorm2d: num_features must be positive, got ", num_features);
  RAZOR_CHECK(eps > 0, "BatchNorm2d: eps must be positive, got ", eps);
  RAZOR_CHECK(momentum >= 0 && momentum <= 1, "BatchNorm2d: momentum must be in [0, 1], got ",
              momentum);
  if (affine) {
    weight = register_parameter("weight", torch::ones({num_features}));
    bias = register_parameter("bias", torch::zeros({num_features}));
  }
  running_mean = register_buffer("running_mean", torch::zeros({num_features}));
  running_var = register_buffer("running_var", torch::ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

BatchNorm2d::ActiveTensors BatchNorm2d::active_tensors() const {
  if (!active_.defined()) return {weight, bias, running_mean, running_var, false, nullptr};
  const int64_t width = active_.size(0);
  if (!candidates_.empty()) {
    const auto found = candidates_.find(width);
    RAZOR_CHECK(found != candidates_.end() && active_is_prefix_, path(),
                ": a switchable BatchNorm normalises the first channels at one of its widths; it has no BatchNorm "
                "for these ", width, " active channels");
    BatchNorm2d& c = *found->second;
    return {c.weight, c.bias, c.running_mean, c.running_var, false, &c};
  }
  auto pick = [&](const torch::Tensor& t) { return t.defined() ? t.index_select(0, active_) : t; };
  return {pick(weight), pick(bias), pick(running_mean), pick(running_var), true, nullptr};
}

torch::Tensor BatchNorm2d::forward(const torch::Tensor& input) {
  const bool training = is_training();
  // A new tensor on the same storage, so the dataflow tracer still sees the BN as a node.
  if (folded_ && !training) return at::alias(input);
  // At a dynamic width: the active channels' parameters and statistics (copies that the
  // kernels update and that are written back below, or a candidate BatchNorm's own).
  const ActiveTensors t = active_tensors();
  if (training) {
    num_batches_tracked.add_(1);
    if (t.candidate) t.candidate->num_batches_tracked.add_(1);
  }
  torch::Tensor mean = t.running_mean, var = t.running_var;
  torch::Tensor out;
  if (training && sync_across_ranks_) {
    // The synchronised kernel wants a weight and bias: without affine, the identity, not trained.
    const auto options = input.options();
    const int64_t c = input.size(1);
    out = affine_ ? sync_batch_norm(input, t.weight, t.bias, mean, var, eps_, momentum_)
                  : sync_batch_norm(input, torch::ones({c}, options), torch::zeros({c}, options), mean, var, eps_,
                                    momentum_);
  } else {
    out = torch::batch_norm(input, t.weight, t.bias, mean, var, training, momentum_, eps_, /*cudnn_enabled=*/true);
  }
  if (training && t.sliced) {
    torch::NoGradGuard no_grad;
    running_mean.index_copy_(0, active_, mean);
    running_var.index_copy_(0, active_, var);
  }
  return out;
}

void BatchNorm2d::set_candidate_widths(const std::vector<int64_t>& widths) {
  if (candidate_holder_) {
    unregister_module("candidate_bn");
    candidate_holder_.reset();
    candidates_.clear();
  }
  if (widths.empty()) return;
  candidate_holder_ = register_module("candidate_bn", std::make_shared<Module>("ModuleDict"));
  for (const int64_t w : widths) {
    RAZOR_CHECK(w >= 1 && w < num_features_, path(), ": a switchable BatchNorm's widths are below its ", num_features_,
                " channels, got ", w);
    if (candidates_.count(w)) continue;
    auto bn = std::make_shared<BatchNorm2d>(w, eps_, momentum_, affine_);
    bn->to(running_mean.device());
    bn->set_path(path() + ".candidate_bn." + std::to_string(w));
    candidates_[w] = candidate_holder_->register_module(std::to_string(w), bn);
  }
  // The copies start from this BN's first channels, as a width of it would compute.
  torch::NoGradGuard no_grad;
  for (auto& [w, bn] : candidates_) {
    for (auto [mine, theirs] : {std::pair{&weight, &bn->weight}, {&bias, &bn->bias}, {&running_mean, &bn->running_mean},
                                {&running_var, &bn->running_var}}) {
      if (mine->defined()) theirs->copy_(mine->narrow(0, 0, w));
    }
  }
}

std::vector<int64_t> BatchNorm2d::candidate_widths() const {
  std::vector<int64_t> out;
  for (const auto& item : candidates_) out.push_back(item.first);
  return out;
}

void BatchNorm2d::set_active_channels(torch::Tensor out, torch::Tensor in) {
  if (!out.defined()) out = in;
  check_active_channels(out, num_features_, path());
  if (in.defined()) {
    RAZOR_CHECK(torch::equal(in.cpu(), out.cpu()), path(),
                ": a BatchNorm's input and output channels are one set; got different active channels");
  }
  // Indices are ascending and unique: the first `n` channels exactly when the last is n - 1.
  active_is_prefix_ = out.defined() && out[out.size(0) - 1].item<int64_t>() == out.size(0) - 1;
  active_ = out.defined() ? out.to(running_mean.device()) : out;
}

void BatchNorm2d::make_static() {
  torch::NoGradGuard no_grad;
  if (active_.defined()) {
    const ActiveTensors t = active_tensors();
    for (auto [mine, kept] : {std::pair{&weight, t.weight}, {&bias, t.bias}, {&running_mean, t.running_mean},
                              {&running_var, t.running_var}}) {
      if (mine->defined()) mine->set_data(kept.detach().clone());
    }
    num_features_ = active_.size(0);
    active_ = torch::Tensor();
  }
  set_candidate_widths({});
}

void BatchNorm2d::pretty_print(std::ostream& stream) const {
  stream << "BatchNorm2d(" << num_features_ << ", eps=" << eps_ << ", momentum=" << momentum_
         << (affine_ ? "" : ", affine=False") << ")";
}

// A BatchNorm folds into the conv before it; only the native backend quantises its output
// (a BatchNorm alone, torch's quantized::batch_norm2d). MMRazor's BN counter: one FLOP per
// element, two with the affine transform.
const OpDescription* BatchNorm2d::description() const {
  static const OpDescription d{
      {QuantRole::kFloat, ChainRole::kFoldedNorm, {"native"}},
      [](Module& op, const Inputs& inputs, const torch::Tensor&) {
        const auto& bn = static_cast<BatchNorm2d&>(op);
        const bool affine = bn.weight.defined();
        // Its own weight and bias (or those it normalises with), not its candidates'.
        int64_t params = affine ? 2 * inputs.at(0).size(1) : 0;
        if (!bn.has_active_channels() && affine && !bn.weight.requires_grad()) params = 0;
        return OpCost{static_cast<double>(inputs.at(0).numel()) * (affine ? 2.0 : 1.0), params};
      },
      [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
        auto& bn = static_cast<BatchNorm2d&>(op);
        // At the active channels, as forward computes.
        const BatchNorm2d::ActiveTensors t = bn.active_tensors();
        const int64_t c = t.running_mean.size(0);
        const torch::Tensor gamma = bn.affine() ? t.weight.detach() : torch::ones({c});
        const torch::Tensor beta = bn.affine() ? t.bias.detach() : torch::zeros({c});
        const std::string out = onnx.output();
        onnx.node("BatchNormalization",
                  {inputs.at(0), onnx.constant(".weight", gamma), onnx.constant(".bias", beta),
                   onnx.constant(".running_mean", t.running_mean.detach()),
                   onnx.constant(".running_var", t.running_var.detach())},
                  out, {{"epsilon", static_cast<float>(bn.eps())}});
        return out;
      },
      channel_flow(ChannelFlow::kPass, /*member=*/true)};
  return &d;
}

}  // namespace razor::nn
