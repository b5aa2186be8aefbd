#include "apps/cli.h"

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <optional>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "apps/analyze.h"
#include "apps/bench.h"
#include "apps/export.h"
#include "apps/pytorch_export.h"
#include "apps/static_export.h"
#include "apps/onnx_export.h"
#include "apps/register_all.h"
#include "algorithms/nas/nas_algorithm.h"
#include "components/mutators/fix_subnet.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/dist.h"
#include "engine/error.h"
#include "engine/registry.h"
#include "engine/runner.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

std::shared_ptr<Config> load_with_overrides(const std::string& file, const std::vector<std::string>& overrides) {
  auto config = std::make_shared<Config>(load_config(file));
  apply_overrides(*config, overrides);
  return config;
}

int command_train(const std::string& file, const std::vector<std::string>& overrides, RunnerOptions options) {
  auto config = load_with_overrides(file, overrides);
  Runner runner(config, options);
  runner.train();
  if (dist::is_main()) std::cout << "Training finished; checkpoints and logs are in " << runner.work_dir() << "\n";
  return 0;
}

std::string format_figure(double value, int precision = 3) {
  std::ostringstream s;
  s << std::setprecision(precision) << value;
  return s.str();
}

/// One line per optimisation level of the onnxruntime check.
void print_runtime_report(const Json& report) {
  std::cout << "onnxruntime " << report.value("onnxruntime", "") << " on " << report.at("images") << " test images ("
            << report.at("threads") << " thread" << (report.at("threads") == 1 ? "" : "s") << "):\n";
  for (const char* level : {"disabled", "all"}) {
    const Json& r = report.at(level);
    std::cout << "  optimisation " << level << ": relative error " << format_figure(r.at("relative_error").get<double>());
    if (r.contains("within_one_step")) {
      std::cout << ", " << format_figure(100 * r.at("within_one_step").get<double>(), 5) << " % within one output step (max "
                << format_figure(r.at("max_steps").get<double>()) << " steps)";
    }
    std::cout << ", argmax agreement " << format_figure(100 * r.at("argmax_agreement").get<double>(), 5) << " %";
    if (r.contains("top1")) std::cout << ", top-1 " << format_figure(r.at("top1").get<double>(), 4);
    std::cout << ", " << format_figure(r.at("images_per_s").get<double>(), 4) << " images/s\n";
  }
  if (report.contains("razor_top1")) std::cout << "  razor's top-1 on the same images: " << format_figure(report.at("razor_top1").get<double>(), 4) << "\n";
}

int command_export_onnx(const std::shared_ptr<Config>& config, const std::string& checkpoint,
                        const OnnxExportOptions& options) {
  const OnnxExportResult result = export_onnx(config, checkpoint, options);
  const auto& s = result.summary;
  std::cout << "Wrote " << options.out << " (" << deploy::onnx_form_name(result.form) << ", opset " << s.opset << ": "
            << s.nodes << " nodes, " << s.initializers << " initialisers";
  if (result.form != deploy::OnnxForm::Float) {
    std::cout << ", " << s.weight_quantizers << " weight and " << s.activation_quantizers << " activation quantisers, "
              << s.folded_bn << " BatchNorms folded";
  }
  std::cout << "; " << s.bytes << " bytes)\n";
  if (!result.verification) return 0;
  const OnnxVerification& v = *result.verification;
  if (v.onnxruntime.is_null()) {
    std::cout << "onnxruntime has no kernel for OpenVINO's FakeQuantize: the file passed onnx's checker only\n";
  } else {
    print_runtime_report(v.onnxruntime);
  }
  if (v.opencv_relative_error) std::cout << "OpenCV DNN: relative error " << format_figure(*v.opencv_relative_error) << "\n";
  if (v.float_images_per_s) {
    int64_t left = 0;
    std::string kinds;
    for (const auto& [type, count] : v.float_nodes_left) {
      left += count;
      kinds += (kinds.empty() ? " (" : ", ") + std::to_string(count) + " " + type;
    }
    const double int8 = v.onnxruntime.at("all").at("images_per_s").get<double>();
    std::cout << "onnxruntime's optimised graph: " << left << " float compute nodes left" << (kinds.empty() ? "" : kinds + ")")
              << "; int8 runs at " << format_figure(int8 / *v.float_images_per_s, 3) << "x the float model's speed ("
              << format_figure(int8, 4) << " against " << format_figure(*v.float_images_per_s, 4) << " images/s, "
              << options.threads << " thread(s), batch " << v.onnxruntime.at("batch").get<int64_t>() << ")\n";
  }
  std::cout << "Check data in " << options.out << ".check/\n";
  if (v.failures.empty()) {
    std::cout << "Verified: the file computes what razor computed\n";
    return 0;
  }
  for (const auto& failure : v.failures) std::cerr << "razor: verification failed: " << failure << "\n";
  return 1;
}

