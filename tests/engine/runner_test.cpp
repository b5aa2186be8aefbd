#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "apps/register_all.h"
#include "engine/checkpoint.h"
#include "engine/default_hooks.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("razor_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// A small complete config: ResNet-8 (narrow) on a learnable synthetic data set.
std::string toy_config(int max_epochs) {
  return R"(
seed = 3
device = "cpu"
num_threads = 2

[model]
type = "ImageClassifier"
[model.backbone]
type = "ResNet_CIFAR"
depth = 8
in_channels = 1
base_channels = 8
[model.neck]
type = "GlobalAveragePooling"
[model.head]
type = "LinearClsHead"
num_classes = 4
in_channels = 32

[train_dataloader]
batch_size = 16
num_workers = 2
shuffle = true
[train_dataloader.dataset]
type = "Synthetic"
num_samples = 128
num_classes = 4
shape = [1, 12, 12]
seed = 1
pipeline = [{ type = "RandomFlip", prob = 0.5 }]

[val_dataloader]
batch_size = 32
shuffle = false
[val_dataloader.dataset]
type = "Synthetic"
num_samples = 64
num_classes = 4
shape = [1, 12, 12]
seed = 2

[optim_wrapper.optimizer]
type = "SGD"
lr = 0.05
momentum = 0.9
weight_decay = 1e-4

[[param_scheduler]]
type = "CosineAnnealingLR"
by_epoch = true
convert_to_iter_based = true

[train_cfg]
type = "EpochBasedTrainLoop"
max_epochs = )" + std::to_string(max_epochs) + R"(

[default_hooks.logger]
type = "LoggerHook"
interval = 1
)";
}

std::shared_ptr<Config> toy(int max_epochs, const std::vector<std::string>& overrides = {}) {
  register_all();
  auto config = std::make_shared<Config>(parse_config_text(toy_config(max_epochs), "toy.toml"));
  apply_overrides(*config, overrides);
  return config;
}

/// Train losses by (epoch, iter) from a work dir's scalars.jsonl.
std::map<std::pair<int64_t, int64_t>, double> train_losses(const fs::path& work_dir) {
  std::map<std::pair<int64_t, int64_t>, double> out;
  std::ifstream in(work_dir / "scalars.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto record = Json::parse(line);
    if (record["mode"] == "train") out[{record["epoch"], record["iter"]}] = record["loss"];
  }
  return out;
}

/// Simulates a kill right after a given epoch's checkpoint was written.
class StopAfterEpoch : public Hook {
 public:
  explicit StopAfterEpoch(int64_t epoch) : epoch_(epoch) { set_priority(kLowest); }
  std::string name() const override { return "StopAfterEpoch"; }
  void after_train_epoch(Runner& runner) override {
    if (runner.epoch() == epoch_) throw std::runtime_error("stopped");
  }

 private:
  int64_t epoch_;
};

}  // namespace

TEST_CASE("A run stopped after epoch 1 and resumed gives the same epoch-2 losses", "[runner]") {
  auto whole_dir = temp_dir("resume_whole");
  auto split_dir = temp_dir("resume_split");
  {
    RunnerOptions options;
    options.work_dir = whole_dir.string();
    Runner runner(toy(2), options);
    runner.train();
  }
  {
    RunnerOptions options;
    options.work_dir = split_dir.string();
    Runner runner(toy(2), options);
    runner.register_hook(std::make_shared<StopAfterEpoch>(1));
    CHECK_THROWS_WITH(runner.train(), "stopped");
  }
  REQUIRE(fs::exists(split_dir / "epoch_1.pth"));
  {
    RunnerOptions options;
    options.work_dir = split_dir.string();
    options.resume = "auto";
    Runner runner(toy(2), options);
    runner.train();
    CHECK(runner.epoch() == 2);
  }
  auto whole = train_losses(whole_dir);
  auto split = train_losses(split_dir);
  int compared = 0;
  for (const auto& item : whole) {
    if (item.first.first != 2) continue;
    REQUIRE(split.count(item.first));
    CHECK(split[item.first] == Approx(item.second).epsilon(1e-6));
    ++compared;
  }
  CHECK(compared == 8);  // 128 samples / batch 16
}

