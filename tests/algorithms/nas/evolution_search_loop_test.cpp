// EvolutionSearchLoop's scoring: the batches kept between candidates give exactly the scores
// of reading them again for each candidate, and a list of subnets (scored in the order that
// shares the most stages) the scores of each alone.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "algorithms/nas/evolution_search_loop.h"
#include "algorithms/nas/nas_algorithm.h"
#include "apps/register_all.h"
#include "engine/config.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

TEST_CASE("EvolutionSearchLoop scores equal with and without the batch cache", "[nas][search]") {
  register_all();
  std::vector<std::vector<double>> scores;
  for (int64_t cache_mb : {1024, 0}) {
    auto config = std::make_shared<Config>(
        load_config(std::string(RAZOR_TEST_DATA_DIR) + "/configs/nas/tiny_spos_search.toml"));
    config->tree["train_cfg"]["cache_batches_mb"] = cache_mb;
    RunnerOptions options;
    options.write_files = false;
    options.work_dir = (fs::temp_directory_path() / "razor_test_search_cache").string();
    torch::manual_seed(0);
    Runner runner(config, options);
    auto& loop = dynamic_cast<EvolutionSearchLoop&>(runner.train_loop());
    NasMutator& mutator = dynamic_cast<NasAlgorithm&>(runner.model()).mutator();
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

  auto config = std::make_shared<Config>(
      load_config(std::string(RAZOR_TEST_DATA_DIR) + "/configs/nas/tiny_spos_search.toml"));
  config->tree["train_cfg"]["cache_batches_mb"] = -1;
  RunnerOptions options;
  options.write_files = false;
  Runner runner(config, options);
  CHECK_THROWS_WITH(runner.train_loop(), Catch::Contains("cache_batches_mb"));
}

TEST_CASE("EvolutionSearchLoop scores a list of subnets as it scores each alone", "[nas][search]") {
  register_all();
  std::vector<std::vector<double>> scores;
  for (int64_t prefix_mb : {1024, 0}) {
    auto config = std::make_shared<Config>(
        load_config(std::string(RAZOR_TEST_DATA_DIR) + "/configs/nas/tiny_spos_search.toml"));
    config->tree["train_cfg"]["prefix_cache_mb"] = prefix_mb;
    RunnerOptions options;
    options.write_files = false;
    torch::manual_seed(0);
    Runner runner(config, options);
    auto& loop = dynamic_cast<EvolutionSearchLoop&>(runner.train_loop());
    NasMutator& mutator = dynamic_cast<NasAlgorithm&>(runner.model()).mutator();
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
