// NAS end to end with the razor executable: a tiny SPOS supernet is trained, searched
// (single process, two ranks under mpirun, and killed with -9 and resumed), and the best
// subnet tested; bad subnets and search configs fail with clear errors.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "algorithms/nas/nas_algorithm.h"
#include "apps/register_all.h"
#include "components/mutators/fix_subnet.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/model.h"
#include "tests/datasets/temp_dir.h"
#include "tests/process.h"

namespace fs = std::filesystem;
using razor::Json;
using razor::test::TempDir;
using razor::test::mpirun;
using razor::test::razor_command;
using razor::test::read_file;
using razor::test::run;

namespace {

const std::string kConfigs = std::string(RAZOR_TEST_DATA_DIR) + "/configs/nas/";

/// Runs `command`, requires exit code `expected`, returns the output.
std::string expect(const std::string& command, int expected, const std::string& log) {
  const int code = run(command, log);
  const std::string output = read_file(log);
  INFO(command << "\n" << output);
  REQUIRE(code == expected);
  return output;
}

/// The supernet checkpoint, trained once for every test of this file.
const std::string& supernet() {
  static TempDir dir;
  static std::string checkpoint;
  if (checkpoint.empty()) {
    expect(razor_command("train " + kConfigs + "tiny_spos_supernet.toml --work-dir " + dir.path()), 0,
           dir / "train.log");
    checkpoint = dir / "epoch_1.pth";
  }
  return checkpoint;
}

std::string search_command(const std::string& work_dir, const std::string& extra = "") {
  return razor_command("search " + kConfigs + "tiny_spos_search.toml --checkpoint " + supernet() +
               " --work-dir " + work_dir + " " + extra);
}

std::vector<Json> history(const std::string& work_dir) {
  std::vector<Json> out;
  std::ifstream in(work_dir + "/search_history.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("search: the best subnet meets the constraint, and razor test reproduces its score",
          "[nas][e2e]") {
  TempDir dir;
  const std::string out = expect(search_command(dir.path()), 0, dir / "search.log");
  REQUIRE(fs::exists(dir / "best_fix_subnet.yaml"));
  REQUIRE(fs::exists(dir / "best_subnet.pth"));
  for (int e = 1; e <= 4; ++e) CHECK(fs::exists(dir / ("search_epoch_" + std::to_string(e) + ".json")) == (e >= 2));
  const auto entries = history(dir.path());
  REQUIRE(entries.size() >= 6);
  double best = -1;
  for (const auto& entry : entries) {
    CHECK(entry["flops"].get<double>() <= 0.70);
    CHECK(entry["subnet"].size() == 3);
    best = std::max(best, entry["score"].get<double>());
  }
  razor::CheckpointReader reader(dir / "best_subnet.pth");
  CHECK(reader.contents().meta["score"].get<double>() == best);
  const std::string subnet = read_file(dir / "best_fix_subnet.yaml");
  CHECK(subnet.find("backbone.layers.0.0:\n  chosen: ") == 0);

  // The subnet's own weights, fixed by --subnet, give exactly the score the search reported.
  const std::string tested =
      expect(razor_command("test " + kConfigs + "tiny_spos_search.toml " + (dir / "best_subnet.pth") +
                   " --subnet " + (dir / "best_fix_subnet.yaml") + " --out " + (dir / "test.json")),
             0, dir / "test.log");
  const Json result = Json::parse(read_file(dir / "test.json"));
  CHECK(result["metrics"]["accuracy/top1"].get<double>() == Approx(best).epsilon(1e-12));
  // best_subnet.pth holds only the chosen path: fewer tensors than the supernet.
  razor::CheckpointReader whole(supernet());
  CHECK(reader.contents().model.size() < whole.contents().model.size());

  // Exported as a static model (no mutables), it tests to the same score...
  const std::string exported = dir / "static";
  const std::string export_out = expect(razor_command("export " + kConfigs + "tiny_spos_search.toml " + (dir / "best_subnet.pth") +
                                                  " --subnet " + (dir / "best_fix_subnet.yaml") + " --out " + exported),
                                        0, dir / "export.log");
  CHECK(export_out.find("Exported the subnet") != std::string::npos);
  expect(razor_command("test " + exported + "/subnet.toml " + exported + "/subnet.pth --out " + (dir / "static.json")), 0,
         dir / "static.log");
  CHECK(Json::parse(read_file(dir / "static.json"))["metrics"]["accuracy/top1"].get<double>() == Approx(best).epsilon(1e-12));

  // ... computes what the supernet fixed to the subnet computes, with fewer parameters.
  razor::register_all();
  auto build = [](const std::string& file) {
    auto config = std::make_shared<razor::Config>(razor::load_config(file));
    razor::Args args(config->tree.at("model"), "model", config);
    return razor::build_model_as<razor::Model>(args, {}, "a model");
  };
  auto fixed = std::dynamic_pointer_cast<razor::NasAlgorithm>(build(kConfigs + "tiny_spos_search.toml"));
  REQUIRE(fixed);
  fixed->fix_subnet(razor::read_subnet_file(dir / "best_fix_subnet.yaml"), "best_fix_subnet.yaml");
  razor::load_state_dict(*fixed, reader.contents().model, /*strict=*/false, "best_subnet.pth");
  auto plain = build(exported + "/subnet.toml");
  razor::CheckpointReader static_weights(exported + "/subnet.pth");
  razor::load_state_dict(*plain, static_weights.contents().model, /*strict=*/true, "subnet.pth");
  int64_t mutables = 0;
  for (const auto& m : plain->modules(false)) mutables += dynamic_cast<razor::Mutable*>(m.get()) != nullptr;
  CHECK(mutables == 0);
  int64_t fixed_params = 0, plain_params = 0, supernet_params = 0;
  for (const auto& p : fixed->architecture().parameters()) fixed_params += p.numel();
  for (const auto& p : plain->parameters()) plain_params += p.numel();
  for (const auto& item : whole.contents().model) {
    if (item.first.rfind("architecture.", 0) == 0 && item.first.find("running_") == std::string::npos &&
        item.first.find("num_batches") == std::string::npos) {
      supernet_params += item.second.numel();
    }
  }
  CHECK(plain_params == fixed_params);
  CHECK(plain_params < supernet_params);
  fixed->eval();
  plain->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({8, 1, 28, 28});
  const torch::Tensor a = fixed->forward_tensor(x), b = plain->forward_tensor(x);
  CHECK(torch::allclose(a, b, 1e-5, 1e-5));
}

TEST_CASE("search: two ranks find the same subnets as one process", "[nas][e2e][dist]") {
  TempDir one, two;
  expect(search_command(one.path()), 0, one / "search.log");
  expect(mpirun(2) + search_command(two.path()), 0, two / "search.log");
  CHECK(read_file(one / "best_fix_subnet.yaml") == read_file(two / "best_fix_subnet.yaml"));
  const auto a = history(one.path()), b = history(two.path());
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["choices"] == b[i]["choices"]);
    CHECK(a[i]["score"].get<double>() == Approx(b[i]["score"].get<double>()).epsilon(1e-9));
  }
}

