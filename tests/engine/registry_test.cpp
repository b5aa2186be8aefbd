#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

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
  // The whole index, written out: a registration that goes missing (dropped by the linker,
  // a register_*() no longer called) or appears unannounced changes this list.
  const std::map<std::string, std::vector<std::string>> expected = {
      {"dataloaders", {"DataLoader"}},
      {"datasets", {"CIFAR10", "CIFAR100", "FashionMNIST", "ImageFolder", "ImageNet", "MNIST",
                    "Synthetic"}},
      {"distill_losses",
       {"ABLoss", "ATLoss", "ActivationLoss", "AngleWiseRKD", "CRDLoss", "ChannelWiseDivergence",
        "CrossEntropyLoss", "DISTLoss", "DKDLoss", "DistanceWiseRKD", "FTLoss",
        "InformationEntropyLoss", "KDSoftCELoss", "KLDivergence", "L1Loss", "L2Loss",
        "LabelCrossEntropy", "MGDLoss", "OFDLoss", "OnehotLikeLoss", "PKDLoss", "WSLD"}},
      {"distillers", {"BYOTDistiller", "ConfigurableDistiller", "OFDDistiller"}},
      {"fake_quants", {"FakeQuantize", "LearnableFakeQuantize"}},
      {"hooks",
       {"CheckpointHook", "DMCPSubnetHook", "DistSamplerSeedHook", "DumpSubnetHook", "EstimateResourcesHook",
        "IterTimerHook", "LoggerHook",
        "ParamSchedulerHook", "PruningStructureHook", "ResourceInfoHook", "StopDistillHook"}},
      {"loops",
       {"DartsEpochBasedTrainLoop", "EpochBasedTrainLoop", "EvolutionSearchLoop",
        "ItePruneValLoop", "IterBasedTrainLoop", "LSQEpochBasedLoop", "PTQLoop", "QATEpochBasedLoop", "QATTestLoop",
        "QATValLoop", "SlimmableTestLoop", "SlimmableValLoop", "SubnetTestLoop", "SubnetValLoop", "TestLoop",
        "ValLoop"}},
      {"metrics", {"Accuracy"}},
      {"models",
       {"BaseAlgorithm", "ClsHead", "CrossEntropyLoss", "DAFLDataFreeDistillation",
        "DAFLGenerator", "DCFF", "DMCP", "DSNAS", "Darts", "DartsBackbone", "DartsDilConv", "DartsPoolBN", "DartsSepConv",
        "DartsSkipConnect", "DartsSubnetClsHead", "DartsZero", "DataFreeDistillation", "DiffChoiceRoute",
        "DiffMutableOP", "GlobalAveragePooling", "GroupFisherAlgorithm", "GumbelChoiceRoute", "Identity", "ImageClassifier",
        "ItePruneAlgorithm", "LabelSmoothLoss", "LeNet5", "LinearClsHead", "MBBlock", "MMArchitectureQuant", "MobileNetV2", "MutableValue",
        "OneHotMutableOP", "OneShotMutableOP", "OneShotMutableValue", "OneShotProbMutableOP",
        "OverhaulFeatureDistillation", "ResNet", "ResNet_CIFAR", "SPOS", "SearchableMobileNetV2",
        "SearchableShuffleNetV2",
        "SelfDistill", "ShuffleBlock", "ShuffleXception", "SingleTeacherDistill", "SlimmableNetwork", "sub_model"}},
      {"observers",
       {"HistogramObserver", "LSQObserver", "LSQPerChannelObserver", "MSEObserver",
        "MinMaxObserver", "MovingAverageMinMaxObserver", "MovingAveragePerChannelMinMaxObserver",
        "PerChannelMinMaxObserver", "PercentileObserver"}},
      {"optimizers", {"Adam", "AdamW", "SGD"}},
      {"predictor_handlers", {"GaussProcessHandler", "MLPHandler"}},
      {"recorders", {"ModuleInputs", "ModuleOutputs", "Parameter", "Tap"}},
      {"schedulers",
       {"ConstantLR", "ConstantMomentum", "ConstantParamScheduler", "CosineAnnealingLR",
        "CosineAnnealingMomentum", "CosineAnnealingParamScheduler", "ExponentialLR",
        "ExponentialMomentum", "ExponentialParamScheduler", "LinearLR", "LinearMomentum",
        "LinearParamScheduler", "MultiStepLR", "MultiStepMomentum", "MultiStepParamScheduler",
        "PolyLR", "PolyMomentum", "PolyParamScheduler", "StepLR", "StepMomentum",
        "StepParamScheduler"}},
      {"transforms",
       {"CenterCrop", "ColorJitter", "Cutout", "Normalize", "RandomCrop", "RandomFlip",
        "RandomResizedCrop", "Resize"}},
  };
  auto& index = RegistryIndex::instance();
  std::vector<std::string> registries;
  for (const auto& item : expected) registries.push_back(item.first);
  std::vector<std::string> actual_registries = index.registry_names();
  std::sort(actual_registries.begin(), actual_registries.end());
  CHECK(actual_registries == registries);
  // Types that other test files of this binary register for themselves.
  const std::vector<std::string> test_only = {"SquaredDifference", "TwoHeads"};
  for (const auto& [registry, names] : expected) {
    INFO(registry);
    std::vector<std::string> actual;
    for (const auto& name : index.names_of(registry)) {
      const bool ours = std::find(test_only.begin(), test_only.end(), name) != test_only.end();
      if (!ours) actual.push_back(name);
    }
    std::sort(actual.begin(), actual.end());
    CHECK(actual == names);
  }
  CHECK_THROWS_WITH(index.names_of("modles"), Catch::Contains("did you mean \"models\""));
}
