#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

struct CliResult {
  int code;
  std::string err;
  std::string out;
};

/// Runs the CLI in-process, capturing what it prints.
CliResult run(const std::vector<std::string>& args) {
  std::ostringstream err, out;
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  int code = -1;
  try {
    code = run_cli(args);
  } catch (...) {
    std::cerr.rdbuf(old_err);
    std::cout.rdbuf(old_out);
    throw;
  }
  std::cerr.rdbuf(old_err);
  std::cout.rdbuf(old_out);
  return {code, err.str(), out.str()};
}

fs::path write_config(const std::string& name, const std::string& text) {
  auto dir = fs::temp_directory_path() / "razor_test_cli";
  fs::create_directories(dir);
  auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

const char* kValid = R"(
device = "cpu"
work_dir = "/tmp/razor_test_cli/work"
[model]
type = "ImageClassifier"
[model.backbone]
type = "ResNet_CIFAR"
depth = 8
in_channels = 1
[model.neck]
type = "GlobalAveragePooling"
[model.head]
type = "LinearClsHead"
num_classes = 10
in_channels = 64
[train_dataloader]
batch_size = 8
[train_dataloader.dataset]
type = "FashionMNIST"
split = "train"
indices = 16
[optim_wrapper.optimizer]
type = "SGD"
lr = 0.01
[train_cfg]
max_epochs = 1
)";

std::string replace(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
}

}  // namespace

TEST_CASE("CLI: a missing config file exits 2 naming the path", "[cli]") {
  auto result = run({"train", "/nonexistent/razor.toml"});
  CHECK(result.code == 2);
  CHECK_THAT(result.err, Catch::Contains("/nonexistent/razor.toml"));
}

TEST_CASE("CLI: a misspelt key exits 2 naming the file, key and the nearest valid key", "[cli]") {
  auto path = write_config("bad_key.toml", replace(kValid, "depth = 8", "depht = 8"));
  auto result = run({"train", path.string()});
  CHECK(result.code == 2);
  CHECK_THAT(result.err, Catch::Contains("bad_key.toml") && Catch::Contains("model.backbone.dep") && Catch::Contains("depht") &&
                             Catch::Contains("did you mean \"depth\""));
}

TEST_CASE("CLI: an unknown type name exits 2 with the nearest registered name", "[cli]") {
  auto path = write_config("bad_type.toml", replace(kValid, "\"ResNet_CIFAR\"", "\"ResNet_CIFARR\""));
  auto result = run({"train", path.string()});
  CHECK(result.code == 2);
  CHECK_THAT(result.err, Catch::Contains("model.backbone.type") && Catch::Contains("did you mean \"ResNet_CIFAR\""));
}

TEST_CASE("CLI: a missing data file exits 2 naming the path and the package", "[cli]") {
  auto path = write_config("bad_data.toml",
                           replace(kValid, "split = \"train\"", "split = \"train\"\ndata_root = \"/nonexistent/fmnist\""));
  auto result = run({"train", path.string()});
  CHECK(result.code == 2);
  CHECK_THAT(result.err, Catch::Contains("/nonexistent/fmnist") && Catch::Contains("dataset-fashion-mnist"));
}

TEST_CASE("CLI: config print resolves overrides; usage errors exit 2; --version exits 0", "[cli]") {
  auto path = write_config("valid.toml", kValid);
  auto result = run({"config", "print", path.string(), "--cfg-options", "model.backbone.depth=20"});
  CHECK(result.code == 0);
  CHECK_THAT(result.out, Catch::Contains("depth = 20"));
  CHECK(run({"--version"}).code == 0);
  CHECK(run({"frobnicate"}).code == 2);
  CHECK(run({"list", "models"}).code == 0);
  CHECK(run({"list", "nosuchregistry"}).code == 2);
  CHECK(run({"test", path.string(), "/nonexistent.pth"}).code == 2);
}