TEST_CASE("Checkpoint hook keeps the last N and the best, last_checkpoint points to the latest",
          "[runner]") {
  auto dir = temp_dir("ckpt_hook");
  RunnerOptions options;
  options.work_dir = dir.string();
  Runner runner(toy(3, {"default_hooks.checkpoint={ type = \"CheckpointHook\", max_keep_ckpts = 1, save_best = \"auto\" }"}),
                options);
  runner.train();
  CHECK_FALSE(fs::exists(dir / "epoch_1.pth"));
  CHECK_FALSE(fs::exists(dir / "epoch_2.pth"));
  CHECK(fs::exists(dir / "epoch_3.pth"));
  std::ifstream in(dir / "last_checkpoint");
  std::string last;
  std::getline(in, last);
  CHECK(last == (dir / "epoch_3.pth").string());

  // The best epoch is the first with the highest logged val accuracy (save_best keeps a later
  // epoch only when it is strictly better), whichever epoch that turns out to be.
  std::map<int64_t, double> top1;
  {
    std::ifstream scalars(dir / "scalars.jsonl");
    for (std::string line; std::getline(scalars, line);) {
      auto record = Json::parse(line);
      if (record["mode"] == "val") top1[record["epoch"].get<int64_t>()] = record["accuracy/top1"];
    }
  }
  REQUIRE(top1.size() == 3);
  int64_t best_epoch = 0;
  for (const auto& [epoch, value] : top1) {
    if (best_epoch == 0 || value > top1.at(best_epoch)) best_epoch = epoch;
  }
  std::vector<std::string> best_files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("best_", 0) == 0) best_files.push_back(name);
  }
  const std::string best_name = "best_accuracy_top1_epoch_" + std::to_string(best_epoch) + ".pth";
  CHECK(best_files == std::vector<std::string>{best_name});
  CHECK(runner.message_hub().runtime_info["best_score"].get<double>() == top1.at(best_epoch));
  CheckpointReader best((dir / best_name).string());
  CHECK(best.contents().meta["epoch"] == best_epoch);
  // The best checkpoint holds that epoch's weights: the latest one's exactly when it is the
  // last epoch.
  CheckpointReader latest((dir / "epoch_3.pth").string());
  bool same_weights = best.contents().model.size() == latest.contents().model.size();
  for (size_t i = 0; same_weights && i < best.contents().model.size(); ++i) {
    same_weights = torch::equal(best.contents().model[i].second, latest.contents().model[i].second);
  }
  CHECK(same_weights == (best_epoch == 3));
  CHECK(fs::exists(dir / "toy.toml"));  // the resolved config is saved with the run
}

TEST_CASE("A diverging loss stops the run with a message naming the iteration", "[runner]") {
  auto dir = temp_dir("nan_loss");
  RunnerOptions options;
  options.work_dir = dir.string();
  Runner runner(toy(1, {"optim_wrapper.optimizer.lr=1e30", "optim_wrapper.optimizer.momentum=0.0"}), options);
  try {
    runner.train();
    FAIL("training went on with a non-finite loss");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Runtime);
    CHECK_THAT(e.what(), Catch::Contains("the loss is") && Catch::Contains("at iteration"));
  }
}

TEST_CASE("load_from loads weights only, razor test reproduces validation accuracy", "[runner]") {
  auto dir = temp_dir("load_from");
  RunnerOptions options;
  options.work_dir = dir.string();
  double val_top1 = 0;
  {
    Runner runner(toy(1), options);
    runner.train();
    val_top1 = runner.message_hub().scalars.at("accuracy/top1");
  }
  auto config = toy(1, {"test_dataloader={ batch_size = 7, dataset = { type = \"Synthetic\", num_samples = 64, "
                        "num_classes = 4, shape = [1, 12, 12], seed = 2 } }"});
  Runner tester(config, options);
  tester.load_weights((dir / "epoch_1.pth").string());
  auto metrics = tester.test();
  CHECK(metrics.at("accuracy/top1") == Approx(val_top1));
}

