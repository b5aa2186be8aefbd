#include "algorithms/quantization/layer_data.h"

#include <torch/torch.h>

#include "components/nn/batch_norm.h"
#include "engine/error.h"

namespace razor {

namespace {

/// Runs the model on the batches in the given precision, restoring the quantisers' switches.
void run(MMArchitectureQuant& model, const std::vector<torch::Tensor>& batches, Precision precision) {
  QuantSwitches switches(model);
  if (precision == Precision::Float) {
    switches.all_off();
  } else {
    switches.observers_off();
  }
  const bool was_training = model.is_training();
  model.eval();
  {
    torch::NoGradGuard no_grad;
    for (const auto& batch : batches) model.forward_tensor(batch);
  }
  model.train(was_training);
  switches.restore();
}

}  // namespace

torch::Tensor capture_inputs(MMArchitectureQuant& model, nn::Module& op, const std::vector<torch::Tensor>& batches,
                             Precision precision) {
  std::vector<torch::Tensor> seen;
  // Registered after the quantizer's hooks, so it sees the input after an input quantiser.
  nn::HookHandle hook = op.add_forward_pre_hook([&](nn::Module&, nn::Inputs& inputs) {
    seen.push_back(inputs.at(0).detach().contiguous());
  });
  run(model, batches, precision);
  hook.remove();
  RAZOR_CHECK(!seen.empty(), op.path(), ": the op did not run on the calibration batches");
  return torch::cat(seen);
}

torch::Tensor output_channel_means(MMArchitectureQuant& model, nn::Module& op,
                                   const std::vector<torch::Tensor>& batches, Precision precision) {
  torch::Tensor sum;
  int64_t count = 0;
  nn::HookHandle hook = op.add_forward_hook([&](nn::Module&, const nn::Inputs&, torch::Tensor& output) {
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < output.dim(); ++d) {
      if (d != 1) dims.push_back(d);
    }
    const torch::Tensor s = output.detach().to(torch::kDouble).sum(dims);
    sum = sum.defined() ? sum + s : s;
    count += output.numel() / output.size(1);
  });
  run(model, batches, precision);
  hook.remove();
  RAZOR_CHECK(count > 0, op.path(), ": the op did not run on the calibration batches");
  return (sum / static_cast<double>(count)).to(torch::kFloat);
}

torch::Tensor folded_bn_factor(const nn::WeightedOp& op) {
  const nn::BatchNorm2d* bn = op.folded_bn();
  return bn ? nn::fold_factor(*bn).detach() : torch::Tensor();
}

torch::Tensor folded_weight(const nn::WeightedOp& op) {
  torch::Tensor w = op.weight.detach();
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[0] = -1;
  if (const torch::Tensor f = folded_bn_factor(op); f.defined()) w = w * f.reshape(shape);
  if (op.out_channel_mask().defined()) w = w * op.out_channel_mask().to(w.dtype()).reshape(shape);
  return w;
}

}  // namespace razor
