#include <catch2/catch.hpp>

#include "apps/register_all.h"
#include "engine/model.h"
#include "engine/registry.h"

using namespace razor;

namespace {
struct Thing {
  int value;
};
}  // namespace

TEST_CASE("Registry builds by name and checks the table's keys", "[registry]") {
  Registry<Thing> registry("things_for_test");
  registry.add("Thing", [](Args& args, const BuildContext&) {
    return std::make_shared<Thing>(Thing{args.get<int>("value", 1)});
  });
  Json table = {{"type", "Thing"}, {"value", 7}};
  Args args = Args::of(table, "thing");
  CHECK(registry.build(args)->value == 7);

  Json typo = {{"type", "Thign"}};
  Args typo_args = Args::of(typo, "thing");
  CHECK_THROWS_WITH(registry.build(typo_args), Catch::Contains("thing.type") &&
                                                   Catch::Contains("did you mean \"Thing\"") &&
                                                   Catch::Contains("registered: Thing"));
  Json extra = {{"type", "Thing"}, {"valeu", 3}};
  Args extra_args = Args::of(extra, "thing");
  CHECK_THROWS_WITH(registry.build(extra_args), Catch::Contains("thing.valeu") &&
                                                    Catch::Contains("did you mean \"value\""));
}

TEST_CASE("register_all fills every registry with the expected names", "[registry]") {
  register_all();
  auto& index = RegistryIndex::instance();
  auto has = [&](const std::string& registry, const std::string& name) {
    auto names = index.names_of(registry);
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  CHECK(has("models", "ImageClassifier"));
  CHECK(has("models", "ResNet_CIFAR"));
  CHECK(has("models", "ResNet"));
  CHECK(has("models", "MobileNetV2"));
  CHECK(has("models", "LinearClsHead"));
  CHECK(has("models", "GlobalAveragePooling"));
  CHECK(has("datasets", "FashionMNIST"));
  CHECK(has("datasets", "CIFAR10"));
  CHECK(has("transforms", "Normalize"));
  CHECK(has("dataloaders", "DataLoader"));
  CHECK(has("loops", "EpochBasedTrainLoop"));
  CHECK(has("loops", "IterBasedTrainLoop"));
  CHECK(has("loops", "ValLoop"));
  CHECK(has("loops", "TestLoop"));
  CHECK(has("hooks", "CheckpointHook"));
  CHECK(has("hooks", "LoggerHook"));
  CHECK(has("optimizers", "SGD"));
  CHECK(has("optimizers", "AdamW"));
  CHECK(has("schedulers", "CosineAnnealingLR"));
  CHECK(has("schedulers", "LinearLR"));
  CHECK(has("metrics", "Accuracy"));
  CHECK_THROWS_WITH(index.names_of("modles"), Catch::Contains("did you mean \"models\""));
}