TEST_CASE("search: killed with -9 after an epoch and resumed, it ends as the uninterrupted search",
          "[nas][e2e]") {
  TempDir full, killed;
  expect(search_command(full.path()), 0, full / "search.log");

  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const std::string log = killed / "search.log";
    const std::string command = search_command(killed.path());
    execl("/bin/sh", "sh", "-c", ("exec " + command + " > " + log + " 2>&1").c_str(), nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(killed / "search_epoch_1.json") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  INFO(read_file(killed / "search.log"));
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(fs::exists(killed / "search_epoch_1.json"));
  REQUIRE_FALSE(fs::exists(killed / "best_fix_subnet.yaml"));  // killed before the end

  const std::string out = expect(search_command(killed.path(), "--resume"), 0, killed / "resume.log");
  CHECK(out.find("resumed from") != std::string::npos);
  CHECK(read_file(killed / "best_fix_subnet.yaml") == read_file(full / "best_fix_subnet.yaml"));
  const auto a = history(full.path()), b = history(killed.path());
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i]["choices"] == b[i]["choices"]);
}

TEST_CASE("search and subnets: bad input is a clear error", "[nas][e2e]") {
  TempDir dir;
  const std::string test = razor_command("test " + kConfigs + "tiny_spos_search.toml " + supernet() + " --subnet ");
  {
    std::ofstream(dir / "unknown.yaml") << "backbone.layers.0.0: {chosen: shuffle_3x3}\n"
                                           "backbone.layers.1.0: {chosen: shuffle_3x3}\n"
                                           "backbone.layers.1.1: {chosen: shuffle_3x3}\n"
                                           "backbone.layers.9.9: {chosen: shuffle_3x3}\n";
    const std::string out = expect(test + (dir / "unknown.yaml"), 2, dir / "unknown.log");
    CHECK(out.find("\"backbone.layers.9.9\" is not a mutable of this model") != std::string::npos);
  }
  {
    std::ofstream(dir / "range.yaml") << "backbone.layers.0.0: {chosen: shuffle_9x9}\n"
                                         "backbone.layers.1.0: {chosen: shuffle_3x3}\n"
                                         "backbone.layers.1.1: {chosen: shuffle_3x3}\n";
    const std::string out = expect(test + (dir / "range.yaml"), 2, dir / "range.log");
    CHECK(out.find("\"shuffle_9x9\" is not one of its choices (\"shuffle_3x3\", \"shuffle_5x5\", "
                   "\"shuffle_7x7\", \"shuffle_xception\")") != std::string::npos);
  }
  {
    std::ofstream(dir / "missing.yaml") << "backbone.layers.0.0: {chosen: shuffle_3x3}\n";
    const std::string out = expect(test + (dir / "missing.yaml"), 2, dir / "missing.log");
    CHECK(out.find("no choice for mutable \"backbone.layers.1.0\"") != std::string::npos);
  }
  {
    const std::string out =
        expect(search_command(dir / "impossible", "--cfg-options train_cfg.constraints_range.flops=0.1"),
               1, dir / "impossible.log");
    CHECK(out.find("no subnet meets the constraints (flops in [0, 0.1])") != std::string::npos);
  }
  {
    // A search config whose model has no mutator.
    std::ofstream(dir / "plain.toml") << "_base_ = [\"" << kConfigs << "tiny_spos_search.toml\"]\n"
                                      << "[model]\n_delete_ = true\ntype = \"ImageClassifier\"\n"
                                      << "backbone = { type = \"LeNet5\", in_channels = 1 }\n"
                                      << "head = { type = \"ClsHead\" }\n";
    const std::string out = expect(razor_command("search " + (dir / "plain.toml") + " --work-dir " + (dir / "plain")),
                                   2, dir / "plain.log");
    CHECK(out.find("searches a NAS algorithm with a mutator") != std::string::npos);
  }
}

TEST_CASE("SPOS training resumed after an epoch samples the same subnets as an uninterrupted run",
          "[nas][e2e]") {
  TempDir dir;
  const std::string train = razor_command("train " + kConfigs + "tiny_spos_supernet.toml --cfg-options param_scheduler=[] "
                                      "train_cfg.max_epochs=2 ");
  expect(train + "--work-dir " + (dir / "whole"), 0, dir / "whole.log");
  expect(razor_command("train " + kConfigs + "tiny_spos_supernet.toml --cfg-options param_scheduler=[] "
                   "train_cfg.max_epochs=1 --work-dir " + (dir / "parts")),
         0, dir / "first.log");
  expect(train + "--work-dir " + (dir / "parts") + " --resume", 0, dir / "second.log");
  razor::CheckpointReader a(dir / "whole/epoch_2.pth"), b(dir / "parts/epoch_2.pth");
  REQUIRE(a.contents().model.size() == b.contents().model.size());
  for (size_t i = 0; i < a.contents().model.size(); ++i) {
    INFO(a.contents().model[i].first);
    CHECK(torch::equal(a.contents().model[i].second, b.contents().model[i].second));
  }
  CHECK(a.contents().meta["model_state"] == b.contents().meta["model_state"]);
}
