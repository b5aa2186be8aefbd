// Pruning end to end through the razor executable: a tiny trained ResNet-8 pruned by L1 to
// half of every unit's channels (a quarter of its FLOPs) and finetuned one epoch, within 8
// points of it (ItePruneAlgorithm); its checkpoint tested
// again gives the same figures (the kept channels are in it); `razor export --pruned`
// writes a smaller static model that tests the same, counts the FLOPs the pruned model
// counted, and exports to ONNX; ItePruneValLoop's fix_subnet files rebuild it through a
// sub_model config; bad input names the key. GroupFisher prunes a channel an iteration; a
// slimmable network trains three widths at once and exports any one of them.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/datasets/temp_dir.h"
#include "tests/process.h"

using namespace razor::test;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(RAZOR_SOURCE_DIR) + "/tests/data/configs/";

/// "FLOPs: X M" of `razor analyze`'s output.
double analyzed_flops(const std::string& text) { return metric(text, "FLOPs"); }

/// Trains the tiny float ResNet-8 into `dir`/float; returns its top-1.
double train_float(const TempDir& dir) {
  const std::string log = dir / "float.log";
  REQUIRE(run(razor_command("train " + kData + "quantization/tiny_float_resnet8.toml --work-dir " + (dir / "float")),
              log) == 0);
  return metric(read_file(log), "accuracy/top1");
}

/// --cfg-options loading that model as the architecture to prune.
std::string pretrained_option(const TempDir& dir) {
  return " --cfg-options 'model.architecture.init_cfg.type=\"Pretrained\"' "
         "'model.architecture.init_cfg.checkpoint=\"" + (dir / "float/epoch_1.pth") + "\"'";
}

}  // namespace

