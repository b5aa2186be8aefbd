#include "components/architectures/darts_subnet_head.h"

#include <torch/torch.h>

#include <algorithm>
#include <string>

#include "components/nn/cross_entropy_loss.h"
#include "engine/error.h"
#include "engine/model.h"

namespace razor {

DartsSubnetClsHead::DartsSubnetClsHead(const DartsSubnetClsHeadOptions& options,
                                       std::shared_ptr<nn::Module> loss_module,
                                       std::shared_ptr<nn::Module> aux_loss_module)
    : LinearClsHead(options.num_classes, options.in_channels, std::move(loss_module)),
      options_(options) {
  RAZOR_ASSERT(aux_loss_module != nullptr);
  RAZOR_CHECK(options.aux_in_channels > 0,
              "DartsSubnetClsHead: aux_in_channels must be positive, got ",
              options.aux_in_channels);
  RAZOR_CHECK(!options.topk.empty(), "DartsSubnetClsHead: topk must name at least one k");
  for (int64_t k : options.topk) {
    RAZOR_CHECK(k >= 1 && k <= options.num_classes,
                "DartsSubnetClsHead: topk values must be in [1, ", options.num_classes, "], got ",
                k);
  }
  aux_fc_ = register_module(
      "aux_linear", std::make_shared<nn::Linear>(options.aux_in_channels, options.num_classes));
  aux_loss_module_ = register_module("aux_loss_module", std::move(aux_loss_module));
  // mmcls's LinearClsHead initialises every Linear of the head normal(0, 0.01), zero bias.
  torch::NoGradGuard no_grad;
  aux_fc_->weight.normal_(0.0, 0.01);
  aux_fc_->bias.zero_();
}

torch::Tensor DartsSubnetClsHead::forward_aux(const torch::Tensor& aux_features) {
  return (*aux_fc_)(aux_features);
}

void DartsSubnetClsHead::add_accuracies(LossMap& losses, const std::string& prefix,
                                        const torch::Tensor& logits,
                                        const torch::Tensor& targets) const {
  if (!options_.cal_acc) return;
  RAZOR_CHECK(targets.dim() == 1,
              "DartsSubnetClsHead: cal_acc needs class-index targets; with batch augments "
              "(mixup, cutmix) the training accuracy is meaningless: set cal_acc = false");
  const int64_t max_k = *std::max_element(options_.topk.begin(), options_.topk.end());
  torch::NoGradGuard no_grad;
  const torch::Tensor top = std::get<1>(logits.topk(max_k, 1));
  const torch::Tensor hits = top.eq(targets.view({-1, 1}));
  for (int64_t k : options_.topk) {
    losses.emplace_back(prefix + "accuracy_top-" + std::to_string(k),
                        hits.narrow(1, 0, k).any(1).to(torch::kFloat).mean() * 100.0);
  }
}

LossMap DartsSubnetClsHead::loss(const torch::Tensor& features, const torch::Tensor& targets) {
  const torch::Tensor logits = (*this)(features);
  LossMap losses = {{"loss", loss_module()(nn::Inputs{logits, targets})}};
  add_accuracies(losses, "", logits, targets);
  return losses;
}

LossMap DartsSubnetClsHead::loss(const BackboneOutputs& features, const torch::Tensor& targets) {
  RAZOR_ASSERT(!features.outs.empty());
  LossMap losses = loss(features.outs.back(), targets);
  if (!features.aux.defined()) return losses;
  const torch::Tensor aux_logits = forward_aux(features.aux);
  losses.emplace_back("aux_head.loss", (*aux_loss_module_)(nn::Inputs{aux_logits, targets}));
  add_accuracies(losses, "aux_head.", aux_logits, targets);
  return losses;
}

namespace {

/// The head's `key` loss table, or cross entropy with `default_weight` when there is none.
std::shared_ptr<nn::Module> darts_head_loss(Args& args, const std::string& key,
                                            double default_weight, const BuildContext& context) {
  if (!args.has(key)) {
    args.accept(key);
    return std::make_shared<nn::CrossEntropyLoss>(
        nn::CrossEntropyLossOptions().with_loss_weight(default_weight));
  }
  Args loss_args = args.sub(key);
  return build_model_as<nn::Module>(loss_args, context, "a loss");
}

std::shared_ptr<torch::nn::Module> build_darts_subnet_cls_head(Args& args,
                                                               const BuildContext& context) {
  DartsSubnetClsHeadOptions options(args.require<int64_t>("num_classes"),
                                    args.require<int64_t>("in_channels"),
                                    args.require<int64_t>("aux_in_channels"));
  options.cal_acc = args.get<bool>("cal_acc", options.cal_acc);
  options.topk = args.get<std::vector<int64_t>>("topk", options.topk);
  auto loss = darts_head_loss(args, "loss", 1.0, context);
  auto aux_loss = darts_head_loss(args, "aux_loss", 0.4, context);
  return std::make_shared<DartsSubnetClsHead>(options, std::move(loss), std::move(aux_loss));
}

}  // namespace

void register_darts_subnet_head() {
  model_registry().add("DartsSubnetClsHead", build_darts_subnet_cls_head);
}

}  // namespace razor
