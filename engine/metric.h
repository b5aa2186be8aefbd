#pragma once
// Evaluation metrics: process batches of predictions, then compute named values.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/data.h"
#include "engine/registry.h"

namespace razor {

class Metric {
 public:
  virtual ~Metric() = default;
  virtual void reset() = 0;
  /// `scores` is N x num_classes for the batch.
  virtual void process(const torch::Tensor& scores, const Batch& batch) = 0;
  /// Named results, e.g. {"accuracy/top1": 91.2}. Accuracies are percentages, as in mmcls.
  virtual std::map<std::string, double> compute() = 0;
  /// What compute() needs, as counts that add up over the ranks' shards (evaluation is
  /// distributed: each rank processes its shard, the states are summed, every rank computes).
  virtual torch::Tensor summable_state() const = 0;
  virtual void set_summable_state(const torch::Tensor& state) = 0;
};

/// Top-k accuracy ("Accuracy", topk = [1] or [1, 5]).
class Accuracy : public Metric {
 public:
  explicit Accuracy(std::vector<int64_t> topk = {1});
  void reset() override;
  void process(const torch::Tensor& scores, const Batch& batch) override;
  std::map<std::string, double> compute() override;
  torch::Tensor summable_state() const override;
  void set_summable_state(const torch::Tensor& state) override;

 private:
  std::vector<int64_t> topk_;
  std::vector<int64_t> correct_;
  int64_t total_ = 0;
};

/// Several metrics evaluated together (a config's `val_evaluator` table or list of tables).
class Evaluator {
 public:
  explicit Evaluator(std::vector<std::shared_ptr<Metric>> metrics) : metrics_(std::move(metrics)) {}
  void reset();
  void process(const torch::Tensor& scores, const Batch& batch);
  /// Sums every metric's state over the ranks (unless `across_ranks` is false: a rank that
  /// evaluated a whole data set on its own, as a search does), then computes.
  std::map<std::string, double> compute(bool across_ranks = true);

 private:
  std::vector<std::shared_ptr<Metric>> metrics_;
};

/// "metrics": Accuracy.
Registry<Metric>& metric_registry();
void register_metrics();

}  // namespace razor
