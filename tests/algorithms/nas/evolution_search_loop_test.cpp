// EvolutionSearchLoop's scoring: the batches kept between candidates give exactly the scores
// of reading them again for each candidate, and a list of subnets (scored in the order that
// shares the most stages) the scores of each alone.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "algorithms/nas/evolution_search_loop.h"
#include "algorithms/nas/nas_algorithm.h"
#include "apps/register_all.h"
#include "engine/config.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

/// A search on the tiny supernet with train_cfg.<key> = value, writing no files.
std::unique_ptr<Runner> search_runner(const std::string& key, int64_t value) {
  register_all();
  auto config = std::make_shared<Config>(
      load_config(std::string(RAZOR_TEST_DATA_DIR) + "/configs/nas/tiny_spos_search.toml"));
  config->tree["train_cfg"][key] = value;
  RunnerOptions options;
  options.write_files = false;
  options.work_dir = (fs::temp_directory_path() / "razor_test_search_cache").string();
  torch::manual_seed(0);
  return std::make_unique<Runner>(config, options);
}

/// The runner's search loop and the mutator it searches with.
EvolutionSearchLoop& loop_of(Runner& runner) { return dynamic_cast<EvolutionSearchLoop&>(runner.train_loop()); }
NasMutator& mutator_of(Runner& runner) { return dynamic_cast<NasAlgorithm&>(runner.model()).mutator(); }

}  // namespace

TEST_CASE("EvolutionSearchLoop scores equal with and without the batch cache", "[nas][search]") {
  std::vector<std::vector<double>> scores;
  for (int64_t cache_mb : {1024, 0}) {
    auto runner = search_runner("cache_batches_mb", cache_mb);
    EvolutionSearchLoop& loop = loop_of(*runner);
    NasMutator& mutator = mutator_of(*runner);
    at::Generator generator = at::detail::createCPUGenerator(7);
    std::vector<double> got;
    for (int i = 0; i < 3; ++i) got.push_back(loop.score(mutator.sample_choices("random", generator)));
    // The same candidate twice: the cache is not consumed by scoring.
    got.push_back(loop.score(mutator.sample_choices("max")));
    got.push_back(loop.score(mutator.sample_choices("max")));
    CHECK(got[3] == got[4]);
    scores.push_back(got);
  }
  CHECK(scores[0] == scores[1]);

  CHECK_THROWS_WITH(search_runner("cache_batches_mb", -1)->train_loop(), Catch::Contains("cache_batches_mb"));
  CHECK_THROWS_WITH(search_runner("prefix_cache_mb", -1)->train_loop(), Catch::Contains("prefix_cache_mb"));
}

TEST_CASE("EvolutionSearchLoop scores a list of subnets as it scores each alone", "[nas][search]") {
  std::vector<std::vector<double>> scores;
  for (int64_t prefix_mb : {1024, 0}) {
    auto runner = search_runner("prefix_cache_mb", prefix_mb);
    EvolutionSearchLoop& loop = loop_of(*runner);
    NasMutator& mutator = mutator_of(*runner);
    at::Generator generator = at::detail::createCPUGenerator(7);
    std::vector<Json> choices;
    for (int i = 0; i < 8; ++i) choices.push_back(mutator.sample_choices("random", generator));
    const std::vector<double> together = loop.score(choices);
    CHECK((loop.prefix_cache() != nullptr) == (prefix_mb > 0));
    if (loop.prefix_cache()) CHECK(loop.prefix_cache()->reused_stages() > 0);
    for (size_t i = 0; i < choices.size(); ++i) CHECK(loop.score(choices[i]) == together[i]);
    scores.push_back(together);
  }
  CHECK(scores[0] == scores[1]);
}
