#pragma once
// The order of one epoch's samples for one process, as torch's DistributedSampler: a
// permutation seeded by (seed, epoch) (the same on every rank), padded by wrapping around so
// that it divides evenly (or its tail dropped), then every world_size-th index from `rank`.
#include <cstdint>
#include <vector>

namespace razor::data {

class DistributedSampler {
 public:
  struct Options {
    /// Shuffle each epoch (else the natural order).
    bool shuffle = true;
    /// With the epoch, fixes the permutation; must be equal on all ranks.
    uint64_t seed = 0;
    int rank = 0;
    int world_size = 1;
    /// Drop the tail that does not divide evenly among ranks instead of padding.
    bool drop_last = false;
    /// Pad (or drop) so that every rank gets as many samples. Evaluation turns it off: each
    /// sample is then counted once, and the ranks' shards differ in length by at most one.
    bool even = true;
  };

  DistributedSampler(int64_t dataset_size, Options options);

  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }

  /// Samples this rank gets per epoch (equal on all ranks when `even`).
  int64_t size() const { return per_rank_; }

  /// This rank's dataset indices for the current epoch, in order.
  std::vector<int64_t> indices() const;

 private:
  int64_t dataset_size_;
  Options options_;
  int64_t epoch_ = 0;
  int64_t per_rank_ = 0;
};

}  // namespace razor::data
