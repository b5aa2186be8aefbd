#pragma once
// Data-parallel training on c10d, as PyTorch's DistributedDataParallel does it, without
// wrapping the model's forward: parameters and buffers start equal (broadcast from rank 0),
// buffers are re-broadcast before each forward (unless SyncBatchNorm keeps them equal), and
// gradients are averaged by c10d's Reducer (buckets all-reduced while backward still runs).
//
// The Reducer is driven from the optimiser wrapper: OptimWrapper::backward(loss) calls
// GradientSync::prepare_for_backward(loss) first, on the iterations that step (gradient
// accumulation synchronises only then). So an algorithm's train_step may run several
// forward/backward passes per iteration; each backward that reaches a stepping optimiser
// averages that optimiser's gradients.
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace c10d {
class Logger;
class Reducer;
}

namespace razor {

class OptimWrapper;

/// Settings from the config (`model_wrapper_cfg`, `sync_bn`).
struct DataParallelOptions {
  /// Let parameters go without a gradient in an iteration (one-shot NAS subnets, unused
  /// heads); costs a walk of the autograd graph per backward.
  bool find_unused_parameters = false;
  /// Broadcast rank 0's buffers before each forward (off with SyncBatchNorm).
  bool broadcast_buffers = true;
  /// Bucket size for the gradient all-reduce.
  int64_t bucket_cap_mb = 25;
};

/// One c10d::Reducer over the parameters one optimiser steps.
class GradientSync {
 public:
  GradientSync(std::vector<torch::Tensor> parameters, std::vector<std::string> names,
               const DataParallelOptions& options);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  /// Backward from `loss` with its gradients averaged over the ranks; a lost rank is an
  /// error that names it.
  void backward(const torch::Tensor& loss);

 private:
  std::shared_ptr<c10d::Reducer> reducer_;
  /// The Reducer reports to a Logger when the set of unused parameters changes between
  /// iterations (every one-shot NAS step) and dereferences it unchecked: it must exist.
  std::shared_ptr<c10d::Logger> logger_;
  bool find_unused_;
};

/// Norm layers whose training statistics can span every rank's batch (SyncBatchNorm).
class CrossRankNorm {
 public:
  virtual ~CrossRankNorm() = default;
  virtual void set_sync_across_ranks(bool on) = 0;
};

/// The run's data parallelism; the runner makes one when the world size is above 1.
class DataParallel {
 public:
  DataParallel(torch::nn::Module& model, const DataParallelOptions& options, bool sync_bn);

  /// Attaches a GradientSync to `optim` (each wrapper of an OptimWrapperDict gets its own,
  /// since its optimiser steps alone).
  void attach(OptimWrapper& optim);
  /// Before each train step: rank 0's buffers to every rank (when broadcasting them).
  void before_train_step();

 private:
  torch::nn::Module& model_;
  DataParallelOptions options_;
  std::vector<torch::Tensor> buffers_;
  std::vector<std::shared_ptr<GradientSync>> syncs_;
};

/// Copies rank 0's parameters and buffers to every rank (identical initialisation).
void broadcast_module_states(torch::nn::Module& model);

}  // namespace razor
