#pragma once
// The engine's DataLoader over a Dataset: sharded, shuffled batches built by worker threads,
// delivered in order. Registered as "DataLoader" in dataloader_registry():
//   [train_dataloader]
//   batch_size = 128      (required)
//   num_workers = 1       threads building batches; 0 builds them in the calling thread
//   prefetch = 2          batches ready or in flight per worker
//   shuffle = true
//   drop_last = false     drop the last incomplete batch
//   dataset = { type = "FashionMNIST", split = "train", pipeline = [...] }
// The seed, rank and world size come from the BuildContext.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "engine/data.h"

namespace razor::data {

class ThreadedDataLoader : public DataLoader {
 public:
  struct Options {
    /// Samples per batch.
    int64_t batch_size = 1;
    /// Worker threads; 0 builds batches in the thread that calls next().
    int num_workers = 1;
    /// Batches each worker may have ready or in progress ahead of the consumer.
    int prefetch = 2;
    /// Reshuffle every epoch (seeded by seed and epoch).
    bool shuffle = true;
    /// Drop the last batch of an epoch when it is smaller than batch_size.
    bool drop_last = false;
    /// The run's seed: the shuffle and every sample's augmentation derive from it.
    uint64_t seed = 0;
    /// Sharding: this process reads every world_size-th sample from rank.
    int rank = 0;
    int world_size = 1;
    /// Equal shards (padded by wrapping) for training; uneven, unpadded ones for evaluation.
    bool even_shards = true;
  };

  ThreadedDataLoader(std::shared_ptr<const Dataset> dataset, Options options);
  ~ThreadedDataLoader() override;
  ThreadedDataLoader(const ThreadedDataLoader&) = delete;
  ThreadedDataLoader& operator=(const ThreadedDataLoader&) = delete;

  int64_t size() const override { return num_batches_; }
  int64_t dataset_size() const override { return dataset_->size(); }
  int64_t batch_size() const override { return options_.batch_size; }
  /// Takes effect at the next start().
  void set_epoch(int64_t epoch) override { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }
  /// Abandons any epoch in progress (joining its workers) and starts the current epoch at
  /// batch `skip`; skipped batches are never decoded.
  void start(int64_t skip = 0) override;
  /// The next batch in order; nothing at the end of the epoch. Starts the epoch if start()
  /// was never called. A worker's exception is rethrown here, at its batch.
  std::optional<Batch> next() override;

  const Dataset& dataset() const { return *dataset_; }
  std::shared_ptr<const Dataset> dataset_ptr() const { return dataset_; }
  const Options& options() const { return options_; }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };

  Batch make_batch(int64_t batch) const;
  void worker_loop();
  /// Stops and joins the workers of the epoch in progress, if any.
  void stop();

  std::shared_ptr<const Dataset> dataset_;
  Options options_;
  DistributedSampler sampler_;
  int64_t num_batches_ = 0;
  int64_t epoch_ = 0;

  // The running epoch; written only by start() while no worker runs.
  bool started_ = false;
  int64_t running_epoch_ = 0;
  std::vector<int64_t> order_;

  std::mutex mutex_;
  std::condition_variable produced_;  // a batch became ready
  std::condition_variable consumed_;  // the consumer advanced, or stop
  int64_t next_batch_ = 0;            // the consumer's next batch
  int64_t next_claim_ = 0;            // the next batch a worker will build
  bool stopping_ = false;
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> workers_;
};

/// Adds "DataLoader" to dataloader_registry() (called by register_datasets).
void register_data_loader();

}  // namespace razor::data
