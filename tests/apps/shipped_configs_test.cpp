#include <catch2/catch.hpp>

#include <filesystem>

#include <torch/torch.h>

#include "apps/register_all.h"
#include "engine/config.h"
#include "engine/model.h"

using namespace razor;
namespace fs = std::filesystem;

// Every config razor ships resolves and builds its model: a renamed option or module would
// otherwise surface only when a user runs the recipe. Checkpoints the recipes load
// (teacher_ckpt, a data-free run's teachers' ckpt_path, load_from) are dropped: they are outputs of other runs.
TEST_CASE("Every shipped config resolves and builds its model", "[configs]") {
  register_all();
  const fs::path root = fs::path(RAZOR_SOURCE_DIR) / "configs";
  size_t built = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".toml" || entry.path().string().find("/_base_/") != std::string::npos) continue;
    INFO(entry.path().string());
    auto config = std::make_shared<Config>(load_config(entry.path().string()));
    REQUIRE(config->tree.contains("model"));
    Json& model_table = config->tree["model"];
    model_table.erase("teacher_ckpt");
    if (model_table.contains("teachers")) {
      for (auto& teacher : model_table["teachers"]) teacher.erase("ckpt_path");
    }
    Args args(config->tree.at("model"), "model", config);
    torch::manual_seed(0);
    auto model = build_model_as<Model>(args, {}, "a model");
    // One evaluation forward pass on a Fashion-MNIST-sized batch.
    model->eval();
    torch::NoGradGuard no_grad;
    auto logits = model->forward_tensor(torch::randn({2, 1, 28, 28}));
    CHECK(logits.sizes() == torch::IntArrayRef({2, 10}));
    ++built;
  }
  CHECK(built >= 18);
}
