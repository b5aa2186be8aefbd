// EstimateResourcesHook: the resources of the model, or of a NAS supernet's subnet, after
// validation, without disturbing the supernet's choices or its shared generator.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "algorithms/nas/estimate_resources_hook.h"
#include "algorithms/nas/nas_algorithm.h"
#include "apps/register_all.h"
#include "engine/config.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Config> tiny_supernet(const fs::path& work_dir, const std::string& subnet) {
  register_all();
  auto config = std::make_shared<Config>(
      load_config(std::string(RAZOR_TEST_DATA_DIR) + "/configs/nas/tiny_spos_supernet.toml"));
  config->tree["custom_hooks"] = Json::array(
      {{{"type", "EstimateResourcesHook"},
        {"subnet", subnet},
        {"estimator_cfg", {{"input_shape", {1, 1, 28, 28}}}}}});
  config->tree["val_cfg"]["sample_kinds"] = {"max"};
  fs::remove_all(work_dir);
  return config;
}

EstimateResourcesHook* find_hook(Runner& runner) {
  EstimateResourcesHook* hook = nullptr;
  runner.call_hooks([&](Hook& h) {
    if (auto* e = dynamic_cast<EstimateResourcesHook*>(&h)) hook = e;
  });
  return hook;
}

}  // namespace

TEST_CASE("EstimateResourcesHook counts the max or min subnet and restores the supernet",
          "[nas][hooks]") {
  const fs::path dir = fs::temp_directory_path() / "razor_test_estimate_hook";
  for (const std::string kind : {"max", "min"}) {
    RunnerOptions options;
    options.work_dir = dir.string();
    Runner runner(tiny_supernet(dir, kind), options);
    auto& nas = dynamic_cast<NasAlgorithm&>(runner.model());
    NasMutator& mutator = nas.mutator();

    // The expected figures: the estimator on the supernet set to that subnet.
    ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}));
    mutator.set_choices(mutator.sample_choices(kind));
    const Resources expected = estimator.estimate(runner.model());

    const Json before = mutator.sample_choices("random");
    mutator.set_choices(before);
    const std::string generator = mutator.generator_state();
    EstimateResourcesHook* hook = find_hook(runner);
    REQUIRE(hook != nullptr);
    const Resources got = hook->estimate(runner, 1);
    CHECK(got.flops == expected.flops);
    CHECK(got.params == expected.params);
    CHECK(mutator.current_choices() == before);
    CHECK(mutator.generator_state() == generator);

    // Training with validation writes the figures to scalars.jsonl once per epoch.
    runner.train();
    std::ifstream in(dir / "scalars.jsonl");
    std::string line;
    int records = 0;
    while (std::getline(in, line)) {
      const Json record = Json::parse(line);
      if (record.value("mode", "") != "resources") continue;
      ++records;
      CHECK(record["epoch"] == 1);
      CHECK(record["resources/flops"].get<double>() == expected.flops);
      CHECK(record["resources/params"].get<double>() == expected.params);
    }
    CHECK(records == 1);
  }
  fs::remove_all(dir);
}

TEST_CASE("EstimateResourcesHook on a plain model counts the whole model, bad keys fail",
          "[nas][hooks]") {
  register_all();
  auto config = std::make_shared<Config>(
      load_config(std::string(RAZOR_SOURCE_DIR) + "/configs/resnet/resnet20_fmnist.toml"));
  config->tree["custom_hooks"] = Json::array(
      {{{"type", "EstimateResourcesHook"}, {"estimator_cfg", {{"input_shape", {1, 1, 28, 28}}}}}});
  RunnerOptions options;
  options.write_files = false;
  options.work_dir = (fs::temp_directory_path() / "razor_test_estimate_hook_resnet").string();
  Runner runner(config, options);
  EstimateResourcesHook* hook = find_hook(runner);
  REQUIRE(hook != nullptr);
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}));
  const Resources got = hook->estimate(runner, 1);
  CHECK(got.flops == estimator.estimate(runner.model()).flops);
  CHECK(got.params == 0.272);  // ResNet-20's 272,186 parameters (the estimator's tests)

  config->tree["custom_hooks"][0]["subnet"] = "largest";
  CHECK_THROWS_WITH(find_hook(*std::make_unique<Runner>(config, options)), Catch::Contains("subnet"));
  config->tree["custom_hooks"][0]["subnet"] = "max";
  config->tree["custom_hooks"][0]["interval"] = 0;
  CHECK_THROWS_WITH(find_hook(*std::make_unique<Runner>(config, options)), Catch::Contains("interval"));
}
