#include <catch2/catch.hpp>

#include <filesystem>

#include <torch/torch.h>

#include "apps/register_all.h"
#include "engine/config.h"
#include "engine/model.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

/// CIFAR datasets whose files are not on this machine become Synthetic ones of CIFAR's shape
/// and size (keeping their pipeline and indices), and ImageNet ones a few Synthetic images,
/// so that the recipe still builds. Returns whether any was replaced.
bool replace_missing_cifar(Json& node) {
  bool replaced = false;
  if (node.is_object()) {
    const std::string type = node.value("type", "");
    if ((type == "CIFAR10" || type == "CIFAR100") &&
        !fs::exists(node.value("data_root", std::string("data/cifar10")))) {
      Json synthetic = {{"type", "Synthetic"},
                        {"num_samples", node.value("split", "train") == "train" ? 50000 : 10000},
                        {"num_classes", type == "CIFAR10" ? 10 : 100},
                        {"shape", {3, 32, 32}}};
      for (const char* key : {"pipeline", "indices"}) {
        if (node.contains(key)) synthetic[key] = node[key];
      }
      node = synthetic;
      return true;
    }
    if (type == "ImageNet" && !fs::exists(node.value("data_root", std::string("data/imagenet")))) {
      // ImageNet-sized pipelines on a few small synthetic images: the crops resize them.
      Json synthetic = {{"type", "Synthetic"}, {"num_samples", 256}, {"num_classes", 1000},
                        {"shape", {3, 64, 80}}};
      if (node.contains("pipeline")) synthetic["pipeline"] = node["pipeline"];
      node = synthetic;
      return true;
    }
    for (auto& item : node.items()) replaced = replace_missing_cifar(item.value()) || replaced;
  } else if (node.is_array()) {
    for (auto& item : node) replaced = replace_missing_cifar(item) || replaced;
  }
  return replaced;
}

fs::path fresh_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("razor_test_shipped_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace

// Every config razor ships resolves and builds its whole runner (model, loaders, evaluators,
// optimiser wrapper, schedulers, train loop, hooks): a renamed option or module would
// otherwise surface only when a user runs the recipe. Checkpoints the recipes load
// (teacher_ckpt, a quantised model's float_checkpoint, a pruned one's architecture.init_cfg
// and init_weight_from_supernet, a data-free run's
// teachers' ckpt_path, a subnet file another run writes, load_from) are dropped: they are
// outputs of other runs. CIFAR recipes build on Synthetic data of CIFAR's shape when the
// CIFAR files are missing, ImageNet ones on a few synthetic images. Nothing is trained.
TEST_CASE("Every shipped config resolves and builds its whole runner", "[configs]") {
  register_all();
  const fs::path root = fs::path(RAZOR_SOURCE_DIR) / "configs";
  size_t built = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".toml" ||
        entry.path().string().find("/_base_/") != std::string::npos) {
      continue;
    }
    INFO(entry.path().string());
    auto config = std::make_shared<Config>(load_config(entry.path().string()));
    REQUIRE(config->tree.contains("model"));
    config->tree.erase("load_from");
    Json& model_table = config->tree["model"];
    model_table.erase("teacher_ckpt");
    model_table.erase("float_checkpoint");
    if (model_table.contains("architecture")) {
      Json& architecture = model_table["architecture"];
      architecture.erase("init_cfg");
      architecture.erase("init_weight_from_supernet");  // a sub_model cut from a trained model
    }
    if (model_table.value("type", "") == "sub_model") {
      // A subnet found by another run (DMCP's model_sample): built at full width here.
      model_table.erase("init_cfg");
      model_table.erase("init_weight_from_supernet");
      if (model_table.value("fix_subnet", Json()).is_string() &&
          !fs::exists(model_table["fix_subnet"].get<std::string>())) {
        model_table["fix_subnet"] = Json::object();
      }
    }
    if (model_table.contains("teachers")) {
      for (auto& teacher : model_table["teachers"]) teacher.erase("ckpt_path");
    }

    replace_missing_cifar(config->tree);

    RunnerOptions options;
    options.work_dir = fresh_dir(entry.path().stem().string()).string();
    options.device = "cpu";
    options.write_files = false;
    torch::manual_seed(0);
    Runner runner(config, options);

    Model& model = runner.model();
    CHECK_FALSE(model.parameters().empty());
    TrainLoop& loop = runner.train_loop();
    // A PTQ recipe trains nothing: it has no optimiser.
    if (loop.trains_model()) {
      runner.optim_wrapper();
      runner.schedulers();
    }
    CHECK(loop.max_iters() > 0);
    size_t hooks = 0;
    runner.call_hooks([&](Hook&) { ++hooks; });
    CHECK(hooks >= 5);  // timer, logger, param scheduler, checkpoint, sampler seed

    DataLoader& train = runner.train_dataloader();
    CHECK(train.size() > 0);
    // One batch through the train pipeline, then the model on its first two images.
    train.set_epoch(0);
    train.start();
    std::optional<Batch> batch = train.next();
    REQUIRE(batch);
    CHECK(batch->inputs.size(0) == train.batch_size());
    const auto image = batch->inputs.sizes().slice(1);
    CHECK((image == torch::IntArrayRef({1, 28, 28}) || image == torch::IntArrayRef({3, 32, 32}) ||
           image == torch::IntArrayRef({3, 224, 224})));
    CHECK(batch->targets.size(0) == train.batch_size());
    if (runner.has_val()) {
      CHECK(runner.val_dataloader().size() > 0);
      runner.val_evaluator();
    }
    if (config->tree.contains("test_dataloader")) {
      CHECK(runner.test_dataloader().size() > 0);
      runner.test_evaluator();
    }

    model.eval();
    torch::NoGradGuard no_grad;
    auto logits = model.forward_tensor(batch->inputs.slice(0, 0, 2));
    const int64_t classes = image[1] == 224 ? 1000 : 10;
    CHECK(logits.sizes() == torch::IntArrayRef({2, classes}));
    ++built;
  }
  CHECK(built >= 18);
}