TEST_CASE("razor train/test/export --pruned: L1 pruning to half the channels, exported smaller", "[pruning]") {
  TempDir dir;
  const double float_top1 = train_float(dir);
  REQUIRE(float_top1 > 60);

  const std::string config = kData + "pruning/tiny_l1_resnet8.toml";
  const std::string pretrained = pretrained_option(dir);
  const std::string work = dir / "pruned";
  const std::string log = work + ".log";
  REQUIRE(run(razor_command("train " + config + " --work-dir " + work + pretrained), log) == 0);
  const std::string text = read_file(log);
  CHECK(text.find("ItePruneAlgorithm: prune 1 of 1 at iteration 0") != std::string::npos);
  CHECK(text.find("backbone.layer2.0.conv1_(0, 32)_32: 16 of 32") != std::string::npos);
  // Half of every unit's channels: about a quarter of the FLOPs (the stem reads 1 channel).
  const double flops_ratio = metric(text, "flops_ratio");
  CHECK(flops_ratio > 0.2);
  CHECK(flops_ratio < 0.32);
  const double pruned_top1 = metric(text, "accuracy/top1");
  CHECK(pruned_top1 > float_top1 - 8);

  // ItePruneValLoop wrote the pruned model as validation measured it: a sub_model config
  // reading its fix_subnet.json tests fix_subnet_weight.pth the same.
  REQUIRE(fs::exists(work + "/fix_subnet.json"));
  REQUIRE(fs::exists(work + "/fix_subnet_weight.pth"));
  const std::string deploy = dir / "deploy.toml";
  std::ofstream(deploy) << ("_base_ = [\"" + std::string(RAZOR_SOURCE_DIR) + "/configs/_base_/datasets/fmnist.toml\", \"" +
                         RAZOR_SOURCE_DIR + "/configs/_base_/default_runtime.toml\"]\n"
                         "num_threads = 1\n"
                         "[test_dataloader.dataset]\nindices = 512\n"
                         "[model]\ntype = \"sub_model\"\nfix_subnet = \"" + work + "/fix_subnet.json\"\n"
                         "[model.cfg]\ntype = \"ImageClassifier\"\n"
                         "backbone = { type = \"ResNet_CIFAR\", depth = 8, in_channels = 1 }\n"
                         "neck = { type = \"GlobalAveragePooling\" }\n"
                         "head = { type = \"LinearClsHead\", num_classes = 10, in_channels = 64 }\n");

  const std::string deploy_log = dir / "deploy.log";
  REQUIRE(run(razor_command("test " + deploy + " " + work + "/fix_subnet_weight.pth --work-dir " + (dir / "deploy")),
              deploy_log) == 0);
  CHECK(metric(read_file(deploy_log), "accuracy/top1") == Approx(pruned_top1).margin(1e-3));

  // The checkpoint holds the kept channels: testing it measures what validation measured.
  const std::string ckpt = work + "/epoch_1.pth";
  const std::string test_log = work + "_test.log";
  REQUIRE(run(razor_command("test " + config + " " + ckpt + " --work-dir " + work + "_test" + pretrained), test_log) == 0);
  CHECK(metric(read_file(test_log), "accuracy/top1") == Approx(pruned_top1).margin(1e-3));

  // Exported physically smaller: the same accuracy from the static model.
  const std::string out = dir / "static";
  const std::string export_log = dir / "export.log";
  REQUIRE(run(razor_command("export " + config + " " + ckpt + " --pruned --out " + out + pretrained), export_log) == 0);
  const std::string exported = read_file(export_log);
  CHECK(exported.find("its logits equal the pruned model's") != std::string::npos);
  REQUIRE(fs::exists(out + "/pruned.toml"));
  REQUIRE(fs::exists(out + "/pruned.pth"));
  CHECK(read_file(out + "/pruned.toml").find("sub_model") != std::string::npos);
  const std::string static_log = dir / "static_test.log";
  REQUIRE(run(razor_command("test " + out + "/pruned.toml " + out + "/pruned.pth --work-dir " + (dir / "static_test")),
              static_log) == 0);
  CHECK(metric(read_file(static_log), "accuracy/top1") == Approx(pruned_top1).margin(1e-3));

  // Its FLOPs are what the pruned model counted.
  const std::string full_log = dir / "full_analyze.log", static_analyze = dir / "static_analyze.log";
  REQUIRE(run(razor_command("analyze " + kData + "quantization/tiny_float_resnet8.toml"), full_log) == 0);
  REQUIRE(run(razor_command("analyze " + out + "/pruned.toml"), static_analyze) == 0);
  const double full_flops = analyzed_flops(read_file(full_log)), static_flops = analyzed_flops(read_file(static_analyze));
  REQUIRE(full_flops > 0);
  CHECK(static_flops / full_flops == Approx(flops_ratio).margin(2e-3));

  // The static model exports to ONNX and runs there as razor runs it.
  const std::string onnx_log = dir / "onnx.log";
  CHECK(run(razor_command("export " + out + "/pruned.toml " + out + "/pruned.pth --format onnx --verify --out " +
                          (dir / "pruned.onnx")),
            onnx_log) == 0);

  // --divisor 16: widths rounded up to multiples of 16 with zero-weight channels, the same
  // accuracy from a larger model.
  const std::string padded = dir / "padded";
  REQUIRE(run(razor_command("export " + config + " " + ckpt + " --pruned --divisor 16 --out " + padded + pretrained),
              export_log) == 0);
  CHECK(read_file(export_log).find("its logits equal the pruned model's") != std::string::npos);
  const std::string padded_toml = read_file(padded + "/pruned.toml");
  CHECK(padded_toml.find("\"backbone.layer2.0.conv1_(0, 32)_32\" = 16") != std::string::npos);
  CHECK(padded_toml.find("\"backbone.conv1_(0, 16)_16\" = 16") != std::string::npos);
  REQUIRE(run(razor_command("test " + padded + "/pruned.toml " + padded + "/pruned.pth --work-dir " +
                            (dir / "padded_test")),
              static_log) == 0);
  CHECK(metric(read_file(static_log), "accuracy/top1") == Approx(pruned_top1).margin(1e-3));
  CHECK(run(razor_command("export " + config + " " + ckpt + " --divisor 8 --out " + (dir / "x.pth") + pretrained),
            dir / "divisor.log") == 2);

  // Bad input: a unit the model does not have, a ratio out of range, an integer in ratio mode.
  const std::string bad_log = dir / "bad.log";
  CHECK(run(razor_command("train " + config + " --work-dir " + (dir / "bad") +
                          " --cfg-options 'model.target_pruning_ratio={\"backbone.conv9_(0, 16)_16\" = 0.5}'"),
            bad_log) == 2);
  CHECK(read_file(bad_log).find("no channel unit \"backbone.conv9_(0, 16)_16\"") != std::string::npos);
  CHECK(run(razor_command("train " + config + " --work-dir " + (dir / "bad") +
                          " --cfg-options 'model.target_pruning_ratio={\"backbone.conv1_(0, 16)_16\" = 1.5}'"),
            bad_log) == 2);
  CHECK(read_file(bad_log).find("(0, 1]") != std::string::npos);
  CHECK(run(razor_command("train " + config + " --work-dir " + (dir / "bad") +
                          " --cfg-options 'model.target_pruning_ratio={\"backbone.conv1_(0, 16)_16\" = 8}'"),
            bad_log) == 2);
  CHECK(read_file(bad_log).find("an integer") != std::string::npos);
}

