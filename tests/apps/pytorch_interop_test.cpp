// Starting from a PyTorch model: torchvision files (tests/data/pytorch, written by
// make_fixtures.py with the logits PyTorch computed) give torchvision's logits in razor, from
// every container form, in onnxruntime through `razor export --format onnx`, and round-trip
// through `razor export --format pytorch`.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "apps/register_all.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/pytorch_file.h"
#include "engine/runner.h"
#include "tests/datasets/temp_dir.h"
#include "tests/process.h"

using namespace razor;
using namespace razor::test;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(RAZOR_TEST_DATA_DIR) + "/pytorch/";

// razor's configs of the fixtures' narrow torchvision models, with 3x32x32 synthetic data.
std::string model_config(const std::string& name) {
  std::string backbone, channels;
  if (name == "resnet18" || name == "resnet50") {
    backbone = "{ type = \"ResNet\", depth = " + std::string(name == "resnet18" ? "18" : "50") +
               ", in_channels = 3, stem_channels = 4, base_channels = 4 }";
    channels = name == "resnet18" ? "32" : "128";
  } else {
    backbone = "{ type = \"MobileNetV2\", widen_factor = 0.25, in_channels = 3 }";
    channels = "1280";
  }
  return "num_threads = 1\n"
         "[model]\ntype = \"ImageClassifier\"\nbackbone = " + backbone +
         "\nneck = { type = \"GlobalAveragePooling\" }\n"
         "head = { type = \"LinearClsHead\", num_classes = 10, in_channels = " + channels +
         ", loss = { type = \"CrossEntropyLoss\" } }\n"
         "[test_dataloader]\nbatch_size = 16\n"
         "dataset = { type = \"Synthetic\", num_samples = 32, num_classes = 10, shape = [3, 32, 32] }\n"
         "[test_evaluator]\ntype = \"Accuracy\"\n";
}

std::shared_ptr<Config> config_of(const std::string& text) {
  register_all();
  return std::make_shared<Config>(parse_config_text(text, "interop.toml"));
}

// The model's logits on `input` after loading `checkpoint` the way `razor test` does.
torch::Tensor logits_of(std::shared_ptr<Config> config, const std::string& checkpoint, const torch::Tensor& input) {
  RunnerOptions options;
  options.device = "cpu";
  options.write_files = false;
  Runner runner(std::move(config), options);
  runner.load_weights(checkpoint, /*require_all=*/true);
  Model& model = runner.model();
  model.eval();
  torch::NoGradGuard no_grad;
  return model.forward_tensor(input);
}

// The same on the input of the fixture `name`.
torch::Tensor razor_logits(const std::string& config_text, const std::string& checkpoint, const std::string& name) {
  const auto reference = read_pytorch_state_dict(kData + "tv_" + name + "_logits.pth");
  return logits_of(config_of(config_text), checkpoint, reference.at(0).second);
}

std::map<std::string, torch::Tensor> by_name(const StateDict& tensors) {
  return std::map<std::string, torch::Tensor>(tensors.begin(), tensors.end());
}

double relative_error(const torch::Tensor& logits, const std::string& name) {
  const auto reference = read_pytorch_state_dict(kData + "tv_" + name + "_logits.pth");
  REQUIRE(reference.at(1).first == "logits");
  const torch::Tensor& expected = reference.at(1).second;
  REQUIRE(logits.sizes() == expected.sizes());
  return ((logits - expected).abs().max() / expected.abs().max()).item<double>();
}

}  // namespace

TEST_CASE("torchvision ResNet-18, ResNet-50 and MobileNetV2 files give the logits torchvision gives",
          "[pytorch][interop]") {
  for (const std::string name : {"resnet18", "resnet50", "mobilenet_v2"}) {
    INFO(name);
    const std::string file = kData + "tv_" + name + ".pth";
    CHECK(relative_error(razor_logits(model_config(name), file, name), name) < 1e-5);
    CHECK(relative_error(razor_logits("checkpoint_mapping = \"torchvision\"\n" + model_config(name), file, name),
                         name) < 1e-5);
    // Without the mapping the names do not fit: the control that the mapping did the work.
    CHECK_THROWS_WITH(razor_logits("checkpoint_mapping = \"none\"\n" + model_config(name), file, name),
                      Catch::Contains("does not hold"));
  }
}

