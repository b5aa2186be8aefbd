// `razor export --format onnx --verify` through the razor executable on a tiny ResNet-8 trained
// on Fashion-MNIST: the float file and the QDQ files of the three PTQ backends pass the
// onnxruntime check (and OpenCV DNN for float), the check itself catches a wrong output, the
// FakeQuantize form writes, and a float model refuses a quantised form.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <vector>

#include "apps/onnx_export.h"
#include "engine/config.h"
#include "tests/datasets/temp_dir.h"
#include "tests/process.h"

using namespace razor;
using namespace razor::test;
namespace fs = std::filesystem;

namespace {

const std::string kConfigs = std::string(RAZOR_SOURCE_DIR) + "/tests/data/configs/quantization/";

}  // namespace

TEST_CASE("razor export --format onnx --verify: float and quantised files compute what razor computed", "[export][onnx][ptq]") {
  TempDir dir;
  const std::string float_config = kConfigs + "tiny_float_resnet8.toml";
  REQUIRE(run(razor_command("train " + float_config + " --work-dir " + (dir / "float") +
                            " --cfg-options train_dataloader.dataset.indices=1024"),
              dir / "train.log") == 0);
  const std::string ckpt = dir / "float/epoch_1.pth";

  // Float: onnxruntime at both optimisation levels and OpenCV DNN, within 1e-4 relative.
  const std::string float_onnx = dir / "float.onnx";
  REQUIRE(run(razor_command("export " + float_config + " " + ckpt + " --format onnx --out " + float_onnx +
                            " --verify --verify-images 128"),
              dir / "float_export.log") == 0);
  std::string text = read_file(dir / "float_export.log");
  CHECK(text.find("Verified: the file computes what razor computed") != std::string::npos);
  CHECK(text.find("OpenCV DNN: relative error") != std::string::npos);

  // The check is not a formality: one razor output moved by 1 shows as a difference of 1.
  const std::string expected = float_onnx + ".check/expected.f32";
  {
    std::fstream f(expected, std::ios::in | std::ios::out | std::ios::binary);
    float v = 0;
    f.read(reinterpret_cast<char*>(&v), sizeof v);
    v += 1.0f;
    f.seekp(0);
    f.write(reinterpret_cast<const char*>(&v), sizeof v);
  }
  const std::string checker = find_onnx_checker();
  REQUIRE(!checker.empty());
  REQUIRE(run("node " + checker + " " + float_onnx + " " + float_onnx + ".check", dir / "tampered.json") == 0);
  const Json tampered = Json::parse(read_file(dir / "tampered.json"));
  CHECK(tampered.at("disabled").at("max_abs_diff").get<double>() == Approx(1.0).margin(1e-3));

  // A float model has no quantised form.
  CHECK(run(razor_command("export " + float_config + " " + ckpt + " --format onnx --form qdq --out " + (dir / "no.onnx")),
            dir / "no.log") == 2);
  CHECK(read_file(dir / "no.log").find("is not a quantised model") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "no.onnx"));

  // Each PTQ backend's QDQ file: with onnxruntime's optimisation off, within one output step.
  for (const std::string backend : {"NativeQuantizer", "OpenVINOQuantizer", "TensorRTQuantizer"}) {
    INFO(backend);
    const std::string work = dir / ("ptq_" + backend);
    std::string overrides = " --cfg-options 'model.quantizer.type=\"" + backend + "\"'";
    if (backend == "TensorRTQuantizer") overrides += " 'model.quantizer.global_qconfig.a_qscheme.qdtype=\"qint8\"'";
    const std::string ptq_config = kConfigs + "tiny_ptq_resnet8.toml";
    REQUIRE(run(razor_command("ptq " + ptq_config + " --checkpoint " + ckpt + " --work-dir " + work + overrides),
                work + ".log") == 0);
    const std::string onnx = work + ".onnx";
    REQUIRE(run(razor_command("export " + ptq_config + " " + work + "/model_ptq.pth --format onnx --out " + onnx +
                              " --verify --verify-images 128" + overrides),
                work + "_export.log") == 0);
    text = read_file(work + "_export.log");
    CHECK(text.find("(qdq, opset 13") != std::string::npos);
    CHECK(text.find("within one output step") != std::string::npos);
    CHECK(text.find("Verified") != std::string::npos);
    if (backend == "OpenVINOQuantizer") {
      const std::string fq = work + "_fq.onnx";
      REQUIRE(run(razor_command("export " + ptq_config + " " + work + "/model_ptq.pth --format onnx --form fakequantize --out " +
                                fq + overrides),
                  work + "_fq.log") == 0);
      CHECK(read_file(work + "_fq.log").find("(fakequantize, opset 11") != std::string::npos);
      CHECK(fs::file_size(fq) > 0);
    }
  }

  // Mixed precision: the checkpoint's bit widths reach the exported scales and integers.
  const std::string work = dir / "ptq_mixed";
  const std::string ptq_config = kConfigs + "tiny_ptq_resnet8.toml";
  REQUIRE(run(razor_command("ptq " + ptq_config + " --checkpoint " + ckpt + " --work-dir " + work +
                            " --cfg-options train_cfg.refine_steps=2 'train_cfg.mixed_precision={bits=[4, 8], size_ratio=0.7}'"),
              work + ".log") == 0);
  CHECK(read_file(work + ".log").find("PTQ: mixed precision on 2 batches") != std::string::npos);
  REQUIRE(run(razor_command("export " + ptq_config + " " + work + "/model_ptq.pth --format onnx --out " + work +
                            ".onnx --verify --verify-images 128"),
              work + "_export.log") == 0);
  CHECK(read_file(work + "_export.log").find("Verified") != std::string::npos);
}

