#include "engine/metric.h"

#include <torch/torch.h>

#include "engine/dist.h"

namespace razor {

Accuracy::Accuracy(std::vector<int64_t> topk) : topk_(std::move(topk)) { reset(); }

void Accuracy::reset() {
  correct_.assign(topk_.size(), 0);
  total_ = 0;
}

void Accuracy::process(const torch::Tensor& scores, const Batch& batch) {
  const int64_t max_k = *std::max_element(topk_.begin(), topk_.end());
  RAZOR_CHECK(max_k <= scores.size(1), "Accuracy: topk ", max_k, " exceeds the number of classes ",
              scores.size(1));
  auto top = std::get<1>(scores.topk(max_k, 1, /*largest=*/true, /*sorted=*/true));
  auto hits = top.eq(batch.targets.to(top.device()).view({-1, 1}));  // N x max_k
  auto cumulative = hits.cumsum(1).gt(0).sum(0).to(torch::kCPU);  // hits within top-j
  for (size_t i = 0; i < topk_.size(); ++i) correct_[i] += cumulative[topk_[i] - 1].item<int64_t>();
  total_ += scores.size(0);
}

std::map<std::string, double> Accuracy::compute() {
  std::map<std::string, double> out;
  for (size_t i = 0; i < topk_.size(); ++i) {
    out["accuracy/top" + std::to_string(topk_[i])] =
        total_ ? 100.0 * static_cast<double>(correct_[i]) / static_cast<double>(total_) : 0.0;
  }
  return out;
}

torch::Tensor Accuracy::summable_state() const {
  // Doubles count exactly up to 2^53 samples.
  std::vector<double> values(correct_.begin(), correct_.end());
  values.push_back(static_cast<double>(total_));
  return torch::tensor(values, torch::kDouble);
}

void Accuracy::set_summable_state(const torch::Tensor& state) {
  RAZOR_ASSERT(state.numel() == static_cast<int64_t>(topk_.size()) + 1);
  const auto values = state.to(torch::kCPU).contiguous();
  const double* data = values.data_ptr<double>();
  for (size_t i = 0; i < topk_.size(); ++i) correct_[i] = static_cast<int64_t>(std::llround(data[i]));
  total_ = static_cast<int64_t>(std::llround(data[topk_.size()]));
}

void Evaluator::reset() {
  for (auto& m : metrics_) m->reset();
}

void Evaluator::process(const torch::Tensor& scores, const Batch& batch) {
  for (auto& m : metrics_) m->process(scores, batch);
}

std::map<std::string, double> Evaluator::compute(bool across_ranks) {
  if (across_ranks && dist::world_size() > 1) {
    for (auto& m : metrics_) {
      torch::Tensor state = m->summable_state();
      dist::all_reduce(state);
      m->set_summable_state(state);
    }
  }
  std::map<std::string, double> out;
  for (auto& m : metrics_) {
    for (const auto& item : m->compute()) out[item.first] = item.second;
  }
  return out;
}

Registry<Metric>& metric_registry() {
  static Registry<Metric> registry("metrics");
  return registry;
}

void register_metrics() {
  static bool done = false;
  if (done) return;
  done = true;
  metric_registry().add("Accuracy", [](Args& args, const BuildContext&) {
    std::vector<int64_t> topk;
    if (args.has("topk") && args.table().at("topk").is_number_integer()) {
      topk = {args.require<int64_t>("topk")};
    } else {
      topk = args.get<std::vector<int64_t>>("topk", {1});
    }
    RAZOR_CHECK(!topk.empty(), args.where("topk"), ": must not be empty");
    for (int64_t k : topk) RAZOR_CHECK(k >= 1, args.where("topk"), ": values must be >= 1, got ", k);
    return std::make_shared<Accuracy>(topk);
  });
}

}  // namespace razor