namespace {

/// Simulates a kill after a given iteration (after its checkpoint, if one was due).
class StopAfterIter : public Hook {
 public:
  explicit StopAfterIter(int64_t iter) : iter_(iter) { set_priority(kLowest); }
  std::string name() const override { return "StopAfterIter"; }
  void after_train_iter(Runner& runner, int64_t, const Batch&, const LossMap&) override {
    if (runner.iter() == iter_) throw std::runtime_error("stopped");
  }

 private:
  int64_t iter_;
};

/// Records each epoch's sample order.
class RecordOrder : public Hook {
 public:
  std::string name() const override { return "RecordOrder"; }
  void before_train_iter(Runner& runner, int64_t, const Batch& batch) override {
    auto& order = orders[runner.epoch()];
    for (int64_t i = 0; i < batch.indices.size(0); ++i) order.push_back(batch.indices[i].item<int64_t>());
  }
  std::map<int64_t, std::vector<int64_t>> orders;
};

}  // namespace

TEST_CASE("An epoch-based run checkpointed by iteration resumes mid-epoch exactly", "[runner]") {
  const std::vector<std::string> by_iter = {"default_hooks.checkpoint.by_epoch=false",
                                            "default_hooks.checkpoint.interval=3"};
  auto whole_dir = temp_dir("resume_iter_whole");
  auto split_dir = temp_dir("resume_iter_split");
  {
    RunnerOptions options;
    options.work_dir = whole_dir.string();
    Runner runner(toy(2, by_iter), options);
    runner.train();
  }
  {
    RunnerOptions options;
    options.work_dir = split_dir.string();
    Runner runner(toy(2, by_iter), options);
    runner.register_hook(std::make_shared<StopAfterIter>(11));
    CHECK_THROWS_WITH(runner.train(), "stopped");
  }
  REQUIRE(fs::exists(split_dir / "iter_9.pth"));  // epoch 2, after its first batch
  auto split_before = train_losses(split_dir);
  fs::remove(split_dir / "scalars.jsonl");
  {
    RunnerOptions options;
    options.work_dir = split_dir.string();
    options.resume = (split_dir / "iter_9.pth").string();
    Runner runner(toy(2, by_iter), options);
    runner.train();
    CHECK(runner.iter() == 16);
  }
  auto whole = train_losses(whole_dir);
  auto resumed = train_losses(split_dir);
  // Iterations 10..16 only, each once: nothing of epoch 2 replayed or skipped.
  REQUIRE(resumed.size() == 7);
  for (const auto& item : resumed) {
    INFO("epoch " << item.first.first << ", iteration " << item.first.second);
    REQUIRE(whole.count(item.first));
    CHECK(item.first.second >= 10);
    CHECK(item.second == Approx(whole[item.first]).epsilon(1e-6));
  }
}

TEST_CASE("Each epoch gets its own shuffle even without the sampler-seed hook", "[runner]") {
  auto orders = [](bool hook) {
    auto dir = temp_dir(hook ? "order_hook" : "order_nohook");
    RunnerOptions options;
    options.work_dir = dir.string();
    std::vector<std::string> overrides = {"default_hooks.checkpoint=false"};
    if (!hook) overrides.push_back("default_hooks.sampler_seed=false");
    Runner runner(toy(2, overrides), options);
    auto recorder = std::make_shared<RecordOrder>();
    runner.register_hook(recorder);
    runner.train();
    return recorder->orders;
  };
  const auto without = orders(false);
  REQUIRE(without.size() == 2);
  CHECK(without.at(0).size() == 128);
  CHECK(without.at(0) != without.at(1));
  CHECK(without == orders(true));
}
