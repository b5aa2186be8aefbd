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

/// Runs `command` (output to `dir`/search.log), kills it with -9 once it has written
/// `dir`/search_epoch_1.json (or after 120 s), and returns its wait status.
int kill_after_first_epoch(const std::string& command, const TempDir& dir) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const std::string log = dir / "search.log";
    execl("/bin/sh", "sh", "-c", ("exec " + command + " > " + log + " 2>&1").c_str(), nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir / "search_epoch_1.json") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
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

  // The static subnet is a sub_model of the supernet's architecture, and runs in onnxruntime
  // as razor runs it.
  const std::string subnet_toml = read_file(exported + "/subnet.toml");
  CHECK(subnet_toml.find("\"sub_model\"") != std::string::npos);
  CHECK(subnet_toml.find("\"mutable\"") != std::string::npos);
  expect(razor_command("export " + exported + "/subnet.toml " + exported + "/subnet.pth --format onnx --verify --out " +
                       (dir / "subnet.onnx")),
         0, dir / "onnx.log");
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

  const int status = kill_after_first_epoch(search_command(killed.path()), killed);
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

namespace {

std::string predictor_search(const std::string& work_dir, const std::string& extra = "") {
  return razor_command("search " + kConfigs + "tiny_spos_search_predictor.toml --checkpoint " +
                       supernet() + " --work-dir " + work_dir + " " + extra);
}

/// History lines of `stage`.
std::vector<Json> stage_of(const std::vector<Json>& entries, const std::string& stage) {
  std::vector<Json> out;
  for (const auto& e : entries) {
    if (e["stage"] == stage) out.push_back(e);
  }
  return out;
}

}  // namespace

TEST_CASE(
    "search with predictor_cfg: train_samples subnets and the best one are evaluated for real, "
    "the rest predicted, a kill -9 resumes exactly",
    "[nas][e2e][predictor]") {
  TempDir full, killed;
  const std::string out = expect(predictor_search(full.path()), 0, full / "search.log");
  CHECK(
      out.find("evaluating 5 random subnets for real to fit the predictor (GaussProcessHandler)") !=
      std::string::npos);

  // The predictor's state: 5 measured samples, written to the work dir.
  const Json state = Json::parse(read_file(full / "predictor.json"));
  CHECK(state["format"] == "razor-predictor");
  CHECK(state["encoding_type"] == "onehot");
  CHECK(state["handler"]["type"] == "GaussProcessHandler");
  CHECK(state["search_space"].size() == 3);
  REQUIRE(state["samples"].size() == 5);

  // Exactly train_samples + 1 real evaluations: the samples before the search, the best after it.
  const auto entries = history(full.path());
  const auto samples = stage_of(entries, "predictor_samples");
  const auto searched = stage_of(entries, "search");
  const auto final = stage_of(entries, "final");
  REQUIRE(samples.size() == 5);
  REQUIRE(final.size() == 1);
  REQUIRE(searched.size() >= 6);
  CHECK(samples.size() + searched.size() + final.size() == entries.size());
  int64_t measured = 0;
  for (const auto& e : entries) measured += e["source"] == "measured";
  CHECK(measured == 6);
  for (size_t i = 0; i < samples.size(); ++i) {
    CHECK(samples[i]["source"] == "measured");
    CHECK(samples[i]["epoch"] == 0);
    CHECK(samples[i]["flops"].get<double>() <= 0.70);
    CHECK(samples[i]["choices"] == state["samples"][i]["choices"]);
    CHECK(samples[i]["score"].get<double>() == state["samples"][i]["score"].get<double>());
  }
  double best_predicted = -1e9;
  for (const auto& e : searched) {
    CHECK(e["source"] == "predicted");
    CHECK(e["flops"].get<double>() <= 0.70);
    best_predicted = std::max(best_predicted, e["score"].get<double>());
    // The GP interpolates: a searched subnet that was a training sample is predicted its score.
    for (const auto& s : samples) {
      if (s["choices"] == e["choices"])
        CHECK(e["score"].get<double>() == Approx(s["score"].get<double>()).margin(1e-3));
    }
  }
  CHECK(final[0]["epoch"] == 20);
  CHECK(final[0]["source"] == "measured");

  // Both scores are logged and kept; the measured one is what `razor test` reproduces.
  CHECK(out.find("search: best subnet: predicted accuracy/top1") != std::string::npos);
  razor::CheckpointReader reader(full / "best_subnet.pth");
  CHECK(reader.contents().meta["predicted_score"].get<double>() == best_predicted);
  const double truth = final[0]["score"].get<double>();
  CHECK(reader.contents().meta["score"].get<double>() == truth);
  expect(razor_command("test " + kConfigs + "tiny_spos_search.toml " + (full / "best_subnet.pth") +
                       " --subnet " + (full / "best_fix_subnet.yaml") + " --out " +
                       (full / "test.json")),
         0, full / "test.log");
  CHECK(Json::parse(read_file(full / "test.json"))["metrics"]["accuracy/top1"].get<double>() ==
        Approx(truth).epsilon(1e-12));

  // Killed after the first epoch and resumed: the predictor comes from the checkpoint (no
  // sample is evaluated again) and every prediction is the same to the bit.
  const int status = kill_after_first_epoch(predictor_search(killed.path()), killed);
  INFO(read_file(killed / "search.log"));
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(fs::exists(killed / "search_epoch_1.json"));
  REQUIRE_FALSE(fs::exists(killed / "best_fix_subnet.yaml"));
  CHECK(Json::parse(read_file(killed / "search_epoch_1.json"))["predictor"] == state);

  const std::string resumed =
      expect(predictor_search(killed.path(), "--resume"), 0, killed / "resume.log");
  CHECK(resumed.find("resumed from") != std::string::npos);
  CHECK(resumed.find("evaluating 5 random subnets") == std::string::npos);
  CHECK(read_file(killed / "best_fix_subnet.yaml") == read_file(full / "best_fix_subnet.yaml"));
  const auto b = history(killed.path());
  REQUIRE(b.size() == entries.size());
  for (size_t i = 0; i < b.size(); ++i) {
    CHECK(b[i]["choices"] == entries[i]["choices"]);
    CHECK(b[i]["score"].get<double>() == entries[i]["score"].get<double>());
    CHECK(b[i]["stage"] == entries[i]["stage"]);
  }
  razor::CheckpointReader resumed_best(killed / "best_subnet.pth");
  CHECK(resumed_best.contents().meta["predicted_score"] ==
        reader.contents().meta["predicted_score"]);
}