TEST_CASE("ONNXRuntimeQuantizer: onnxruntime's optimised graphs of ResNet-8 and MobileNetV2 keep no float Conv, Gemm "
          "or Add",
          "[export][onnx][ptq]") {
  TempDir dir;
  // Each model trained briefly (the graph, not the accuracy, is under test) and quantised.
  const std::vector<std::tuple<std::string, std::string, std::string>> models = {
      {"resnet8", kConfigs + "tiny_float_resnet8.toml", kConfigs + "tiny_ptq_onnxruntime_resnet8.toml"},
      {"mobilenet_v2", kConfigs + "tiny_float_mobilenet_v2.toml", kConfigs + "tiny_ptq_onnxruntime_mobilenet_v2.toml"}};
  for (const auto& [name, float_config, ptq] : models) {
    INFO(name);
    REQUIRE(run(razor_command("train " + float_config + " --work-dir " + (dir / name) +
                              " --cfg-options train_dataloader.dataset.indices=256"),
                dir / (name + "_train.log")) == 0);
    const std::string work = dir / (name + "_ptq");
    REQUIRE(run(razor_command("ptq " + ptq + " --checkpoint " + (dir / name) + "/epoch_1.pth --work-dir " + work),
                work + ".log") == 0);
    const std::string log = work + "_export.log";
    REQUIRE(run(razor_command("export " + ptq + " " + work + "/model_ptq.pth --format onnx --out " + work +
                              ".onnx --verify --verify-images 128"),
                log) == 0);
    const std::string text = read_file(log);
    CHECK(text.find("Verified") != std::string::npos);
    CHECK(text.find("onnxruntime's optimised graph: 0 float compute nodes left; int8 runs at") != std::string::npos);
    if (name == "resnet8") {
      // The control: OpenVINO's placement (symmetric activations) leaves float convs and adds.
      const std::string openvino = dir / "openvino";
      REQUIRE(run(razor_command("ptq " + kConfigs + "tiny_ptq_resnet8.toml --checkpoint " + (dir / name) +
                                "/epoch_1.pth --work-dir " + openvino),
                  openvino + ".log") == 0);
      REQUIRE(run(razor_command("export " + kConfigs + "tiny_ptq_resnet8.toml " + openvino +
                                "/model_ptq.pth --format onnx --out " + openvino + ".onnx --verify --verify-images 128"),
                  openvino + "_export.log") == 0);
      const std::string ov = read_file(openvino + "_export.log");
      CHECK(ov.find("onnxruntime's optimised graph: 0 float") == std::string::npos);
      CHECK(ov.find("FusedConv") != std::string::npos);
    }
  }
}
