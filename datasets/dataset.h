#pragma once
// Datasets: indexable collections of (image, label) samples, built from config tables of
// the "datasets" registry. A dataset table has `type`, the reader's own keys, and two keys
// every dataset understands:
//   pipeline = [ {type = "RandomCrop", size = 28, padding = 4}, ... ]  (transforms.h)
//   indices  = N          use only the first N samples (quick runs, tests),
//   indices  = -N         use only the last N samples (MMEngine's negative count: DARTS
//                         splits a train set into `indices = 25000` and `indices = -25000`), or
//   indices  = [i, ...]   use only these samples, in this order.
#include <cstdint>
#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <random>
#include <string>
#include <vector>

#include "datasets/transforms.h"
#include "engine/registry.h"

namespace razor::data {

/// One sample: an H x W x C image (uint8 in [0, 255] or float32 in [0, 1] units; colour
/// images are RGB) and its class index.
struct Sample {
  cv::Mat image;
  int64_t label = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;

  /// The stored sample, before the pipeline. The image may view the dataset's memory: treat
  /// it as read-only and valid while the dataset lives. Safe to call from several threads.
  virtual Sample get(int64_t index) const = 0;

  /// Class names in label order (empty when unknown).
  virtual std::vector<std::string> classes() const { return {}; }

  /// Number of classes (0 when unknown).
  virtual int64_t num_classes() const { return static_cast<int64_t>(classes().size()); }

  /// The sample after the dataset's pipeline, drawing randomness from `rng`.
  Sample load(int64_t index, std::mt19937_64& rng) const;

  /// The pipeline applied by load() (never null; empty by default).
  const Compose& pipeline() const { return *pipeline_; }
  void set_pipeline(std::shared_ptr<const Compose> pipeline);

 protected:
  /// Throws std::out_of_range for an index outside [0, size()).
  void check_index(int64_t index) const;

 private:
  std::shared_ptr<const Compose> pipeline_ =
      std::make_shared<const Compose>(std::vector<std::shared_ptr<const Transform>>{});
};

/// A view of some samples of another dataset, in a given order (the `indices` key).
class Subset : public Dataset {
 public:
  /// Every index must be in [0, base->size()).
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  /// The first min(count, base->size()) samples.
  static std::shared_ptr<Subset> first(std::shared_ptr<const Dataset> base, int64_t count);
  /// The last min(count, base->size()) samples.
  static std::shared_ptr<Subset> last(std::shared_ptr<const Dataset> base, int64_t count);

  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Sample get(int64_t index) const override;
  std::vector<std::string> classes() const override { return base_->classes(); }
  int64_t num_classes() const override { return base_->num_classes(); }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

/// "datasets": FashionMNIST, MNIST, CIFAR10, CIFAR100, ImageFolder, Synthetic.
Registry<Dataset>& dataset_registry();

/// A factory for a reader; `pipeline` and `indices` are handled by register_dataset.
using DatasetFactory = std::function<std::shared_ptr<Dataset>(Args&, const BuildContext&)>;

/// Registers `type`, wrapping `reader` so that the table's `pipeline` and `indices` keys are
/// applied to what it builds. Use this rather than dataset_registry().add().
void register_dataset(const std::string& type, DatasetFactory reader);

/// Builds a dataset table (with its pipeline and indices) from dataset_registry().
std::shared_ptr<Dataset> build_dataset(Args& args, const BuildContext& context = {});

}  // namespace razor::data
