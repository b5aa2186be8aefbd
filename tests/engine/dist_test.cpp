// The single-process face of engine/dist: world size 1 goes through the same calls.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "engine/dist.h"

using namespace razor;

TEST_CASE("dist in one process: rank 0 of 1, collectives leave values as they are", "[dist]") {
  CHECK(dist::world_size() == 1);
  CHECK(dist::rank() == 0);
  CHECK(dist::is_main());
  auto t = torch::tensor({1.0, 2.0});
  dist::all_reduce(t);
  CHECK(torch::equal(t, torch::tensor({1.0, 2.0})));
  const Json value = {{"subnet", {1, 2, 3}}};
  CHECK(dist::broadcast_json(value) == value);
  const auto gathered = dist::all_gather_json(value);
  REQUIRE(gathered.size() == 1);
  CHECK(gathered[0] == value);
  dist::barrier();
}

TEST_CASE("the launcher's environment is read, and a missing variable is a usage error", "[dist]") {
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "1", 1);
  const auto info = dist::detect_launch("env");
  CHECK(info.rank == 1);
  CHECK(info.world_size == 4);
  CHECK(info.local_rank == 1);
  CHECK(info.launcher == "env");
  setenv("RANK", "4", 1);
  CHECK_THROWS_WITH(dist::detect_launch("env"), Catch::Contains("rank 4 is not in [0, 4)"));
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  unsetenv("LOCAL_RANK");
  CHECK_THROWS_WITH(dist::detect_launch("env"), Catch::Contains("RANK is not set"));
  CHECK(dist::detect_launch("none").world_size == 1);
  CHECK_THROWS_WITH(dist::detect_launch("slurm"), Catch::Contains("auto, none, mpi or env"));
}

TEST_CASE("shared generators give every rank the same draws for a stream", "[dist]") {
  auto draw = [](uint64_t seed, uint64_t stream) {
    auto generator = dist::shared_generator(seed, stream);
    return torch::randint(0, 1000, {16}, generator, torch::kLong);
  };
  CHECK(torch::equal(draw(3, 7), draw(3, 7)));       // what another rank computes
  CHECK_FALSE(torch::equal(draw(3, 7), draw(3, 8)));  // the next iteration
  CHECK_FALSE(torch::equal(draw(3, 7), draw(4, 7)));  // another seed
  // Independent of the global generator (which diff_rank_seed varies per rank).
  torch::manual_seed(1);
  const auto a = draw(3, 7);
  torch::manual_seed(2);
  CHECK(torch::equal(a, draw(3, 7)));
}
