#include "components/architectures/batch_augments.h"

#include <cmath>
#include <numeric>

#include <torch/torch.h>

#include "components/nn/deliverable.h"
#include "engine/error.h"

namespace razor {

namespace {

torch::Tensor mix_scores(const torch::Tensor& scores, const torch::Tensor& index, double lambda) {
  return scores * lambda + scores.index_select(0, index) * (1.0 - lambda);
}

}  // namespace

double sample_beta(double alpha) {
  // Beta(α, α) is the first coordinate of a Dirichlet(α, α).
  return torch::_sample_dirichlet(torch::full({2}, alpha, torch::kDouble))[0].item<double>();
}

Mixup::Mixup(double alpha) : alpha_(alpha) { RAZOR_CHECK(alpha > 0, "Mixup: alpha must be positive, got ", alpha); }

std::vector<torch::Tensor> Mixup::draw(int64_t n, int64_t, int64_t) const {
  return {torch::tensor(sample_beta(alpha_), torch::kDouble), torch::randperm(n, torch::kLong)};
}

std::pair<torch::Tensor, torch::Tensor> Mixup::mix(const torch::Tensor& inputs, const torch::Tensor& scores,
                                                   const std::vector<torch::Tensor>& choices) const {
  const double lambda = choices.at(0).item<double>();
  const torch::Tensor index = choices.at(1).to(inputs.device());
  return {inputs * lambda + inputs.index_select(0, index) * (1.0 - lambda), mix_scores(scores, index, lambda)};
}

CutMix::CutMix(double alpha) : alpha_(alpha) { RAZOR_CHECK(alpha > 0, "CutMix: alpha must be positive, got ", alpha); }

std::vector<torch::Tensor> CutMix::draw(int64_t n, int64_t height, int64_t width) const {
  const double lambda = sample_beta(alpha_);
  const double ratio = std::sqrt(1.0 - lambda);
  const int64_t cut_h = static_cast<int64_t>(ratio * height), cut_w = static_cast<int64_t>(ratio * width);
  const int64_t cy = torch::randint(height, {1}, torch::kLong).item<int64_t>();
  const int64_t cx = torch::randint(width, {1}, torch::kLong).item<int64_t>();
  const int64_t y1 = std::clamp<int64_t>(cy - cut_h / 2, 0, height), y2 = std::clamp<int64_t>(cy + cut_h / 2, 0, height);
  const int64_t x1 = std::clamp<int64_t>(cx - cut_w / 2, 0, width), x2 = std::clamp<int64_t>(cx + cut_w / 2, 0, width);
  // The label weight is the share of the image left unpasted.
  const double corrected = 1.0 - static_cast<double>((y2 - y1) * (x2 - x1)) / static_cast<double>(height * width);
  return {torch::tensor(corrected, torch::kDouble), torch::randperm(n, torch::kLong),
          torch::tensor({y1, y2, x1, x2}, torch::kLong)};
}

std::pair<torch::Tensor, torch::Tensor> CutMix::mix(const torch::Tensor& inputs, const torch::Tensor& scores,
                                                    const std::vector<torch::Tensor>& choices) const {
  using torch::indexing::Slice;
  const double lambda = choices.at(0).item<double>();
  const torch::Tensor index = choices.at(1).to(inputs.device());
  const torch::Tensor box = choices.at(2);
  const int64_t y1 = box[0].item<int64_t>(), y2 = box[1].item<int64_t>();
  const int64_t x1 = box[2].item<int64_t>(), x2 = box[3].item<int64_t>();
  torch::Tensor mixed = inputs.clone();
  mixed.index_put_({Slice(), Slice(), Slice(y1, y2), Slice(x1, x2)},
                   inputs.index_select(0, index).index({Slice(), Slice(), Slice(y1, y2), Slice(x1, x2)}));
  return {mixed, mix_scores(scores, index, lambda)};
}

BatchAugments::BatchAugments(std::vector<std::unique_ptr<BatchAugment>> augments, std::vector<double> probs,
                             int64_t num_classes)
    : augments_(std::move(augments)), probs_(std::move(probs)), num_classes_(num_classes) {
  RAZOR_ASSERT(!augments_.empty() && augments_.size() == probs_.size());
}

Batch BatchAugments::operator()(const Batch& batch) const {
  RAZOR_CHECK(batch.inputs.dim() == 4, "batch augments need N x C x H x W inputs, got ", batch.inputs.sizes());
  const int64_t n = batch.inputs.size(0), height = batch.inputs.size(2), width = batch.inputs.size(3);
  // Everything random is drawn in one deliverable: which augment (or none), then its choices.
  std::vector<torch::Tensor> choices = deliverable("batch_augments", [&] {
    std::vector<double> weights = probs_;
    weights.push_back(std::max(0.0, 1.0 - std::accumulate(probs_.begin(), probs_.end(), 0.0)));
    const int64_t which =
        torch::multinomial(torch::tensor(weights, torch::kDouble), 1).item<int64_t>();
    std::vector<torch::Tensor> drawn{torch::tensor(which, torch::kLong)};
    if (which < static_cast<int64_t>(augments_.size())) {
      for (auto& c : augments_[which]->draw(n, height, width)) drawn.push_back(std::move(c));
    }
    return drawn;
  });
  const int64_t which = choices.at(0).item<int64_t>();
  torch::Tensor scores = batch.targets.is_floating_point()
                             ? batch.targets
                             : torch::one_hot(batch.targets, num_classes_).to(batch.inputs.scalar_type());
  Batch out = batch;
  out.targets = scores;
  if (which >= static_cast<int64_t>(augments_.size())) return out;
  std::vector<torch::Tensor> own(choices.begin() + 1, choices.end());
  RAZOR_CHECK(own.size() > 1 && own[1].numel() == n, "batch augments: the delivered choices are for a batch of ",
              own.size() > 1 ? own[1].numel() : 0, " images, this batch has ", n);
  std::tie(out.inputs, out.targets) = augments_[which]->mix(batch.inputs, scores, own);
  return out;
}

std::unique_ptr<BatchAugments> build_batch_augments(Args& train_cfg, int64_t num_classes) {
  std::vector<std::unique_ptr<BatchAugment>> augments;
  for (Args& augment : train_cfg.sub_list("augments")) {
    const std::string type = augment.require<std::string>("type");
    const double alpha = augment.require<double>("alpha");
    if (!(alpha > 0)) augment.fail("alpha", "must be positive");
    if (type == "Mixup") {
      augments.push_back(std::make_unique<Mixup>(alpha));
    } else if (type == "CutMix") {
      augments.push_back(std::make_unique<CutMix>(alpha));
    } else {
      augment.fail("type", "unknown batch augment \"" + type + "\" (razor has Mixup, CutMix)");
    }
    augment.finish();
  }
  if (augments.empty()) train_cfg.fail("augments", "give at least one batch augment");
  std::vector<double> probs(augments.size(), 1.0 / static_cast<double>(augments.size()));
  if (train_cfg.has("probs")) {
    probs = train_cfg.require<std::vector<double>>("probs");
    if (probs.size() != augments.size()) {
      train_cfg.fail("probs", "has " + std::to_string(probs.size()) + " values for " + std::to_string(augments.size()) +
                                  " augments");
    }
    double sum = 0;
    for (double p : probs) {
      if (p < 0) train_cfg.fail("probs", "must not be negative");
      sum += p;
    }
    if (sum > 1.0 + 1e-6) train_cfg.fail("probs", "must sum to at most 1");
  }
  train_cfg.finish();
  return std::make_unique<BatchAugments>(std::move(augments), std::move(probs), num_classes);
}

}  // namespace razor