TEST_CASE("razor train with GroupFisherAlgorithm: one channel an iteration, checkpoints at FLOPs thresholds",
          "[pruning]") {
  TempDir dir;
  const double float_top1 = train_float(dir);
  const std::string config = kData + "pruning/tiny_group_fisher_resnet8.toml";
  const std::string pretrained = pretrained_option(dir);
  const std::string work = dir / "fisher";
  const std::string log = work + ".log";
  REQUIRE(run(razor_command("train " + config + " --work-dir " + work + pretrained), log) == 0);
  const std::string text = read_file(log);
  INFO(text);
  // Saved as the FLOPs fell below 90% and 80%, then the pruning stopped; the run went on.
  REQUIRE(fs::exists(work + "/flops_0.90.pth"));
  REQUIRE(fs::exists(work + "/flops_0.80.pth"));
  CHECK(text.find("the pruning stops") != std::string::npos);
  CHECK(text.find("PruningStructureHook: channels kept:") != std::string::npos);
  const double flops_ratio = metric(text, "flops_ratio");
  CHECK(flops_ratio < 0.8);
  CHECK(flops_ratio > 0.5);
  CHECK(metric(text, "accuracy/top1") > float_top1 - 10);

  // The threshold checkpoint is a pruned model: exported smaller, it tests as the pruner.
  const std::string out = dir / "static";
  const std::string export_log = dir / "export.log";
  REQUIRE(run(razor_command("export " + config + " " + work + "/flops_0.80.pth --pruned --out " + out + pretrained),
              export_log) == 0);
  CHECK(read_file(export_log).find("its logits equal the pruned model's") != std::string::npos);
  const std::string pruner_log = dir / "pruner_test.log", static_log = dir / "static_test.log";
  REQUIRE(run(razor_command("test " + config + " " + work + "/flops_0.80.pth --work-dir " + (dir / "t1") + pretrained),
              pruner_log) == 0);
  REQUIRE(run(razor_command("test " + out + "/pruned.toml " + out + "/pruned.pth --work-dir " + (dir / "t2")),
              static_log) == 0);
  CHECK(metric(read_file(static_log), "accuracy/top1") ==
        Approx(metric(read_file(pruner_log), "accuracy/top1")).margin(1e-3));
}

