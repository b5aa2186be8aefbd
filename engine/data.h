#pragma once
// What the runner needs of data: batches of tensors from a loader that knows its epoch.
// Datasets, transforms and the threaded loader itself live in datasets/.
#include <cstdint>
#include <memory>
#include <optional>

#include <torch/types.h>

#include "engine/registry.h"

namespace razor {

/// One mini-batch. `inputs` is N x C x H x W (float), `targets` N (int64 class indices),
/// `indices` N (int64 positions in the dataset, for samplers and memory banks).
struct Batch {
  torch::Tensor inputs;
  torch::Tensor targets;
  torch::Tensor indices;

  int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
  Batch to(const torch::Device& device, bool non_blocking = false) const;
};

/// An iterable of batches over one epoch at a time.
class DataLoader {
 public:
  virtual ~DataLoader() = default;
  /// Batches in one epoch (for this process's shard).
  virtual int64_t size() const = 0;
  /// Samples in the underlying dataset.
  virtual int64_t dataset_size() const = 0;
  /// Batch size as configured.
  virtual int64_t batch_size() const = 0;
  /// Fixes the shuffling and augmentation randomness of the next epoch.
  virtual void set_epoch(int64_t epoch) = 0;
  /// Starts an epoch; the first `skip` batches are not produced (resuming mid-epoch).
  virtual void start(int64_t skip = 0) = 0;
  /// The next batch of the epoch, or nothing at its end.
  virtual std::optional<Batch> next() = 0;
};

/// "dataloaders": the default type is "DataLoader" (datasets/data_loader.h).
Registry<DataLoader>& dataloader_registry();

}  // namespace razor
