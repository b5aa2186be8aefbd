#include "datasets/sampler.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <set>

#include "engine/error.h"

using razor::data::DistributedSampler;

namespace {

std::vector<int64_t> epoch_indices(int64_t size, DistributedSampler::Options options,
                                   int64_t epoch) {
  DistributedSampler sampler(size, options);
  sampler.set_epoch(epoch);
  return sampler.indices();
}

}  // namespace

TEST_CASE("Shuffling is a permutation fixed by (seed, epoch)", "[datasets]") {
  DistributedSampler::Options options;
  options.seed = 42;
  const auto a = epoch_indices(100, options, 0);
  CHECK(a == epoch_indices(100, options, 0));
  CHECK(a != epoch_indices(100, options, 1));
  options.seed = 43;
  CHECK(a != epoch_indices(100, options, 0));

  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(100);
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted == all);
  CHECK(a != all);

  options.shuffle = false;
  CHECK(epoch_indices(100, options, 5) == all);
}

TEST_CASE("Shards are disjoint, cover the dataset and have equal sizes", "[datasets]") {
  for (int64_t size : {12, 13, 3}) {
    for (int world : {1, 2, 3, 4}) {
      for (bool drop_last : {false, true}) {
        if (drop_last && size < world) continue;
        DistributedSampler::Options options;
        options.seed = 7;
        options.world_size = world;
        options.drop_last = drop_last;
        std::vector<int64_t> joined;
        std::multiset<int64_t> seen;
        int64_t per_rank = -1;
        for (int rank = 0; rank < world; ++rank) {
          options.rank = rank;
          DistributedSampler sampler(size, options);
          sampler.set_epoch(3);
          const auto indices = sampler.indices();
          CHECK(static_cast<int64_t>(indices.size()) == sampler.size());
          if (per_rank < 0) per_rank = sampler.size();
          CHECK(sampler.size() == per_rank);
          seen.insert(indices.begin(), indices.end());
        }
        const std::set<int64_t> distinct(seen.begin(), seen.end());
        INFO("size " << size << " world " << world << " drop_last " << drop_last);
        if (drop_last) {
          CHECK(per_rank == size / world);
          CHECK(distinct.size() == seen.size());  // disjoint
        } else {
          CHECK(per_rank == (size + world - 1) / world);
          CHECK(static_cast<int64_t>(distinct.size()) == size);  // covers everything
          // Only the wrapped padding repeats.
          CHECK(static_cast<int64_t>(seen.size()) - size == per_rank * world - size);
        }
      }
    }
  }
  // Every rank sees the same permutation: rank r takes positions r, r + world, ...
  DistributedSampler::Options options;
  options.seed = 9;
  const auto whole = epoch_indices(10, options, 2);
  options.world_size = 2;
  options.rank = 1;
  const auto shard = epoch_indices(10, options, 2);
  CHECK(shard == std::vector<int64_t>{whole[1], whole[3], whole[5], whole[7], whole[9]});
}

TEST_CASE("Sampler options are validated", "[datasets]") {
  DistributedSampler::Options options;
  options.world_size = 2;
  options.rank = 2;
  CHECK_THROWS_AS(DistributedSampler(10, options), razor::Error);
  options.rank = 0;
  CHECK_THROWS_AS(DistributedSampler(0, options), razor::Error);
}
