#include "components/architectures/cls_head.h"

#include <torch/torch.h>

#include "components/nn/tap.h"
#include "engine/error.h"

namespace razor {

ClsHead::ClsHead(std::shared_ptr<nn::Module> loss_module, const std::string& name)
    : nn::Module(name) {
  RAZOR_ASSERT(loss_module != nullptr);
  loss_module_ = register_module("loss_module", std::move(loss_module));
}

LossMap ClsHead::loss(const torch::Tensor& features, const torch::Tensor& targets) {
  torch::Tensor logits = (*this)(features);
  return {{"loss", (*loss_module_)(nn::Inputs{logits, targets})}};
}

LossMap ClsHead::loss(const BackboneOutputs& features, const torch::Tensor& targets) {
  RAZOR_ASSERT(!features.outs.empty());
  return loss(features.outs.back(), targets);
}

LinearClsHead::LinearClsHead(int64_t num_classes, int64_t in_channels,
                             std::shared_ptr<nn::Module> loss_module)
    : ClsHead(std::move(loss_module), "LinearClsHead") {
  RAZOR_CHECK(num_classes > 0, "LinearClsHead: num_classes must be positive, got ", num_classes);
  RAZOR_CHECK(in_channels > 0, "LinearClsHead: in_channels must be positive, got ", in_channels);
  fc_ = register_module("fc", std::make_shared<nn::Linear>(in_channels, num_classes));
  torch::NoGradGuard no_grad;
  fc_->weight.normal_(0.0, 0.01);
  fc_->bias.zero_();
}

torch::Tensor ClsHead::pre_logits(const torch::Tensor& features) const {
  tap(path().empty() ? "pre_logits" : path() + ".pre_logits", features);
  return features;
}

torch::Tensor LinearClsHead::forward(const torch::Tensor& input) { return (*fc_)(pre_logits(input)); }

}  // namespace razor