TEST_CASE("razor train/test/export with SlimmableNetwork: three widths trained at once, each exported alone",
          "[pruning]") {
  TempDir dir;
  const double float_top1 = train_float(dir);
  const std::string config = kData + "pruning/tiny_slimmable_resnet8.toml";
  const std::string pretrained = pretrained_option(dir);
  const std::string work = dir / "slim";
  const std::string log = work + ".log";
  REQUIRE(run(razor_command("train " + config + " --work-dir " + work + pretrained), log) == 0);
  const std::string text = read_file(log);
  INFO(text);
  // Every subnet trained each step and validated on its own; the narrow ones cost less.
  for (const char* key : {"subnet_0.loss", "subnet_1.loss", "subnet_2.loss"}) CHECK(metric(text, key) > 0);
  const double full = metric(text, "subnet_2.accuracy/top1"), quarter = metric(text, "subnet_0.accuracy/top1");
  CHECK(full > float_top1 - 8);
  CHECK(quarter > 50);
  CHECK(metric(text, "subnet_2.flops_ratio") == Approx(1.0));
  const double quarter_flops = metric(text, "subnet_0.flops_ratio");
  CHECK(quarter_flops > 0.05);
  CHECK(quarter_flops < 0.12);

  // The checkpoint tests the same per subnet (the per-width BatchNorms are in it).
  const std::string ckpt = work + "/epoch_1.pth";
  const std::string test_log = dir / "test.log";
  REQUIRE(run(razor_command("test " + config + " " + ckpt + " --work-dir " + (dir / "t0") + pretrained), test_log) == 0);
  const std::string tested = read_file(test_log);
  CHECK(metric(tested, "subnet_0.accuracy/top1") == Approx(quarter).margin(1e-3));
  CHECK(metric(tested, "subnet_2.accuracy/top1") == Approx(full).margin(1e-3));
  // SubnetTestLoop, the NAS loops' evaluation, reads the same mutator: its max and min
  // subnets are the widest and narrowest candidates.
  const std::string subnet_log = dir / "subnet_test.log";
  REQUIRE(run(razor_command("test " + config + " " + ckpt + " --work-dir " + (dir / "ts") + pretrained +
                            " 'test_cfg={type=\"SubnetTestLoop\", calibrate_sample_num=0, estimate_resources=false}'"),
              subnet_log) == 0);
  const std::string subnets = read_file(subnet_log);
  CHECK(metric(subnets, "max_subnet.accuracy/top1") == Approx(full).margin(1e-3));
  CHECK(metric(subnets, "min_subnet.accuracy/top1") == Approx(quarter).margin(1e-3));

  // One subnet exported alone: a static model with that width's BatchNorms, testing as it.
  const std::string export_log = dir / "export.log";
  CHECK(run(razor_command("export " + config + " " + ckpt + " --pruned --out " + (dir / "none") + pretrained),
            export_log) == 2);
  CHECK(read_file(export_log).find("deploy_index") != std::string::npos);
  const std::string out = dir / "static";
  REQUIRE(run(razor_command("export " + config + " " + ckpt + " --pruned --out " + out + pretrained +
                            " model.deploy_index=0"),
              export_log) == 0);
  CHECK(read_file(export_log).find("its logits equal the pruned model's") != std::string::npos);
  CHECK(read_file(out + "/pruned.toml").find("candidate_bn") == std::string::npos);
  const std::string static_log = dir / "static_test.log";
  REQUIRE(run(razor_command("test " + out + "/pruned.toml " + out + "/pruned.pth --work-dir " + (dir / "t1")),
              static_log) == 0);
  CHECK(metric(read_file(static_log), "accuracy/top1") == Approx(quarter).margin(1e-3));

  // A subnet index out of range, a width that is not a candidate.
  const std::string bad_log = dir / "bad.log";
  CHECK(run(razor_command("test " + config + " " + ckpt + " --work-dir " + (dir / "bad") + pretrained +
                          " model.deploy_index=3"),
            bad_log) == 2);
  CHECK(read_file(bad_log).find("deploy_index must be -1") != std::string::npos);
}
