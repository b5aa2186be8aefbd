#pragma once
// MMRazor's DartsSubnetClsHead (models/architectures/heads/darts_subnet_head.py): the head of a
// retrained DARTS genotype. A LinearClsHead on the last cell's features plus a linear
// classifier `aux_linear` on the auxiliary head's features (aux_in_channels); in training the
// losses are {"loss": loss(main logits), "aux_head.loss": aux_loss(aux logits)}, which the
// runner sums (MMRazor: aux_loss = CrossEntropyLoss with loss_weight 0.4). Without auxiliary
// features (evaluation: the backbone computes them in training only) only the main loss is
// computed; forward always gives the main logits.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "components/architectures/cls_head.h"

namespace razor {

struct DartsSubnetClsHeadOptions {
  DartsSubnetClsHeadOptions(int64_t num_classes, int64_t in_channels, int64_t aux_in_channels)
      : num_classes(num_classes), in_channels(in_channels), aux_in_channels(aux_in_channels) {}
  int64_t num_classes;
  /// Channels of the last cell's (pooled) features.
  int64_t in_channels;
  /// Channels of the auxiliary head's (pooled) features.
  int64_t aux_in_channels;
  /// mmcls's cal_acc: the training losses also log "accuracy_top-<k>" (and
  /// "aux_head.accuracy_top-<k>") for each k of `topk`, in percent.
  bool cal_acc = false;
  /// The k of the logged accuracies.
  std::vector<int64_t> topk = {1};

  // clang-format off
  DartsSubnetClsHeadOptions& with_cal_acc(bool v) { cal_acc = v; return *this; }
  DartsSubnetClsHeadOptions& with_topk(std::vector<int64_t> v) {
    topk = std::move(v);
    return *this;
  }
  // clang-format on
};

class DartsSubnetClsHead : public LinearClsHead {
 public:
  /// `loss_module` scores the main logits, `aux_loss_module` the auxiliary ones.
  DartsSubnetClsHead(const DartsSubnetClsHeadOptions& options,
                     std::shared_ptr<nn::Module> loss_module,
                     std::shared_ptr<nn::Module> aux_loss_module);

  using LinearClsHead::loss;
  /// The main loss on the last of `features.outs`, plus "aux_head.loss" on `features.aux`
  /// when it is defined.
  LossMap loss(const BackboneOutputs& features, const torch::Tensor& targets) override;
  /// The main loss only (a single-output call, as in evaluation).
  LossMap loss(const torch::Tensor& features, const torch::Tensor& targets) override;
  /// Logits of the auxiliary classifier on (pooled) auxiliary features.
  torch::Tensor forward_aux(const torch::Tensor& aux_features);

  int64_t aux_in_channels() const override { return aux_fc_->in_features(); }
  nn::Linear& aux_linear() const { return *aux_fc_; }
  nn::Module& aux_loss_module() const { return *aux_loss_module_; }
  const DartsSubnetClsHeadOptions& options() const { return options_; }

 private:
  /// `prefix` + "accuracy_top-<k>" for each k, when cal_acc.
  void add_accuracies(LossMap& losses, const std::string& prefix, const torch::Tensor& logits,
                      const torch::Tensor& targets) const;

  DartsSubnetClsHeadOptions options_;
  std::shared_ptr<nn::Linear> aux_fc_;
  std::shared_ptr<nn::Module> aux_loss_module_;
};

/// Registers DartsSubnetClsHead (MMRazor's keys: num_classes, in_channels, aux_in_channels,
/// loss (default CrossEntropyLoss), aux_loss (default CrossEntropyLoss with loss_weight 0.4),
/// topk, cal_acc) in the model registry; register_darts_architectures calls it.
void register_darts_subnet_head();

}  // namespace razor
