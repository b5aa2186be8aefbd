#pragma once
// BatchNorm re-estimation before evaluating a subnet of a weight-sharing supernet (MMRazor's
// calibrate_bn_statistics): the running statistics a supernet's BatchNorms accumulated
// under ever-changing paths do not fit any one subnet, so they are replaced by the
// statistics of the subnet on some training images.
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/data.h"
#include "engine/model.h"

namespace razor {

struct BNCalibrationReport {
  /// Images run (`num_samples`, or fewer if the loader has fewer).
  int64_t samples = 0;
  /// BatchNorms that ran and were re-estimated.
  int64_t norms = 0;
};

/// Runs `model.predict` in training mode on the first `num_samples` images of `loader`
/// (epoch 0; the last batch is cut to fit) and sets every BatchNorm2d that ran to the
/// sample-weighted mean of its per-batch means and of its per-batch unbiased variances,
/// as MMRazor does (not the pooled variance). With `across_ranks`, every rank feeds its own
/// images and the sums are all-reduced. `to_device` moves a batch to the model's device.
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
