#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/register_all.h"
#include "components/estimators/resource_estimator.h"
#include "engine/config.h"
#include "engine/runner.h"

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
  // The configs' work_dir under this process's temporary directory (a private one per test).
  std::string body = text;
  const std::string fixed = "/tmp/razor_test_cli";
  for (size_t at = body.find(fixed); at != std::string::npos; at = body.find(fixed, at + 1)) {
    body.replace(at, fixed.size(), dir.string());
  }
  std::ofstream(path) << body;
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

TEST_CASE("CLI: config print resolves overrides, usage errors exit 2, --version exits 0", "[cli]") {
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

namespace {

const char* kToyData = R"(
device = "cpu"
[train_dataloader]
batch_size = 8
dataset = { type = "Synthetic", num_samples = 256, num_classes = 4, shape = [1, 12, 12], seed = 1 }
[test_dataloader]
batch_size = 16
dataset = { type = "Synthetic", num_samples = 48, num_classes = 4, shape = [1, 12, 12], seed = 2 }
[optim_wrapper.optimizer]
type = "SGD"
lr = 0.05
[train_cfg]
max_epochs = 3
)";

const char* kToyStudent = R"(
[model]
type = "ImageClassifier"
backbone = { type = "ResNet_CIFAR", depth = 8, in_channels = 1, base_channels = 4 }
neck = { type = "GlobalAveragePooling" }
head = { type = "LinearClsHead", num_classes = 4, in_channels = 16 }
)";

const char* kToyDistill = R"(
[model]
type = "SingleTeacherDistill"
architecture = { type = "ImageClassifier", backbone = { type = "ResNet_CIFAR", depth = 8, in_channels = 1, base_channels = 4 }, neck = { type = "GlobalAveragePooling" }, head = { type = "LinearClsHead", num_classes = 4, in_channels = 16 } }
teacher = { type = "ImageClassifier", backbone = { type = "ResNet_CIFAR", depth = 8, in_channels = 1, base_channels = 8 }, neck = { type = "GlobalAveragePooling" }, head = { type = "LinearClsHead", num_classes = 4, in_channels = 32 } }
[model.distiller]
student_recorders = { fc = { type = "ModuleOutputs", source = "head.fc" } }
teacher_recorders = { fc = { type = "ModuleOutputs", source = "head.fc" } }
distill_losses = { loss_kd = { type = "KLDivergence", tau = 4, loss_weight = 0.5 } }
[model.distiller.loss_forward_mappings.loss_kd]
preds_S = { from_student = true, recorder = "fc" }
preds_T = { from_student = false, recorder = "fc" }
)";

double top1(const CliResult& result) {
  const auto at = result.out.find("accuracy/top1: ");
  REQUIRE(at != std::string::npos);
  return std::stod(result.out.substr(at + 15));
}

}  // namespace

TEST_CASE("CLI: export turns a distillation checkpoint into a student checkpoint", "[cli][export]") {
  const fs::path work = fs::temp_directory_path() / "razor_test_cli" / "export";
  fs::remove_all(work);
  auto distill = write_config("toy_distill.toml", std::string(kToyData) + kToyDistill);
  auto student = write_config("toy_student.toml", std::string(kToyData) + kToyStudent);
  REQUIRE(run({"train", distill.string(), "--work-dir", work.string()}).code == 0);
  const std::string checkpoint = (work / "epoch_3.pth").string();
  const std::string exported = (work / "student.pth").string();

  // The student config refuses the algorithm's checkpoint, and says what to do.
  auto refused = run({"test", student.string(), checkpoint, "--work-dir", work.string()});
  CHECK(refused.code == 2);
  CHECK_THAT(refused.err, Catch::Contains("razor export"));

  auto exporting = run({"export", distill.string(), checkpoint, "--out", exported});
  REQUIRE(exporting.code == 0);
  CHECK_THAT(exporting.out, Catch::Contains("Exported"));
  // The student's own config gives the accuracy the distillation config gives.
  auto as_distill = run({"test", distill.string(), checkpoint, "--work-dir", work.string()});
  auto as_student = run({"test", student.string(), exported, "--work-dir", work.string()});
  REQUIRE(as_distill.code == 0);
  REQUIRE(as_student.code == 0);
  CHECK(top1(as_student) == Approx(top1(as_distill)));
  CHECK(top1(as_student) > 40.0);  // a trained student (chance is 25 %), not initial weights

  // A plain model has nothing to export; nothing is written.
  const std::string again = (work / "again.pth").string();
  auto plain = run({"export", student.string(), exported, "--out", again});
  CHECK(plain.code == 2);
  CHECK_THAT(plain.err, Catch::Contains("no architecture to export"));
  CHECK_FALSE(fs::exists(again));
}

namespace {

std::string resnet20_config() {
  return (fs::path(RAZOR_SOURCE_DIR) / "configs" / "resnet" / "resnet20_fmnist.toml").string();
}

/// "FLOPs: X M" and "Params: Y M" as the estimator counts the config's model itself.
std::pair<std::string, std::string> estimated_totals(const std::string& file,
                                                     std::vector<int64_t> shape) {
  register_all();  // what run_cli does first
  RunnerOptions options;
  options.write_files = false;
  options.log_level = "warn";
  options.launcher = "none";
  Runner runner(std::make_shared<Config>(load_config(file)), options);
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape(std::move(shape)));
  const Resources totals = estimator.estimate(runner.model());
  char flops[64], params[64];
  std::snprintf(flops, sizeof(flops), "FLOPs: %.3f M", totals.flops);
  std::snprintf(params, sizeof(params), "Params: %.3f M", totals.params);
  return {flops, params};
}

}  // namespace

