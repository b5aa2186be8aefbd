#pragma once
// Generated data for tests and quick runs: each class has a smooth random prototype image,
// and sample i is prototype[i % num_classes] plus Gaussian noise fixed by (seed, i), so the
// same index always gives the same sample and a small model can learn the classes. The
// prototypes depend only on the class and shape, not on `seed`: a train set and a val set
// with different seeds hold different samples of the same classes.
#include <cstdint>
#include <vector>

#include "datasets/dataset.h"

namespace razor::data {

class Synthetic : public Dataset {
 public:
  struct Options {
    /// Samples in the dataset.
    int64_t num_samples = 1024;
    /// Classes; labels cycle 0, 1, ..., num_classes - 1.
    int64_t num_classes = 10;
    /// Image shape [C, H, W].
    std::vector<int64_t> shape = {1, 28, 28};
    /// Fixes the noise (independent of the run's seed; the prototypes do not depend on it).
    uint64_t seed = 0;
    /// Standard deviation of the per-pixel noise (prototype values lie in [0, 1]).
    double noise = 0.5;
  };

  explicit Synthetic(Options options);

  int64_t size() const override { return options_.num_samples; }
  Sample get(int64_t index) const override;
  int64_t num_classes() const override { return options_.num_classes; }
  std::vector<std::string> classes() const override;

 private:
  Options options_;
  std::vector<cv::Mat> prototypes_;  // H x W x C float32, one per class
};

}  // namespace razor::data
