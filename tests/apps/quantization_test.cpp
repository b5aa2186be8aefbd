// Quantisation end to end through the razor executable, on a tiny float ResNet-8 trained
// on 4,096 Fashion-MNIST images: PTQ for each backend (the float pass reproduces the float
// model's accuracy exactly, the int8 one stays close), the PTQ checkpoint tested again
// gives the same figures, QAT and LSQ train, and bad input fails naming the key.
#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>

#include "engine/config.h"
#include "tests/datasets/temp_dir.h"
#include "tests/process.h"

using namespace razor::test;
namespace fs = std::filesystem;

namespace {

const std::string kConfigs = std::string(RAZOR_SOURCE_DIR) + "/tests/data/configs/quantization/";

/// A float ResNet-8 checkpoint, trained once per test process (in a folder of its own that
/// lives as long as the process).
const std::string& float_checkpoint(double* float_top1) {
  static TempDir dir;
  static std::string path;
  static double top1 = -1;
  if (path.empty()) {
    const std::string log = dir / "float.log";
    REQUIRE(run(razor_command("train " + kConfigs + "tiny_float_resnet8.toml --work-dir " + (dir / "float")), log) == 0);
    path = dir / "float/epoch_1.pth";
    top1 = metric(read_file(log), "accuracy/top1");
  }
  *float_top1 = top1;
  return path;
}

}  // namespace

TEST_CASE("razor ptq: every backend keeps the float accuracy within 1.5 points, the checkpoint tests the same", "[quant][ptq]") {
  TempDir dir;
  double float_top1 = 0;
  const std::string ckpt = float_checkpoint(&float_top1);
  REQUIRE(float_top1 > 60);
  for (const std::string backend : {"NativeQuantizer", "OpenVINOQuantizer", "TensorRTQuantizer"}) {
    INFO(backend);
    const std::string work = dir / ("ptq_" + backend);
    std::string overrides = " --cfg-options 'model.quantizer.type=\"" + backend + "\"'";
    if (backend == "TensorRTQuantizer") overrides += " 'model.quantizer.global_qconfig.a_qscheme.qdtype=\"qint8\"'";
    const std::string log = work + ".log";
    REQUIRE(run(razor_command("ptq " + kConfigs + "tiny_ptq_resnet8.toml --checkpoint " + ckpt + " --work-dir " + work + overrides), log) == 0);
    const std::string text = read_file(log);
    CHECK(text.find("PTQ: calibrated") != std::string::npos);
    REQUIRE(fs::exists(work + "/model_ptq.pth"));
    // The float pass is the float model: same weights, quantisers off.
    CHECK(metric(text, "original.accuracy/top1") == Approx(float_top1).margin(1e-3));
    const double int8 = metric(text, "qat.accuracy/top1");
    CHECK(int8 > 0);
    CHECK(std::abs(int8 - float_top1) <= 1.5);

    // The saved checkpoint (observers frozen) measures the same on the same images.
    const std::string test_log = work + "_test.log";
    REQUIRE(run(razor_command("test " + kConfigs + "tiny_ptq_resnet8.toml " + work + "/model_ptq.pth --work-dir " + work +
                              "_test" + overrides + " 'model.float_checkpoint=\"" + ckpt + "\"'"),
                test_log) == 0);
    CHECK(metric(read_file(test_log), "qat.accuracy/top1") == Approx(int8).margin(1e-3));
  }

  // 4-bit weights, refined by AdaRound then bias correction: both run and report.
  const std::string work = dir / "ptq_refined";
  const std::string log = work + ".log";
  REQUIRE(run(razor_command("ptq " + kConfigs + "tiny_ptq_resnet8.toml --checkpoint " + ckpt + " --work-dir " + work +
                            " --cfg-options model.quantizer.global_qconfig.w_qscheme.bit=4 train_cfg.refine_steps=2"
                            " 'train_cfg.adaround={iters=20}' train_cfg.bias_correction=true"),
              log) == 0);
  const std::string text = read_file(log);
  CHECK(text.find("PTQ: AdaRound over 10 layers on 2 batches") != std::string::npos);
  CHECK(text.find("PTQ: bias correction of 10 layers on 2 batches") != std::string::npos);
  CHECK(metric(text, "qat.accuracy/top1") > 30);
}