int command_export(const std::string& file, const std::string& checkpoint, const std::vector<std::string>& overrides,
                   const std::string& out, const std::string& subnet, const std::string& format,
                   const std::string& names, OnnxExportOptions onnx_options, bool pruned, int64_t divisor) {
  auto config = load_with_overrides(file, overrides);
  RAZOR_CHECK(names == "razor" || format == "pytorch", "--names applies to --format pytorch");
  if (format == "onnx") {
    RAZOR_CHECK(subnet.empty(), "--subnet writes a checkpoint: export the subnet first, then its subnet.toml to ONNX");
    onnx_options.out = out;
    return command_export_onnx(config, checkpoint, onnx_options);
  }
  RAZOR_CHECK(!onnx_options.verify && onnx_options.form.empty(), "--form and --verify apply to --format onnx");
  if (format == "pytorch") {
    RAZOR_CHECK(subnet.empty(), "--subnet writes a razor checkpoint: export the subnet first, then its subnet.toml");
    ExportReport report = export_pytorch(config, checkpoint, out, names);
    std::cout << "Exported " << report.tensors << " tensors (" << names << " names) to " << report.out
              << ": torch.load reads it as a state dict\n";
    return 0;
  }
  RAZOR_CHECK(format == "checkpoint", "--format ", format, ": unknown (known: checkpoint, onnx, pytorch)");
  RAZOR_CHECK(pruned || divisor == 1, "--divisor applies to --pruned");
  RAZOR_CHECK(!(pruned && !subnet.empty()), "--pruned and --subnet are different exports: give one");
  if (pruned || !subnet.empty()) {
    StaticExportOptions options;
    options.subnet = subnet;
    options.divisor = divisor;
    const StaticExport report = export_static(config, checkpoint, out, options);
    const double params_share = 100.0 * static_cast<double>(report.static_params) / static_cast<double>(report.full_params);
    char line[1024];
    if (pruned) {
      std::snprintf(line, sizeof(line),
                    "Exported the pruned model to %s and %s: %.3f M of %.3f M FLOPs (%.2f%%), %.3f M of %.3f M params "
                    "(%.2f%%); its logits equal the pruned model's (max relative difference %.1e)\n",
                    report.config.c_str(), report.weights.c_str(), report.static_flops / 1e6, report.full_flops / 1e6,
                    100 * report.static_flops / report.full_flops, static_cast<double>(report.static_params) / 1e6,
                    static_cast<double>(report.full_params) / 1e6, params_share, report.max_relative_error);
    } else {
      std::snprintf(line, sizeof(line),
                    "Exported the subnet to %s and %s: %.3f M FLOPs, %.3f M params (%.2f%% of the supernet's %.3f M); "
                    "its logits equal the supernet's fixed to it (max relative difference %.1e)\n",
                    report.config.c_str(), report.weights.c_str(), report.static_flops / 1e6,
                    static_cast<double>(report.static_params) / 1e6, params_share,
                    static_cast<double>(report.full_params) / 1e6, report.max_relative_error);
    }
    std::cout << line;
    return 0;
  }
  ExportReport report = export_architecture(*config, checkpoint, out);
  std::cout << "Exported " << report.tensors << " tensors of the architecture to " << report.out << "\n";
  return 0;
}

