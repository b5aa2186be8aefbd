#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "engine/checkpoint.h"
#include "engine/error.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

struct Net : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
  explicit Net(int64_t out = 2) {
    fc = register_module("fc", torch::nn::Linear(3, out));
    bn = register_module("bn", torch::nn::BatchNorm1d(out));
  }
};

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("razor_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("Checkpoint round-trip restores weights, buffers, optimizer state and meta", "[checkpoint]") {
  torch::manual_seed(1);
  auto dir = temp_dir("ckpt_roundtrip");
  auto net = std::make_shared<Net>();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  net->train();
  auto loss = net->bn(net->fc(torch::randn({4, 3}))).pow(2).sum();
  loss.backward();
  sgd.step();

  CheckpointContents contents;
  contents.meta = {{"format", 1}, {"epoch", 3}, {"config", "seed = 1\n"}};
  contents.model = state_dict(*net);
  contents.rng = capture_rng_state();
  const auto path = (dir / "epoch_3.pth").string();
  write_checkpoint(path, contents, &sgd);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  auto other = std::make_shared<Net>();
  torch::optim::SGD other_sgd(other->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  CheckpointReader reader(path);
  CHECK(reader.contents().meta["epoch"] == 3);
  CHECK(reader.contents().meta["config"] == "seed = 1\n");
  load_state_dict(*other, reader.contents().model, true, path);
  for (const auto& item : state_dict(*net)) {
    bool found = false;
    for (const auto& o : state_dict(*other)) {
      if (o.first == item.first) {
        CHECK(torch::equal(o.second, item.second));
        found = true;
      }
    }
    CHECK(found);
  }
  REQUIRE(reader.load_optimizer(other_sgd));
  // The momentum buffers came back: one more identical step gives identical weights.
  auto input = torch::randn({4, 3});
  for (auto* pair : {&sgd, &other_sgd}) pair->zero_grad();
  net->bn(net->fc(input)).pow(2).sum().backward();
  other->bn(other->fc(input)).pow(2).sum().backward();
  sgd.step();
  other_sgd.step();
  CHECK(torch::equal(net->fc->weight, other->fc->weight));
}

TEST_CASE("A truncated checkpoint is reported as corrupt, not loaded", "[checkpoint]") {
  auto dir = temp_dir("ckpt_truncated");
  auto net = std::make_shared<Net>();
  CheckpointContents contents;
  contents.meta = {{"format", 1}};
  contents.model = state_dict(*net);
  const auto path = (dir / "full.pth").string();
  write_checkpoint(path, contents, nullptr);
  const auto size = fs::file_size(path);
  fs::resize_file(path, size / 2);
  try {
    CheckpointReader reader(path);
    FAIL("a truncated checkpoint was loaded");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Runtime);
    CHECK_THAT(e.what(), Catch::Contains("corrupt") && Catch::Contains(path));
  }
  std::ofstream(dir / "garbage.pth") << "not a checkpoint";
  CHECK_THROWS_WITH(CheckpointReader((dir / "garbage.pth").string()), Catch::Contains("corrupt"));
}

TEST_CASE("Loading weights of the wrong shape lists the mismatched keys", "[checkpoint]") {
  auto small = std::make_shared<Net>(2);
  auto large = std::make_shared<Net>(5);
  try {
    load_state_dict(*large, state_dict(*small), false, "ckpt.pth");
    FAIL("shapes were not checked");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains("fc.weight (checkpoint [2, 3], model [5, 3])") &&
                             Catch::Contains("bn.running_mean"));
  }
  auto report = load_state_dict(*small, {{"fc.weight", torch::zeros({2, 3})}, {"extra", torch::zeros(1)}},
                                false, "ckpt.pth");
  CHECK(report.unexpected == std::vector<std::string>{"extra"});
  CHECK(std::find(report.missing.begin(), report.missing.end(), "fc.bias") != report.missing.end());
  CHECK(torch::equal(small->fc->weight, torch::zeros({2, 3})));
}

TEST_CASE("RNG state round-trips", "[checkpoint]") {
  torch::manual_seed(5);
  auto state = capture_rng_state();
  auto a = torch::rand({4});
  restore_rng_state(state);
  auto b = torch::rand({4});
  CHECK(torch::equal(a, b));
}