TEST_CASE("CLI: analyze prints per-op rows and the estimator's totals", "[cli][analyze]") {
  const std::string config = resnet20_config();
  const auto totals = estimated_totals(config, {1, 1, 28, 28});
  CHECK(totals.first == "FLOPs: 31.477 M");
  CHECK(totals.second == "Params: 0.272 M");

  auto result = run({"analyze", config, "--input-shape", "1", "1", "28", "28"});
  REQUIRE(result.code == 0);
  CHECK_THAT(result.out, Catch::Contains(totals.first) && Catch::Contains(totals.second));
  CHECK_THAT(result.out, Catch::Contains("Input shape: [1, 1, 28, 28] (--input-shape)"));
  // One row per op: path, type, output shape, FLOPs and params in M.
  CHECK_THAT(result.out,
             Catch::Matches("[\\s\\S]*\nbackbone\\.conv1 +Conv2d +\\[1, 16, 28, 28\\] +"
                            "0\\.113 +0\\.000\n[\\s\\S]*"));
  CHECK_THAT(result.out, Catch::Contains("backbone.layer2.0.downsample.0") &&
                             Catch::Contains("head.fc") && Catch::Contains("ReLU (x2)"));

  // Without --input-shape: one sample of the test set, 1 x 1 x 28 x 28, the same counts.
  auto sampled = run({"analyze", config});
  REQUIRE(sampled.code == 0);
  CHECK_THAT(sampled.out, Catch::Contains("[1, 1, 28, 28] (one sample of test_dataloader)") &&
                              Catch::Contains(totals.first));

  // A config's estimator_cfg input_shape comes before the data.
  auto configured = run({"analyze", config, "--cfg-options",
                         "test_cfg.estimator_cfg.input_shape=[1, 1, 32, 32]"});
  REQUIRE(configured.code == 0);
  CHECK_THAT(configured.out,
             Catch::Contains("[1, 1, 32, 32] (test_cfg.estimator_cfg.input_shape)") &&
                 Catch::Contains(estimated_totals(config, {1, 1, 32, 32}).first));
}

TEST_CASE("CLI: analyze --channel-units prints the unit table and writes MMRazor's JSON", "[cli][analyze][channel]") {
  const std::string config = resnet20_config();
  auto table = run({"analyze", config, "--channel-units"});
  REQUIRE(table.code == 0);
  CHECK_THAT(table.out, Catch::Contains("Input shape: [1, 1, 28, 28] (one sample of test_dataloader)") &&
                            Catch::Contains("Channel units: 12 prunable, 2 frozen") &&
                            Catch::Contains("backbone.layer1.0.conv1_(0, 16)_16") &&
                            Catch::Contains("head.fc_(0, 10)_10: the model output"));
  CHECK_THAT(table.out, Catch::Matches("[\\s\\S]*\nbackbone\\.conv1_\\(0, 16\\)_16 +16  out: backbone\\.conv1, "
                                       "backbone\\.bn1, backbone\\.layer1\\.0\\.conv2,[\\s\\S]*"));

  const auto file = fs::temp_directory_path() / "razor_test_cli" / "units.json";
  fs::create_directories(file.parent_path());
  fs::remove(file);
  auto written = run({"analyze", config, "--channel-units", "-o", file.string(), "-c", "-i"});
  INFO(written.err);
  REQUIRE(written.code == 0);
  const Json units = Json::parse(std::ifstream(file));
  CHECK(units.size() == 12);
  const Json& stem = units["backbone.conv1_(0, 16)_16"];
  CHECK(stem["init_args"]["num_channels"] == 16);
  CHECK(stem["channels"]["output_related"][0] == Json{{"name", "backbone.conv1"},
                                                      {"start", 0},
                                                      {"end", 16},
                                                      {"expand_ratio", 1},
                                                      {"is_output_channel", true}});
  CHECK(stem["channels"]["input_related"].size() == 9);
  CHECK(stem["choice"] == 1.0);

  auto choices = run({"analyze", config, "--channel-units", "-o", file.string(), "--choice"});
  REQUIRE(choices.code == 0);
  const Json choice = Json::parse(std::ifstream(file));
  CHECK(choice.size() == 12);
  CHECK(choice["backbone.layer3.0.conv2_(0, 64)_64"] == 1.0);

  // The JSON options belong to --channel-units.
  CHECK(run({"analyze", config, "-o", file.string()}).code == 2);
}

TEST_CASE("CLI: analyze rejects a bad input shape with exit 2", "[cli][analyze]") {
  const std::string config = resnet20_config();
  auto zero = run({"analyze", config, "--input-shape", "1", "1", "0", "28"});
  CHECK(zero.code == 2);
  CHECK_THAT(zero.err, Catch::Contains("--input-shape") && Catch::Contains("4 positive"));
  CHECK(run({"analyze", config, "--input-shape", "1", "28", "28"}).code == 2);
  auto configured = run({"analyze", config, "--cfg-options",
                         "test_cfg.estimator_cfg.input_shape=[1, 28, 28]"});
  CHECK(configured.code == 2);
  CHECK_THAT(configured.err, Catch::Contains("test_cfg.estimator_cfg.input_shape"));
  // Nothing to take a shape from: say what to pass.
  auto model_only = write_config("analyze_model_only.toml", kToyStudent);
  auto unknown = run({"analyze", model_only.string()});
  CHECK(unknown.code == 2);
  CHECK_THAT(unknown.err, Catch::Contains("pass --input-shape N C H W"));
  CHECK(run({"analyze", model_only.string(), "--input-shape", "1", "1", "12", "12"}).code == 0);
  CHECK(run({"analyze", config, "/nonexistent.pth", "--input-shape", "1", "1", "28", "28"}).code ==
        2);
}