TEST_CASE(
    "search with predictor_cfg: a pretrained predictor or sample file replaces the evaluations",
    "[nas][e2e][predictor]") {
  TempDir first, state_dir, samples_dir;
  expect(predictor_search(first.path()), 0, first / "search.log");
  const auto reference = history(first.path());

  // A fitted state: nothing is evaluated before the search, and it predicts as before.
  const std::string out = expect(
      predictor_search(state_dir.path(), "--cfg-options train_cfg.predictor_cfg.pretrained=\"" +
                                             (first / "predictor.json") + "\""),
      0, state_dir / "search.log");
  CHECK(out.find("predictor loaded from") != std::string::npos);
  const auto entries = history(state_dir.path());
  CHECK(stage_of(entries, "predictor_samples").empty());
  CHECK(stage_of(entries, "final").size() == 1);
  int64_t compared = 0;
  for (const auto& e : stage_of(entries, "search")) {
    for (const auto& r : stage_of(reference, "search")) {
      if (r["choices"] == e["choices"]) {
        CHECK(r["score"].get<double>() == e["score"].get<double>());
        ++compared;
      }
    }
  }
  CHECK(compared > 0);

  // Measured samples (a search history: its predicted lines are skipped): 5 samples + the final.
  expect(
      predictor_search(samples_dir.path(), "--cfg-options train_cfg.predictor_cfg.pretrained=\"" +
                                               (first / "search_history.jsonl") + "\""),
      0, samples_dir / "search.log");
  const Json fitted = Json::parse(read_file(samples_dir / "predictor.json"));
  CHECK(fitted["samples"].size() >= 5);
  CHECK(fitted["samples"].size() <= 6);
}

TEST_CASE("search with predictor_cfg on two ranks finds what one process finds",
          "[nas][e2e][dist][predictor]") {
  TempDir one, two;
  expect(predictor_search(one.path()), 0, one / "search.log");
  expect(mpirun(2) + predictor_search(two.path()), 0, two / "search.log");
  CHECK(read_file(one / "best_fix_subnet.yaml") == read_file(two / "best_fix_subnet.yaml"));
  CHECK(read_file(one / "predictor.json") == read_file(two / "predictor.json"));
  const auto a = history(one.path()), b = history(two.path());
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["choices"] == b[i]["choices"]);
    CHECK(a[i]["score"].get<double>() == b[i]["score"].get<double>());
  }
}

TEST_CASE("search with predictor_cfg: bad input is a clear config error naming the key",
          "[nas][e2e][predictor]") {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train_cfg.predictor_cfg.handler_cfg.type=\"GPHandler\"",
       "train_cfg.predictor_cfg.handler_cfg.type: unknown predictor_handlers type \"GPHandler\""},
      {"train_cfg.predictor_cfg.train_samples=0",
       "train_cfg.predictor_cfg.train_samples: must be >= 1, got 0"},
      {"train_cfg.predictor_cfg.encoding_type=\"binary\"",
       "train_cfg.predictor_cfg.encoding_type: unknown encoding \"binary\""},
      {"train_cfg.predictor_cfg.score_key=\"accuracy/top5\"",
       "train_cfg.predictor_cfg.score_key: must equal train_cfg.score_key"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string log = dir / ("bad" + std::to_string(i) + ".log");
    const std::string output = expect(
        predictor_search(dir / ("bad" + std::to_string(i)), "--cfg-options " + cases[i].first), 2,
        log);
    CHECK(output.find(cases[i].second) != std::string::npos);
  }
}

// Each iteration's subnet changes the set of unused parameters, which c10d's Reducer reports
// to its logger (a missing one crashed the second iteration): two ranks train, and train the
// subnets one process trains (the weights agree to 1e-5 in float64:
// tests/dist/multi_process_test.cpp).
TEST_CASE("SPOS trains on two ranks with the subnet sequence of one process", "[nas][e2e][dist]") {
  TempDir dir;
  const std::string train =
      "train " + kConfigs + "tiny_spos_supernet.toml --cfg-options 'val_cfg.sample_kinds=[\"max\"]' ";
  expect(razor_command(train + "--work-dir " + (dir / "one")), 0, dir / "one.log");
  expect(mpirun(2) + razor_command(train + "train_dataloader.batch_size=32 sync_bn=true --work-dir " +
                                   (dir / "two")),
         0, dir / "two.log");
  razor::CheckpointReader a(dir / "one/epoch_1.pth"), b(dir / "two/epoch_1.pth");
  REQUIRE(a.contents().model.size() == b.contents().model.size());
  CHECK(a.contents().meta["model_state"] == b.contents().meta["model_state"]);
  CHECK(a.contents().meta["iter"] == b.contents().meta["iter"]);
}