TEST_CASE("razor train with QAT and LSQ configs trains the quantised model", "[quant][qat]") {
  TempDir dir;
  double float_top1 = 0;
  const std::string ckpt = float_checkpoint(&float_top1);
  for (const std::string config : {"tiny_qat_resnet8.toml", "tiny_lsq_resnet8.toml"}) {
    INFO(config);
    const std::string log = dir / (config + ".log");
    REQUIRE(run(razor_command("train " + kConfigs + config + " --work-dir " + (dir / config) +
                              " --cfg-options 'model.float_checkpoint=\"" + ckpt + "\"'"),
                log) == 0);
    const std::string text = read_file(log);
    CHECK(text.find("QAT: BatchNorm statistics frozen from epoch 1") != std::string::npos);
    const double q = metric(text, "qat.accuracy/top1");
    // Eight iterations: 8-bit QAT stays near the float model; 4-bit LSQ weights within 10
    // points (the full recipe's figure is in configs/quantization/README.md).
    CHECK(q > float_top1 - (config == "tiny_lsq_resnet8.toml" ? 10 : 5));
    CHECK(fs::exists(dir / (config + "/epoch_1.pth")));
  }
}

TEST_CASE("razor ptq: bad input exits 2 naming the key", "[quant][ptq]") {
  TempDir dir;
  double float_top1 = 0;
  const std::string ckpt = float_checkpoint(&float_top1);
  const std::string base = "ptq " + kConfigs + "tiny_ptq_resnet8.toml --checkpoint " + ckpt + " --work-dir " + (dir / "w") + " ";
  auto fails = [&](const std::string& args) {
    const std::string log = dir / "bad.log";
    const int code = run(razor_command(base + args), log);
    return std::make_pair(code, read_file(log));
  };
  auto [c1, t1] = fails("--cfg-options 'model.quantizer.ignored_scopes=[\"backbone.nope\"]'");
  CHECK(c1 == 2);
  CHECK_THAT(t1, Catch::Contains("ignored_scopes: \"backbone.nope\" names no op of the model"));
  auto [c2, t2] = fails("--cfg-options 'model.quantizer.global_qconfig.w_qscheme.bit=9'");
  CHECK(c2 == 2);
  CHECK_THAT(t2, Catch::Contains("w_qscheme.bit") && Catch::Contains("between 2 and 8"));
  auto [c3, t3] = fails("--cfg-options 'model.quantizer.global_qconfig.a_observer.type=\"PerChannelMinMaxObserver\"'");
  CHECK(c3 == 2);
  CHECK_THAT(t3, Catch::Contains("per-channel activation quantisation is not supported"));
  auto [c4, t4] = fails("--cfg-options 'train_cfg.calibrate_dataloader.dataset.indices=[]'");
  CHECK(c4 == 2);
  CHECK_THAT(t4, Catch::Contains("calibrate_dataloader"));
  auto [c5, t5] = fails("--cfg-options 'model.input_shapes=[1, 3, 28, 28]'");
  CHECK(c5 == 2);
  CHECK_THAT(t5, Catch::Contains("model.input_shapes"));
  auto [c6, t6] = fails("--cfg-options train_cfg.adaround=3");
  CHECK(c6 == 2);
  CHECK_THAT(t6, Catch::Contains("train_cfg.adaround"));
  auto [c7, t7] = fails("--cfg-options 'train_cfg.adaround={beta=[1, 5]}'");
  CHECK(c7 == 2);
  CHECK_THAT(t7, Catch::Contains("train_cfg.adaround.beta"));
  auto [c8, t8] = fails("--cfg-options 'dtype=\"float64\"'");
  CHECK(c8 == 2);
  CHECK_THAT(t8, Catch::Contains("fake quantisation computes in float32") && Catch::Contains("dtype"));
  CHECK_FALSE(fs::exists(dir / "w/model_ptq.pth"));
}