TEST_CASE("MMEngine's, timm's and a DDP model's containers load, with checkpoint_key and revise_keys",
          "[pytorch][interop]") {
  const std::string config = model_config("resnet18");
  for (const char* file : {"container_mmengine.pth", "container_timm.pth"}) {
    INFO(file);
    CHECK(relative_error(razor_logits(config, kData + file, "resnet18"), "resnet18") < 1e-5);
  }
  // {"ema": {"module.conv1.weight", ...}}: the default revise_keys strip DDP's "module.".
  const std::string ema = kData + "container_ema_ddp.pth";
  CHECK(relative_error(razor_logits("checkpoint_key = \"ema\"\n" + config, ema, "resnet18"), "resnet18") < 1e-5);
  // MMEngine's spelling: a Python regex with a group reference.
  CHECK(relative_error(razor_logits("checkpoint_key = \"ema\"\nrevise_keys = [[\"^module\\\\.(.+)$\", \"\\\\1\"]]\n" +
                                        config, ema, "resnet18"),
                       "resnet18") < 1e-5);
  CHECK_THROWS_WITH(razor_logits("checkpoint_key = \"ema\"\nrevise_keys = []\n" + config, ema, "resnet18"),
                    Catch::Contains("does not hold"));

  CHECK_THROWS_WITH(razor_logits("checkpoint_mapping = \"tv\"\n" + config, ema, "resnet18"),
                    Catch::Contains("checkpoint_mapping must be one of auto, none, mmcls, torchvision"));
  CHECK_THROWS_WITH(razor_logits("revise_keys = [[\"(\", \"\"]]\n" + config, ema, "resnet18"),
                    Catch::Contains("revise_keys: \"(\" is not a valid regular expression"));
  CHECK_THROWS_WITH(razor_logits("revise_keys = [\"^module\"]\n" + config, ema, "resnet18"),
                    Catch::Contains("[regex, replacement] pair"));
}

TEST_CASE("razor export --format pytorch writes torchvision's state dict, and razor reads its own back",
          "[pytorch][interop][export]") {
  TempDir dir;
  for (const std::string name : {"resnet18", "mobilenet_v2"}) {
    INFO(name);
    const std::string config = dir / (name + ".toml");
    std::ofstream(config) << model_config(name);
    const std::string source = kData + "tv_" + name + ".pth";

    const std::string tv = dir / (name + "_tv.pth");
    REQUIRE(run(razor_command("export " + config + " " + source + " --format pytorch --names torchvision --out " + tv),
                dir / "export_tv.log") == 0);
    // The very names, order aside, and values of the file torchvision wrote.
    const auto original = read_pytorch_state_dict(source);
    const auto written = by_name(read_pytorch_state_dict(tv));
    REQUIRE(written.size() == original.size());
    for (const auto& [key, tensor] : original) {
      INFO(key);
      REQUIRE(written.count(key));
      CHECK(torch::equal(written.at(key), tensor));
    }

    // razor's names, read back with no mapping at all.
    const std::string own = dir / (name + "_razor.pth");
    REQUIRE(run(razor_command("export " + config + " " + source + " --format pytorch --out " + own),
                dir / "export_razor.log") == 0);
    CHECK(relative_error(razor_logits("checkpoint_mapping = \"none\"\n" + model_config(name), own, name), name) < 1e-5);
  }
  // A ResNet_CIFAR has no torchvision counterpart.
  const std::string cifar = dir / "cifar.toml";
  std::ofstream(cifar) << "[model]\ntype = \"ImageClassifier\"\nbackbone = { type = \"ResNet_CIFAR\", depth = 8 }\n"
                          "neck = { type = \"GlobalAveragePooling\" }\nhead = { type = \"LinearClsHead\", "
                          "num_classes = 10, in_channels = 64, loss = { type = \"CrossEntropyLoss\" } }\n";
  const std::string cifar_ckpt = dir / "cifar.pth";
  {
    RunnerOptions options;
    options.write_files = false;
    register_all();
    Runner runner(std::make_shared<Config>(load_config(cifar)), options);
    write_pytorch_state_dict(cifar_ckpt, state_dict(runner.model()));
  }
  CHECK(run(razor_command("export " + cifar + " " + cifar_ckpt + " --format pytorch --names torchvision --out " +
                          (dir / "no.pth")),
            dir / "cifar.log") == 2);
  CHECK(read_file(dir / "cifar.log").find("torchvision has no model of this architecture") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "no.pth"));
}

