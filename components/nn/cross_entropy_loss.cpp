#include "components/nn/cross_entropy_loss.h"

#include <torch/torch.h>

#include "engine/error.h"

namespace razor::nn {

CrossEntropyLoss::CrossEntropyLoss(CrossEntropyLossOptions options)
    : Module("CrossEntropyLoss"), options_(std::move(options)) {
  RAZOR_CHECK(options_.label_smooth_val >= 0 && options_.label_smooth_val < 1,
              "CrossEntropyLoss: label_smooth_val must be in [0, 1), got ",
              options_.label_smooth_val);
  if (options_.reduction == "mean") {
    reduction_ = at::Reduction::Mean;
  } else if (options_.reduction == "sum") {
    reduction_ = at::Reduction::Sum;
  } else if (options_.reduction == "none") {
    reduction_ = at::Reduction::None;
  } else {
    throw config_error("CrossEntropyLoss: reduction must be \"mean\", \"sum\" or \"none\", got \"",
                       options_.reduction, "\"");
  }
}

torch::Tensor CrossEntropyLoss::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() == 2);
  const torch::Tensor& logits = inputs[0];
  const torch::Tensor& target = inputs[1];
  torch::Tensor loss;
  if (target.is_floating_point()) {
    TORCH_CHECK(target.sizes() == logits.sizes(),
                "CrossEntropyLoss: soft targets must have the logits' shape ", logits.sizes(),
                ", got ", target.sizes());
    torch::Tensor soft = target;
    const double e = options_.label_smooth_val;
    if (e > 0) soft = soft * (1 - e) + e / static_cast<double>(logits.size(1));
    loss = -(soft * torch::log_softmax(logits, 1)).sum(1);
    if (reduction_ == at::Reduction::Mean) {
      loss = loss.mean();
    } else if (reduction_ == at::Reduction::Sum) {
      loss = loss.sum();
    }
  } else {
    // PyTorch's label_smoothing is the same smoothed one-hot as mmcls's 'original' mode.
    loss = torch::cross_entropy_loss(logits, target, /*weight=*/{}, reduction_,
                                     /*ignore_index=*/-100, options_.label_smooth_val);
  }
  return options_.loss_weight == 1.0 ? loss : loss * options_.loss_weight;
}

}  // namespace razor::nn