/// Fixes the model of `runner` to the subnet in `file` (a NAS algorithm's supernet).
void fix_subnet(Runner& runner, const std::string& file) {
  auto* nas = dynamic_cast<NasAlgorithm*>(&runner.model());
  RAZOR_CHECK(nas, "--subnet ", file, ": the config's model is not a NAS supernet (model.type = \"SPOS\", ...)");
  nas->fix_subnet(read_subnet_file(file), file);
}

int command_test(const std::string& file, const std::string& checkpoint,
                 const std::vector<std::string>& overrides, RunnerOptions options, const std::string& out,
                 const std::string& subnet) {
  auto config = load_with_overrides(file, overrides);
  RAZOR_CHECK(fs::exists(checkpoint), "checkpoint not found: ", checkpoint);
  Runner runner(config, options);
  // The subnet first: a supernet checkpoint then loads into the chosen path (the other
  // candidates' weights are ignored), and so does a checkpoint of the subnet alone.
  if (!subnet.empty()) fix_subnet(runner, subnet);
  runner.load_weights(checkpoint, /*require_all=*/true);
  Metrics metrics = runner.test();
  Json result = {{"config", file}, {"checkpoint", checkpoint}, {"metrics", metrics}};
  if (!subnet.empty()) result["subnet"] = subnet;
  if (!dist::is_main()) return 0;  // every rank has the same (reduced) metrics
  for (const auto& item : metrics) std::cout << item.first << ": " << item.second << "\n";
  if (!out.empty()) {
    write_file_atomically(out, result.dump(2) + "\n");
    std::cout << "Results written to " << out << "\n";
  }
  return 0;
}

int command_search(const std::string& file, const std::string& checkpoint,
                   const std::vector<std::string>& overrides, RunnerOptions options) {
  auto config = load_with_overrides(file, overrides);
  RAZOR_CHECK(config->tree.contains("train_cfg") && config->tree["train_cfg"].is_object() &&
                  config->tree["train_cfg"].value("type", "").find("Search") != std::string::npos,
              file, ": train_cfg is not a search loop (type = \"EvolutionSearchLoop\")");
  Runner runner(config, options);
  if (!checkpoint.empty()) {
    RAZOR_CHECK(fs::exists(checkpoint), "checkpoint not found: ", checkpoint);
    runner.load_weights(checkpoint, /*require_all=*/true);
  }
  runner.train();
  if (dist::is_main()) std::cout << "Search finished; best_fix_subnet.yaml and the history are in " << runner.work_dir() << "\n";
  return 0;
}

int command_ptq(const std::string& file, const std::string& checkpoint, std::vector<std::string> overrides,
                RunnerOptions options) {
  // The float weights load into the architecture before the quantisers are placed.
  if (!checkpoint.empty()) {
    RAZOR_CHECK(fs::exists(checkpoint), "--checkpoint: not found: ", checkpoint);
    overrides.push_back("model.float_checkpoint=" + Json(checkpoint).dump());
  }
  auto config = load_with_overrides(file, overrides);
  RAZOR_CHECK(config->tree.contains("train_cfg") && config->tree["train_cfg"].is_object() &&
                  config->tree["train_cfg"].value("type", "") == "PTQLoop",
              file, ": train_cfg is not a PTQ loop (type = \"PTQLoop\")");
  Runner runner(config, options);
  runner.train();
  if (dist::is_main()) std::cout << "PTQ finished; model_ptq.pth and the logs are in " << runner.work_dir() << "\n";
  return 0;
}

int command_config_print(const std::string& file, const std::vector<std::string>& overrides) {
  auto config = load_with_overrides(file, overrides);
  std::cout << to_toml(config->tree);
  return 0;
}

int command_list(const std::string& registry) {
  auto& index = RegistryIndex::instance();
  const auto names = registry.empty() ? index.registry_names() : std::vector<std::string>{registry};
  for (const auto& name : names) {
    std::cout << name << ":\n";
    for (const auto& type : index.names_of(name)) std::cout << "  " << type << "\n";
  }
  return 0;
}