TEST_CASE("razor export --format pytorch of a quantised checkpoint: the float model with its BatchNorms folded",
          "[pytorch][interop][export][ptq]") {
  TempDir dir;
  const std::string configs = std::string(RAZOR_SOURCE_DIR) + "/tests/data/configs/quantization/";
  const std::string float_config = configs + "tiny_float_resnet8.toml";
  const std::string ptq_config = configs + "tiny_ptq_resnet8.toml";
  REQUIRE(run(razor_command("train " + float_config + " --work-dir " + (dir / "float") +
                            " --cfg-options train_dataloader.dataset.indices=256"),
              dir / "train.log") == 0);
  const std::string float_ckpt = dir / "float/epoch_1.pth";
  REQUIRE(run(razor_command("ptq " + ptq_config + " --checkpoint " + float_ckpt + " --work-dir " + (dir / "ptq")),
              dir / "ptq.log") == 0);
  const std::string exported = dir / "folded.pth";
  REQUIRE(run(razor_command("export " + ptq_config + " " + (dir / "ptq/model_ptq.pth") + " --format pytorch --out " +
                            exported),
              dir / "export.log") == 0);

  // It loads strictly into the plain float ResNet-8 and computes the float model's function.
  register_all();
  torch::manual_seed(5);
  const torch::Tensor input = torch::randn({8, 1, 28, 28});
  const auto float_cfg = std::make_shared<Config>(load_config(float_config));
  const torch::Tensor expected = logits_of(float_cfg, float_ckpt, input);
  const torch::Tensor folded = logits_of(float_cfg, exported, input);
  CHECK(((folded - expected).abs().max() / expected.abs().max()).item<double>() < 1e-5);

  // The fold is in the weights (they differ from the float ones), and each BN is y = x + bias.
  const StateDict original = CheckpointReader(float_ckpt).contents().model;
  const auto written = by_name(read_pytorch_state_dict(exported));
  const auto raw = std::find_if(original.begin(), original.end(),
                                [](const auto& item) { return item.first == "backbone.conv1.weight"; });
  REQUIRE(raw != original.end());
  CHECK_FALSE(torch::allclose(written.at("backbone.conv1.weight"), raw->second));
  CHECK(torch::equal(written.at("backbone.bn1.weight"), torch::ones({16})));
  CHECK(torch::equal(written.at("backbone.bn1.running_mean"), torch::zeros({16})));
  CHECK(torch::allclose(written.at("backbone.bn1.running_var"), torch::full({16}, 1.0 - 1e-5)));
  CHECK(written.count("backbone.conv1.weight_fake_quant.scale") == 0);
}

TEST_CASE("razor export --format pytorch of a distillation checkpoint writes the student alone",
          "[pytorch][interop][export][distill]") {
  TempDir dir;
  const std::string configs = std::string(RAZOR_SOURCE_DIR) + "/tests/data/configs/dist/";
  REQUIRE(run(razor_command("train " + configs + "resnet8_syncbn_fmnist.toml --work-dir " + (dir / "teacher") +
                            " --cfg-options sync_bn=false"),
              dir / "teacher.log") == 0);
  const std::string teacher = "model.teacher_ckpt=\"" + (dir / "teacher/epoch_1.pth") + "\"";
  const std::string kd = configs + "kd_resnet8_lenet_fmnist.toml";
  REQUIRE(run(razor_command("train " + kd + " --work-dir " + (dir / "kd") + " --cfg-options '" + teacher + "'"),
              dir / "kd.log") == 0);
  const std::string ckpt = dir / "kd/epoch_1.pth";
  const std::string overrides = " --cfg-options '" + teacher + "'";
  REQUIRE(run(razor_command("export " + kd + " " + ckpt + " --format pytorch --out " + (dir / "student.pth") + overrides),
              dir / "export.log") == 0);
  REQUIRE(run(razor_command("export " + kd + " " + ckpt + " --out " + (dir / "student_razor.pth") + overrides),
              dir / "export_razor.log") == 0);
  // The same tensors as razor's own student export: the architecture's, without its prefix.
  const auto written = read_pytorch_state_dict(dir / "student.pth");
  const StateDict expected = CheckpointReader(dir / "student_razor.pth").contents().model;
  REQUIRE(written.size() == expected.size());
  const auto named = by_name(written);
  for (const auto& [name, tensor] : expected) {
    INFO(name);
    REQUIRE(named.count(name));
    CHECK(torch::equal(named.at(name), tensor));
  }
  for (const auto& [name, tensor] : written) CHECK(name.rfind("architecture.", 0) != 0);
}

TEST_CASE("torchvision files through razor export --format onnx compute torchvision's function in onnxruntime",
          "[pytorch][interop][onnx]") {
  TempDir dir;
  for (const std::string name : {"resnet18", "mobilenet_v2"}) {
    INFO(name);
    const std::string config = dir / (name + ".toml");
    std::ofstream(config) << model_config(name);
    const std::string onnx = dir / (name + ".onnx");
    REQUIRE(run(razor_command("export " + config + " " + kData + "tv_" + name + ".pth --format onnx --out " + onnx +
                              " --verify --verify-images 32"),
                dir / "export.log") == 0);
    CHECK(read_file(dir / "export.log").find("Verified: the file computes what razor computed") != std::string::npos);
  }
}

TEST_CASE("Resuming from a torch.save file is refused: it holds weights only", "[pytorch][interop]") {
  TempDir dir;
  const std::string config = dir / "train.toml";
  std::ofstream(config) << model_config("resnet18")
                        << "[train_dataloader]\nbatch_size = 16\n"
                           "dataset = { type = \"Synthetic\", num_samples = 32, num_classes = 10, shape = [3, 32, 32] }\n"
                           "[train_cfg]\ntype = \"EpochBasedTrainLoop\"\nmax_epochs = 1\n"
                           "[optim_wrapper]\noptimizer = { type = \"SGD\", lr = 0.1 }\n";
  CHECK(run(razor_command("train " + config + " --work-dir " + (dir / "work") + " --resume " + kData + "tv_resnet18.pth"),
            dir / "train.log") == 2);
  CHECK(read_file(dir / "train.log").find("holds weights only; resuming needs a razor checkpoint") != std::string::npos);
}
