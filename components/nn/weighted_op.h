#pragma once
// The base of the ops that carry a weight (Conv2d, Linear). They never read `weight` and
// `bias` directly: forward goes through effective_weight(), the one place where the
// compression steps act on the weight, in this order, each optional:
//   0. dynamic width: the weight and bias sliced to the active output and input channels
//      (components/nn/dynamic_channels.h); every later step acts on the slice;
//   1. folded BatchNorm: the weight scaled by gamma / sqrt(running_var + eps) of the BN that
//      follows. In training mode (QAT's simulated folding, as torch's ConvBn2d) the op's
//      output is divided by the same factor again, so the BN (still in the model) normalises
//      with batch statistics as before. With the BN in eval mode the statistics are constants
//      and the fold is done for good, as deployed: the op adds the folded bias and the BN
//      passes its input through (the same function; one op instead of three passes);
//   2. an output-channel mask (structured pruning): masked channels give zero;
//   3. a weight fake quantiser, the child "weight_fake_quant" (torch's QAT modules' name);
//   4. a bias quantiser: the bias rounded to the int32 grid that integer runtimes add it on
//      (s_input * s_weight), where the bias is a constant (eval mode, or no folded BN).
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "components/nn/dynamic_channels.h"
#include "components/nn/module.h"

namespace razor::nn {

class BatchNorm2d;

/// What the op computes with: out = op(x, weight, bias) / output_divisor + output_bias
/// (per output channel; divisor and output_bias undefined unless a BN is folded).
struct EffectiveWeight {
  torch::Tensor weight;
  torch::Tensor bias;
  torch::Tensor output_divisor;
  torch::Tensor output_bias;
};

class WeightedOp : public Module, public DynamicChannels {
 public:
  explicit WeightedOp(const std::string& type_name) : Module(type_name) {}

  // Dynamic width (step 0).
  void set_active_channels(torch::Tensor out, torch::Tensor in) override;
  const torch::Tensor& active_out() const override { return active_out_; }
  const torch::Tensor& active_in() const override { return active_in_; }
  void make_static() override;
  /// `weight` and `bias` (bias may be undefined) at the active channels, by the op's rule.
  virtual std::pair<torch::Tensor, torch::Tensor> active_weight(const torch::Tensor& weight,
                                                                const torch::Tensor& bias) const;

  torch::Tensor weight;  // out x ...
  torch::Tensor bias;    // undefined without bias

  int64_t out_channels() const { return weight.size(0); }

  /// Folding of the BatchNorm that consumes this op's output (null: none). The BN stays
  /// owned by its parent; this op keeps a reference only and marks it folded.
  void fold_bn(std::shared_ptr<BatchNorm2d> bn);
  BatchNorm2d* folded_bn() const { return folded_bn_.get(); }

  /// A [out_channels] tensor of 0/1 (undefined: none).
  void set_out_channel_mask(torch::Tensor mask);
  const torch::Tensor& out_channel_mask() const { return out_channel_mask_; }

  /// Registers `fake_quant` as the child "weight_fake_quant" (null removes it).
  void set_weight_fake_quant(std::shared_ptr<Module> fake_quant);
  Module* weight_fake_quant() const { return weight_fake_quant_.get(); }

  /// The bias as an integer runtime adds it (step 4); null removes it.
  using BiasQuantizer = std::function<torch::Tensor(const torch::Tensor& bias)>;
  void set_bias_quant(BiasQuantizer quant) { bias_quant_ = std::move(quant); }
  bool has_bias_quant() const { return static_cast<bool>(bias_quant_); }

  /// Whether any of the steps above acts on the weight (else forward uses it as it is).
  bool has_weight_steps() const {
    return has_active_channels() || folded_bn_ || out_channel_mask_.defined() || weight_fake_quant_ || bias_quant_;
  }

  /// The weight and bias after the steps above.
  EffectiveWeight effective_weight();
  /// Steps 0 to 2 done for good, as deployed: `bn` (eval statistics; null: none) folded in,
  /// the active channels sliced out, then the channel mask, so that a masked channel gives 0
  /// after the BN, as in forward.
  /// What exports write (the bias undefined when the op has none and no BN is folded).
  std::pair<torch::Tensor, torch::Tensor> deployed_weight(const BatchNorm2d* bn) const;

  /// The op itself on a given weight and bias (bias may be undefined): what forward runs on
  /// the effective weight, and what layer-wise PTQ (AdaRound) runs on candidate weights.
  virtual torch::Tensor apply(const torch::Tensor& input, const torch::Tensor& weight,
                              const torch::Tensor& bias) const = 0;

 protected:
  torch::Tensor forward(const torch::Tensor& input) final;
  /// Updates the op's options to its new weight after make_static cut it.
  virtual void resize_to(const torch::Tensor& weight) = 0;

 private:
  torch::Tensor active_out_, active_in_;
  std::shared_ptr<BatchNorm2d> folded_bn_;
  torch::Tensor out_channel_mask_;
  std::shared_ptr<Module> weight_fake_quant_;
  BiasQuantizer bias_quant_;
};

/// gamma / sqrt(running_var + eps) (1 / sigma without affine): the per-channel factor a folded
/// BatchNorm scales the weight by. One expression for the simulated fold, the fold for good
/// and the PTQ refinements, so a weight quantiser sees the same folded weight everywhere.
torch::Tensor fold_factor(const BatchNorm2d& bn);

/// The weight and bias of `op` with the BatchNorm `bn` (eval mode: running statistics)
/// folded in for good: w * gamma / sigma and (b - mean) * gamma / sigma + beta. What export
/// writes; without a BN (null) the op's own weight and bias (zero if it has none).
std::pair<torch::Tensor, torch::Tensor> fold_bn_into(const torch::Tensor& weight, const torch::Tensor& bias,
                                                     const BatchNorm2d* bn);

}  // namespace razor::nn
