#pragma once
// BatchNorm re-estimation before evaluating a subnet of a weight-sharing supernet (MMRazor's
// calibrate_bn_statistics): the running statistics a supernet's BatchNorms accumulated
// under ever-changing paths do not fit any one subnet, so they are replaced by the
// statistics of the subnet on some training images.
#include <cstdint>
#include <functional>
#include <vector>

#include "components/nn/batch_norm.h"
#include "engine/data.h"
#include "engine/model.h"

namespace razor {

struct BNCalibrationReport {
  /// Images run (`num_samples`, or fewer if the loader has fewer).
  int64_t samples = 0;
  /// BatchNorms that ran and were re-estimated.
  int64_t norms = 0;
};

/// Records the per-batch statistics of some BatchNorms while the caller runs them in
/// training mode (no gradient), and then sets each one that ran to the sample-weighted mean
/// of its per-batch means and of its per-batch unbiased variances, as MMRazor does (not the
/// pooled variance). While recording, every norm runs with momentum 1 and without cross-rank
/// sync (each rank calibrates on its own images); both are restored by `apply` or, on an
/// error, by the destructor.
class BNStatisticsRecorder {
 public:
  explicit BNStatisticsRecorder(std::vector<nn::BatchNorm2d*> norms);
  ~BNStatisticsRecorder();
  BNStatisticsRecorder(const BNStatisticsRecorder&) = delete;
  BNStatisticsRecorder& operator=(const BNStatisticsRecorder&) = delete;

  /// Stops recording and sets the statistics of every norm that ran; with `across_ranks`,
  /// the sums of every rank are all-reduced first (every rank must call it, on the same
  /// norms). Returns how many norms were set.
  int64_t apply(bool across_ranks = false);
  /// The norms given, and how many batches each ran while recording.
  const std::vector<nn::BatchNorm2d*>& norms() const { return norms_; }
  const std::vector<int64_t>& batches() const { return batches_; }

 private:
  void stop();

  std::vector<nn::BatchNorm2d*> norms_;
  std::vector<torch::Tensor> mean_sums_, var_sums_;  // sample-weighted sums (double)
  std::vector<int64_t> counts_, batches_;
  std::vector<double> momenta_;
  std::vector<bool> syncs_;
  std::vector<nn::HookHandle> handles_;
  bool recording_ = true;
};

/// Every BatchNorm2d under `root` (itself included), in module order.
std::vector<nn::BatchNorm2d*> batch_norms(torch::nn::Module& root);

/// Runs `model.predict` in training mode on the first `num_samples` images of `loader`
/// (epoch 0; the last batch is cut to fit) and re-estimates every BatchNorm2d that ran
/// (BNStatisticsRecorder). With `across_ranks`, every rank feeds its own images and the
/// sums are all-reduced. `to_device` moves a batch to the model's device.
BNCalibrationReport calibrate_bn_statistics(Model& model, DataLoader& loader, int64_t num_samples,
                                            const std::function<Batch(const Batch&)>& to_device,
                                            bool across_ranks = false);

/// The same on batches already on the model's device (a search re-estimates every candidate
/// on the same images, so it reads and moves them once).
BNCalibrationReport calibrate_bn_statistics(Model& model, const std::vector<Batch>& batches,
                                            int64_t num_samples, bool across_ranks = false);

/// The first `count` samples of `batch` (views).
Batch first_samples(const Batch& batch, int64_t count);

}  // namespace razor
