#include <catch2/catch.hpp>

#include <filesystem>

#include "apps/register_all.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

// End to end on real data: the shipped demo config, cut to 12,000 training images and
// 2,000 test images, must train a ResNet-8 far above chance (10%).
TEST_CASE("Train and test ResNet-8 on a slice of Fashion-MNIST", "[e2e]") {
  register_all();
  const fs::path root = RAZOR_SOURCE_DIR;
  auto config = std::make_shared<Config>(load_config((root / "configs/resnet/resnet20_fmnist.toml").string()));
  const auto work_dir = fs::temp_directory_path() / "razor_test_e2e_fmnist";
  fs::remove_all(work_dir);
  apply_overrides(*config, {"device=\"cpu\"", "model.backbone.depth=8", "train_cfg.max_epochs=2",
                            "train_dataloader.dataset.indices=12000", "val_dataloader.dataset.indices=2000",
                            "test_dataloader.dataset.indices=2000", "work_dir=\"" + work_dir.string() + "\""});
  Runner runner(config);
  runner.train();
  const double val_top1 = runner.message_hub().scalars.at("accuracy/top1");
  CHECK(val_top1 > 70.0);
  const auto metrics = runner.test();
  CHECK(metrics.at("accuracy/top1") == Approx(val_top1));
  CHECK(metrics.at("accuracy/top5") > 95.0);
}
