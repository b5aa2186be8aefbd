#include "datasets/sampler.h"

#include <numeric>
#include <random>

#include "datasets/random.h"
#include "engine/error.h"

namespace razor::data {

DistributedSampler::DistributedSampler(int64_t dataset_size, Options options)
    : dataset_size_(dataset_size), options_(options) {
  RAZOR_CHECK(options_.world_size >= 1, "world_size must be >= 1, got ", options_.world_size);
  RAZOR_CHECK(options_.rank >= 0 && options_.rank < options_.world_size, "rank ", options_.rank,
              " is not in [0, ", options_.world_size, ")");
  RAZOR_CHECK(dataset_size_ > 0, "the dataset is empty");
  const int64_t world = options_.world_size;
  const int64_t rank = options_.rank;
  per_rank_ = !options_.even        ? (dataset_size_ - rank + world - 1) / world
              : options_.drop_last ? dataset_size_ / world
                                   : (dataset_size_ + world - 1) / world;
  RAZOR_CHECK(per_rank_ > 0, "the dataset has ", dataset_size_, " samples, fewer than the ", world,
              " processes (drop_last leaves none)");
}

std::vector<int64_t> DistributedSampler::indices() const {
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (options_.shuffle) {
    // Fisher-Yates with our own draws: the same permutation with any standard library.
    std::mt19937_64 rng(combine_seed(options_.seed, static_cast<uint64_t>(epoch_)));
    for (size_t i = order.size() - 1; i > 0; --i) {
      std::swap(order[i], order[uniform_index(rng, i + 1)]);
    }
  }
  const int64_t world = options_.world_size;
  const int64_t total = options_.even ? per_rank_ * world : dataset_size_;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(per_rank_));
  for (int64_t k = options_.rank; k < total; k += world) {
    out.push_back(order[static_cast<size_t>(k % dataset_size_)]);  // wraps when padding
  }
  return out;
}

}  // namespace razor::data