/// This process's rank as the launcher says (0 when it cannot tell).
int launch_rank(const std::string& launcher) {
  try {
    return dist::is_initialized() ? dist::rank() : dist::detect_launch(launcher).rank;
  } catch (const Error&) {
    return 0;
  }
}

/// "razor: error: ", with the rank in a multi-process run.
std::string error_prefix(const std::string& launcher) {
  int world = 1;
  try {
    world = dist::is_initialized() ? dist::world_size() : dist::detect_launch(launcher).world_size;
  } catch (const Error&) {
  }
  return world > 1 ? "razor: error (rank " + std::to_string(launch_rank(launcher)) + "): " : "razor: error: ";
}

/// A successful multi-process command ends together: rank 0 serves the store until all are done.
void finish_ranks() {
  dist::barrier();
  dist::shutdown();
}

}  // namespace

int run_cli(const std::vector<std::string>& args) {
  register_all();
  CLI::App app{"razor: a model-compression engine (train, test, search, prune, distil, quantise)"};
  app.set_version_flag("--version", std::string("razor ") + kVersion + " (LibTorch " + TORCH_VERSION + ")");
  app.require_subcommand(1);

  std::string config_file, checkpoint, out, work_dir, device, registry;
  std::vector<std::string> overrides;
  std::string resume;
  std::string launcher = "auto";
  int64_t seed = 0;

  auto* train = app.add_subcommand("train", "Train a model from a config");
  train->add_option("config", config_file, "Config file (TOML)")->required();
  train->add_option("--work-dir", work_dir, "Directory for checkpoints and logs (default: work_dirs/<config name>)");
  auto* resume_option = train->add_option("--resume", resume,
                                          "Resume from CKPT, or with no value from the latest checkpoint in the work dir")
                            ->expected(0, 1);
  train->add_option("--cfg-options", overrides, "Override config keys: a.b.c=VALUE (VALUE as TOML)")
      ->expected(1, -1);
  auto* train_device = train->add_option("--device", device, "auto, cpu, cuda or cuda:N (overrides the config)");
  auto* train_seed = train->add_option("--seed", seed, "Random seed (overrides the config)");
  const char* launcher_help = "Where rank and world size come from: auto (detected), none, mpi, env";
  train->add_option("--launcher", launcher, launcher_help);

  auto* test = app.add_subcommand("test", "Evaluate a checkpoint on the test set");
  test->add_option("config", config_file, "Config file (TOML)")->required();
  test->add_option("checkpoint", checkpoint, "Checkpoint file")->required();
  test->add_option("--cfg-options", overrides, "Override config keys: a.b.c=VALUE")->expected(1, -1);
  test->add_option("--out", out, "Write the metrics to this JSON file");
  test->add_option("--work-dir", work_dir, "Directory for logs");
  auto* test_device = test->add_option("--device", device, "auto, cpu, cuda or cuda:N");
  test->add_option("--launcher", launcher, launcher_help);
  std::string subnet;
  test->add_option("--subnet", subnet, "Fix a NAS supernet to this subnet YAML first");

  auto* search = app.add_subcommand("search", "Search a trained supernet for the best subnet (train_cfg: EvolutionSearchLoop)");
  search->add_option("config", config_file, "Search config file (TOML)")->required();
  search->add_option("--checkpoint", checkpoint, "The trained supernet's checkpoint");
  search->add_option("--work-dir", work_dir, "Directory for the search checkpoints, history and results");
  auto* search_resume = search->add_option("--resume", resume,
                                           "Resume from a search_epoch_*.json, or with no value from the latest in the work dir")
                            ->expected(0, 1);
  search->add_option("--cfg-options", overrides, "Override config keys: a.b.c=VALUE")->expected(1, -1);
  search->add_option("--device", device, "auto, cpu, cuda or cuda:N");
  search->add_option("--launcher", launcher, launcher_help);

  auto* ptq = app.add_subcommand("ptq", "Post-training quantisation: calibrate a float model's quantisers (train_cfg: PTQLoop)");
  ptq->add_option("config", config_file, "PTQ config file (TOML)")->required();
  ptq->add_option("--checkpoint", checkpoint, "The float model's checkpoint (sets model.float_checkpoint)");
  ptq->add_option("--work-dir", work_dir, "Directory for model_ptq.pth and the logs");
  ptq->add_option("--cfg-options", overrides, "Override config keys: a.b.c=VALUE")->expected(1, -1);
  ptq->add_option("--device", device, "auto, cpu, cuda or cuda:N");
  ptq->add_option("--launcher", launcher, launcher_help);

  auto* export_command = app.add_subcommand("export", "Write a model as a plain checkpoint (an algorithm's architecture) or as ONNX (--format onnx)");
  export_command->add_option("config", config_file, "The config the checkpoint was trained with")->required();
  export_command->add_option("checkpoint", checkpoint, "The algorithm's checkpoint")->required();
  export_command->add_option("--out", out, "The file to write (with --subnet or --pruned: a directory)")->required();
  std::string export_subnet_file;
  export_command->add_option("--subnet", export_subnet_file,
                             "A NAS supernet fixed to this subnet YAML as a static model: DIR/subnet.toml and DIR/subnet.pth");
  export_command->add_option("--cfg-options", overrides, "Override config keys: a.b.c=VALUE")->expected(1, -1);
  bool export_pruned_flag = false;
  export_command->add_flag("--pruned", export_pruned_flag,
                           "A pruning algorithm's model cut to its kept channels: DIR/pruned.toml and DIR/pruned.pth");
  int64_t export_divisor = 1;
  export_command->add_option("--divisor", export_divisor,
                             "With --pruned: round every unit's width up to a multiple of N, the extra channels read "
                             "by zero weights (the same logits, at widths fast kernels prefer)");
  std::string export_format = "checkpoint";
  OnnxExportOptions onnx_options;
  std::string export_names = "razor";
  export_command->add_option("--format", export_format,
                             "checkpoint (default), onnx, or pytorch (a state dict for Python's torch.load)");
  export_command->add_option("--names", export_names,
                             "With --format pytorch: the tensor names, razor (default), torchvision or mmcls");
  export_command->add_option("--form", onnx_options.form,
                             "ONNX form: float, qdq (opset 13) or fakequantize (OpenVINO, opset 11); default: qdq for a "
                             "quantised model, else float");
  export_command->add_flag("--verify", onnx_options.verify,
                           "Run the ONNX file in onnxruntime (and OpenCV DNN for float) on test images and compare");
  export_command->add_option("--verify-images", onnx_options.verify_images, "Test images the check runs (default 256)");
  export_command->add_option("--threads", onnx_options.threads, "onnxruntime's threads in the check (default 1)");
  export_command->add_option("--batch", onnx_options.batch, "Images per onnxruntime run in the check (default 250)");

  auto* config = app.add_subcommand("config", "Inspect configs");
  config->require_subcommand(1);
  auto* print = config->add_subcommand("print", "Print the resolved config as TOML");
  print->add_option("config", config_file, "Config file (TOML)")->required();
  print->add_option("--cfg-options", overrides, "Override config keys: a.b.c=VALUE")->expected(1, -1);

  auto* list = app.add_subcommand("list", "List registered types (all registries, or one)");
  list->add_option("registry", registry, "Registry name, e.g. models, datasets, hooks");

  BenchOptions bench_options;
  auto* bench = app.add_subcommand("bench", "Run benchmark workloads; one JSON line each");
  bench->add_option("--workloads", bench_options.workloads, "Comma-separated workload ids (W1, ...)")
      ->delimiter(',');
  bench->add_option("--repeats", bench_options.repeats, "Repeats per workload (the median is reported)");
  bench->add_option("--device", bench_options.device, "cpu, cuda, auto");
  bench->add_option("--configs", bench_options.config_dir, "Directory of the workload configs");
  bench->add_flag("--full", bench_options.full, "Also measure accuracy (full passes over the data)");
  bench->add_option("--threads", bench_options.threads, "Intra-op threads per process (default: the workload's)");
  bench->add_option("--profile", bench_options.profile,
                    "Directory for a profiler trace of each workload's first timed repeat (<workload>.trace.json)");

  AnalyzeOptions analyze_options;
  std::string analyze_device;
  auto* analyze_command =
      app.add_subcommand("analyze", "Count a config's FLOPs and params, per op and in total");
  analyze_command->add_option("config", analyze_options.config_file, "Config file (TOML)")
      ->required();
  analyze_command->add_option("checkpoint", analyze_options.checkpoint,
                              "Weights to load first (optional)");
  analyze_command
      ->add_option("--input-shape", analyze_options.input_shape,
                   "N C H W (default: the config's estimator_cfg, else one dataset sample)")
      ->expected(4);
  analyze_command
      ->add_option("--cfg-options", analyze_options.overrides, "Override config keys: a.b.c=VALUE")
      ->expected(1, -1);
  analyze_command->add_option("--device", analyze_device, "auto, cpu, cuda or cuda:N");
  analyze_command->add_option("--subnet", analyze_options.subnet,
                              "Count a NAS supernet fixed to this subnet YAML");
  analyze_command->add_flag("--channel-units", analyze_options.channel_units,
                            "Print the channel units (pruning) instead of FLOPs and params");
  analyze_command->add_option("-o,--output", analyze_options.units_file,
                              "With --channel-units: write the units as MMRazor's get_channel_units.py JSON");
  analyze_command->add_flag("-c,--with-channel", analyze_options.with_channels,
                            "With -o: each unit's channels (input_related, output_related)");
  analyze_command->add_flag("-i,--with-init-args", analyze_options.with_init_args,
                            "With -o: each unit's init args (num_channels, choice_mode, ...)");
  analyze_command->add_flag("--choice", analyze_options.choice_only,
                            "With -o: only the choice template {unit: 1.0} (-c and -i ignored)");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  RunnerOptions options;
  options.launcher = launcher;
  if (!work_dir.empty()) options.work_dir = work_dir;
  if (!device.empty()) options.device = device;
  try {
    if (*train) {
      if (resume_option->count() > 0) options.resume = resume.empty() ? "auto" : resume;
      if (train_seed->count() > 0) options.seed = seed;
      (void)train_device;
      const int code = command_train(config_file, overrides, options);
      finish_ranks();
      return code;
    }
    if (*test) {
      (void)test_device;
      const int code = command_test(config_file, checkpoint, overrides, options, out, subnet);
      finish_ranks();
      return code;
    }
    if (*search) {
      if (search_resume->count() > 0) options.resume = resume.empty() ? "auto" : resume;
      const int code = command_search(config_file, checkpoint, overrides, options);
      finish_ranks();
      return code;
    }
    if (*ptq) {
      const int code = command_ptq(config_file, checkpoint, overrides, options);
      finish_ranks();
      return code;
    }
    if (*export_command) {
      return command_export(config_file, checkpoint, overrides, out, export_subnet_file, export_format, export_names,
                            onnx_options, export_pruned_flag, export_divisor);
    }
    if (*print) return command_config_print(config_file, overrides);
    if (*analyze_command) {
      if (!analyze_device.empty()) analyze_options.device = analyze_device;
      return run_analyze(analyze_options);
    }
    if (*list) return command_list(registry);
    if (*bench) {
      const int code = run_bench(bench_options);
      finish_ranks();
      return code;
    }
  } catch (const Error& e) {
    // Every rank reads the same config: a config error is printed once, by rank 0.
    const bool config = e.kind() == Error::Kind::Config;
    if (!config || launch_rank(launcher) == 0) std::cerr << error_prefix(launcher) << e.what() << "\n";
    dist::shutdown();
    return config ? 2 : 1;
  } catch (const c10::Error& e) {
    std::cerr << error_prefix(launcher) << e.what_without_backtrace() << "\n";
    dist::shutdown();
    return 1;
  } catch (const std::exception& e) {
    std::cerr << error_prefix(launcher) << e.what() << "\n";
    dist::shutdown();
    return 1;
  }
  return 2;
}

}  // namespace razor
