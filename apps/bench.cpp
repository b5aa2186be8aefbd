#include "apps/bench.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>

#include <spdlog/spdlog.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include "algorithms/nas/evolution_search_loop.h"
#include "algorithms/nas/nas_algorithm.h"
#include "algorithms/pruning/ite_prune_algorithm.h"
#include "apps/onnx_export.h"
#include "components/estimators/resource_estimator.h"
#include "components/export/onnx_writer.h"
#include "components/nn/dataflow.h"
#include "components/nn/module.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/dist.h"
#include "engine/error.h"
#include "engine/runner.h"
#include "engine/strings.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

/// LibTorch's profiler over a timed section when --profile asked for it (first repeat, rank
/// 0); the trace is written when the guard goes out of scope.
class ProfileScope {
 public:
  ProfileScope(const BenchOptions& options, const std::string& workload, int repeat) {
    if (options.profile.empty() || repeat != 0 || !dist::is_main()) return;
    fs::create_directories(options.profile);
    const std::string file = (fs::path(options.profile) / (workload + ".trace.json")).string();
    recorder_ = std::make_unique<torch::autograd::profiler::RecordProfile>(file);
    spdlog::info("bench: profiling {} into {}", workload, file);
  }

 private:
  std::unique_ptr<torch::autograd::profiler::RecordProfile> recorder_;
};

std::shared_ptr<Config> bench_config(const BenchOptions& options, const std::string& file,
                                     const std::string& work_dir) {
  const std::string path = (fs::path(options.config_dir) / file).string();
  auto config = std::make_shared<Config>(load_config(path));
  apply_overrides(*config, {"device=\"" + options.device + "\"", "work_dir=\"" + work_dir + "\""});
  if (options.threads > 0) apply_overrides(*config, {"num_threads=" + std::to_string(options.threads)});
  return config;
}

/// Train images per second of the runner's train_step over `timed` iterations after
/// `warmup`, with batches from the runner's own loader. Under mpirun every rank trains its
/// shard data-parallel and the figure is global: images of all ranks per second. With
/// --profile the timed iterations of repeat 0 are recorded.
double train_throughput(Runner& runner, int64_t warmup, int64_t timed, const BenchOptions& options,
                        const std::string& workload, int repeat) {
  Model& model = runner.model();
  OptimWrapper& optim = runner.optim_wrapper();
  DataLoader& loader = runner.train_dataloader();
  runner.setup_data_parallel();
  RAZOR_CHECK(loader.size() >= warmup + timed, "bench: the train loader has only ", loader.size(),
              " batches, fewer than ", warmup + timed);
  model.train();
  loader.set_epoch(0);
  loader.start();
  auto step = [&] {
    auto batch = loader.next();
    RAZOR_ASSERT(batch.has_value());
    if (DataParallel* parallel = runner.data_parallel()) parallel->before_train_step();
    model.train_step(runner.to_device(*batch), optim);
    return batch->size() * dist::world_size();
  };
  for (int64_t i = 0; i < warmup; ++i) step();
  synchronize(runner.device());
  dist::barrier();
  const auto start = std::chrono::steady_clock::now();
  int64_t images = 0;
  {
    const ProfileScope scope(options, workload, repeat);
    for (int64_t i = 0; i < timed; ++i) images += step();
    synchronize(runner.device());
  }
  dist::barrier();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(images) / seconds;
}

/// The median train throughput over repeats, as a JSON line for `workload`.
Json throughput_line(const BenchOptions& options, const std::string& workload, const std::string& file) {
  const std::string work_dir = (fs::temp_directory_path() / ("razor_bench_" + workload)).string();
  std::vector<double> values;
  std::string device;
  int threads = 0;
  for (int r = 0; r < options.repeats; ++r) {
    RunnerOptions runner_options;
    runner_options.write_files = false;
    runner_options.log_level = "error";
    Runner runner(bench_config(options, file, work_dir), runner_options);
    values.push_back(train_throughput(runner, 10, 100, options, workload, r));
    device = runner.device().str();
    threads = torch::get_num_threads();
  }
  return {{"workload", workload}, {"metric", "train_images_per_s"}, {"value", median(values)},
          {"device", device}, {"threads", threads}, {"ranks", dist::world_size()}, {"repeats", values}};
}

Json bench_w1(const BenchOptions& options) {
  const std::string work_dir = (fs::temp_directory_path() / "razor_bench_W1").string();
  Json line = throughput_line(options, "W1", "w1_train.toml");
  if (options.full) {
    RunnerOptions runner_options;
    runner_options.write_files = false;
    runner_options.log_level = "error";
    auto config = bench_config(options, "w1_train.toml", work_dir);
    apply_overrides(*config, {"train_cfg.max_epochs=1", "default_hooks.checkpoint=false"});
    Runner runner(config, runner_options);
    const auto start = std::chrono::steady_clock::now();
    runner.train();
    line["epoch_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    line["top1_after_1_epoch"] = runner.test().at("accuracy/top1");
  }
  return line;
}

/// W4: candidates scored per second (BN re-estimation + top-1), over 20 random candidates
/// after 2 warm-up ones, with the search loop's own scoring. Each repeat also times the same
/// candidates with the stage-output cache off ("without_prefix_cache"), and says which
/// share of the stages the cache served ("stages_reused").
Json bench_w4(const BenchOptions& options) {
  const std::string work_dir = (fs::temp_directory_path() / "razor_bench_W4").string();
  std::vector<double> values, uncached;
  double reused_share = 0;
  std::string device;
  int threads = 0;
  auto candidates_per_s = [&](bool cached, int r) {
    RunnerOptions runner_options;
    runner_options.write_files = false;
    runner_options.log_level = "error";
    auto config = bench_config(options, "w4_search.toml", work_dir);
    if (!cached) apply_overrides(*config, {"train_cfg.prefix_cache_mb=0"});
    Runner runner(config, runner_options);
    auto* loop = dynamic_cast<EvolutionSearchLoop*>(&runner.train_loop());
    auto* nas = dynamic_cast<NasAlgorithm*>(&runner.model());
    RAZOR_ASSERT(loop && nas);
    std::vector<Json> warm_up, candidates;
    for (int i = 0; i < 2; ++i) warm_up.push_back(nas->mutator().sample_choices("random"));
    for (int i = 0; i < 20; ++i) candidates.push_back(nas->mutator().sample_choices("random"));
    loop->score(warm_up);
    synchronize(runner.device());
    const SubnetPrefixCache* cache = loop->prefix_cache();
    const int64_t reused_before = cache ? cache->reused_stages() : 0;
    const int64_t computed_before = cache ? cache->computed_stages() : 0;
    const auto start = std::chrono::steady_clock::now();
    {
      const ProfileScope scope(options, cached ? "W4" : "W4_without_prefix_cache", r);
      loop->score(candidates);
      synchronize(runner.device());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (cache) {
      const auto reused = static_cast<double>(cache->reused_stages() - reused_before);
      reused_share = reused / (reused + static_cast<double>(cache->computed_stages() - computed_before));
    }
    device = runner.device().str();
    threads = torch::get_num_threads();
    return 20.0 / seconds;
  };
  for (int r = 0; r < options.repeats; ++r) {
    values.push_back(candidates_per_s(true, r));
    uncached.push_back(candidates_per_s(false, r));
  }
  return {{"workload", "W4"}, {"metric", "candidates_per_s"}, {"value", median(values)}, {"device", device},
          {"threads", threads}, {"ranks", dist::world_size()}, {"repeats", values},
          {"without_prefix_cache", median(uncached)}, {"without_prefix_cache_repeats", uncached},
          {"stages_reused", reused_share}};
}

/// W5: seconds of PTQ calibration (32 batches of 128) plus one quantised evaluation of the
/// 10,000 test images, loaders and model built beforehand. With --full the float model is
/// first trained for one epoch (W1's recipe) and the top-1 drop is reported.
Json bench_w5(const BenchOptions& options) {
  const std::string work_dir = (fs::temp_directory_path() / "razor_bench_W5").string();
  RunnerOptions runner_options;
  runner_options.write_files = false;
  runner_options.log_level = "error";
  Json line = {{"workload", "W5"}, {"metric", "ptq_seconds"}};
  std::string float_checkpoint;
  if (options.full) {
    auto config = bench_config(options, "w1_train.toml", work_dir);
    apply_overrides(*config, {"train_cfg.max_epochs=1", "default_hooks.checkpoint=false"});
    Runner runner(config, runner_options);
    runner.train();
    line["float_top1"] = runner.test().at("accuracy/top1");
    fs::create_directories(work_dir);
    float_checkpoint = (fs::path(work_dir) / "float.pth").string();
    CheckpointContents contents;
    contents.model = state_dict(runner.model());
    write_checkpoint(float_checkpoint, contents, nullptr);
  }
  std::vector<double> values;
  std::string device;
  int threads = 0;
  double top1 = -1;
  for (int r = 0; r < options.repeats; ++r) {
    auto config = bench_config(options, "w5_ptq.toml", work_dir);
    if (!float_checkpoint.empty()) apply_overrides(*config, {"model.float_checkpoint=" + Json(float_checkpoint).dump()});
    Runner runner(config, runner_options);
    runner.model();
    runner.train_loop();
    runner.val_dataloader();
    synchronize(runner.device());
    const auto start = std::chrono::steady_clock::now();
    {
      const ProfileScope scope(options, "W5", r);
      runner.train();
      synchronize(runner.device());
    }
    values.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    device = runner.device().str();
    threads = torch::get_num_threads();
    if (options.full && r == 0) top1 = runner.val().at("accuracy/top1");
  }
  line.update({{"value", median(values)}, {"device", device}, {"threads", threads}, {"ranks", dist::world_size()},
               {"repeats", values}});
  if (options.full) {
    line["top1"] = top1;
    line["top1_drop"] = line["float_top1"].get<double>() - top1;
  }
  return line;
}

/// The 4-d weights of `model` in `format` (the run's memory format, as the runner sets it).
void set_memory_format(torch::nn::Module& model, torch::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(format));
  }
}

/// W7: inference images/s at batch 256 of ResNet-20 pruned to about half its FLOPs and cut
/// to a smaller dense model, beside the unpruned one, in razor (eval, no autograd, the run's
/// memory format) and in onnxruntime (each model exported to ONNX, full graph optimisation,
/// the same threads). Two lines, "runtime" razor and onnxruntime: `value` is the pruned
/// model's figure, `unpruned` the other's, `speedup` their ratio.
std::vector<Json> bench_w7(const BenchOptions& options) {
  const std::string work_dir = (fs::temp_directory_path() / "razor_bench_W7").string();
  auto config = bench_config(options, "w7_prune.toml", work_dir);
  config->tree["model"]["architecture"].erase("init_cfg");
  RunnerOptions runner_options;
  runner_options.write_files = false;
  runner_options.log_level = "error";
  Runner runner(config, runner_options);
  auto* pruner = dynamic_cast<ItePruneAlgorithm*>(&runner.model());
  RAZOR_CHECK(pruner, "bench W7: w7_prune.toml's model is not an ItePruneAlgorithm");
  // Both as the static models razor exports: the full width first, then pruned at its
  // first prune time.
  std::shared_ptr<Model> unpruned = pruner->static_architecture();
  pruner->mutator().set_choices(pruner->prune_at(0, 1));
  std::shared_ptr<Model> pruned = pruner->static_architecture();
  const std::vector<std::shared_ptr<Model>> models = {pruned, unpruned};

  constexpr int64_t kBatch = 256;
  torch::manual_seed(0);
  const torch::Tensor images = torch::randn({4 * kBatch, 1, 28, 28});
  std::vector<double> flops;
  for (const auto& model : models) {
    torch::NoGradGuard no_grad;
    ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}).with_units(""));
    flops.push_back(estimator.estimate(*model).flops);
  }
  const int threads = torch::get_num_threads();
  const torch::Device device = runner.device();
  const auto memory_format = runner.channels_last() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;

  // razor: each repeat times both models, one after the other.
  std::vector<std::vector<double>> razor_values(2), ort_values(2);
  std::vector<torch::Tensor> expected(2);
  for (size_t m = 0; m < models.size(); ++m) {
    torch::NoGradGuard no_grad;
    expected[m] = models[m]->forward_tensor(images);
    models[m]->to(device);
    set_memory_format(*models[m], memory_format);
  }
  const torch::Tensor batch = images.narrow(0, 0, kBatch).to(device).contiguous(memory_format);
  for (int r = 0; r < options.repeats; ++r) {
    for (size_t m = 0; m < models.size(); ++m) {
      c10::InferenceMode inference;
      Model& model = *models[m];
      for (int i = 0; i < 3; ++i) model.forward_tensor(batch);
      synchronize(device);
      constexpr int kTimed = 20;
      const auto start = std::chrono::steady_clock::now();
      {
        const ProfileScope scope(options, m == 0 ? "W7" : "W7_unpruned", r);
        for (int i = 0; i < kTimed; ++i) model.forward_tensor(batch);
        synchronize(device);
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      razor_values[m].push_back(static_cast<double>(kTimed * kBatch) / seconds);
    }
  }

  // onnxruntime: the float export of each (on the CPU), run by check.mjs on the same images.
  fs::create_directories(work_dir);
  std::vector<std::string> files;
  for (size_t m = 0; m < models.size(); ++m) {
    Model& model = *models[m];
    model.to(torch::kCPU);
    set_memory_format(model, torch::MemoryFormat::Contiguous);
    nn::assign_paths(model);
    const nn::Dataflow flow = nn::trace_dataflow(model, images.narrow(0, 0, 1),
                                                 [&model](const torch::Tensor& x) { return model.forward_tensor(x); });
    deploy::OnnxOptions onnx;
    onnx.input_shape = {1, 1, 28, 28};
    onnx.for_opencv = false;
    files.push_back((fs::path(work_dir) / (m == 0 ? "pruned.onnx" : "unpruned.onnx")).string());
    deploy::write_onnx(flow, onnx, files.back());
  }
  for (int r = 0; r < options.repeats; ++r) {
    for (size_t m = 0; m < models.size(); ++m) {
      const Json report = check_in_onnxruntime(files[m], files[m] + ".check", images, expected[m], torch::Tensor(), 0,
                                               threads, kBatch);
      RAZOR_CHECK(report.at("all").at("relative_error").get<double>() < 1e-4, "bench W7: onnxruntime's outputs of ",
                  files[m], " differ from razor's: ", report.dump());
      ort_values[m].push_back(report.at("all").at("images_per_s").get<double>());
    }
  }

  std::vector<Json> lines;
  for (const bool ort : {false, true}) {
    const auto& values = ort ? ort_values : razor_values;
    const double value = median(values[0]), base = median(values[1]);
    lines.push_back({{"workload", "W7"}, {"metric", "inference_images_per_s"}, {"runtime", ort ? "onnxruntime" : "razor"},
                     {"value", value}, {"unpruned", base}, {"speedup", value / base}, {"flops_ratio", flops[0] / flops[1]},
                     {"batch", kBatch}, {"device", ort ? "cpu" : device.str()}, {"threads", threads},
                     {"repeats", values[0]}, {"unpruned_repeats", values[1]}});
  }
  return lines;
}

}  // namespace

int run_bench(const BenchOptions& options) {
  RAZOR_CHECK(options.repeats >= 1, "--repeats must be >= 1");
  const std::vector<std::string> known = {"W1", "W2", "W3", "W4", "W5", "W6", "W7"};
  std::vector<std::string> workloads = options.workloads.empty() ? known : options.workloads;
  for (const auto& w : workloads) {
    RAZOR_CHECK(std::find(known.begin(), known.end(), w) != known.end(), "--workloads: unknown workload \"", w,
                "\" (available: ", join(known, ", "), ")");
  }
  spdlog::set_level(spdlog::level::warn);
  for (const auto& w : workloads) {
    Json line;
    if (w == "W1") line = bench_w1(options);
    if (w == "W2") line = throughput_line(options, "W2", "w2_kd.toml");
    if (w == "W3") line = throughput_line(options, "W3", "w3_spos.toml");
    if (w == "W4") line = bench_w4(options);
    if (w == "W5") line = bench_w5(options);
    if (w == "W6") line = throughput_line(options, "W6", "w6_qat.toml");
    if (w == "W7") {
      for (const Json& runtime_line : bench_w7(options)) {
        if (dist::is_main()) std::cout << runtime_line.dump() << std::endl;
      }
      continue;
    }
    if (dist::is_main()) std::cout << line.dump() << std::endl;
  }
  return 0;
}

}  // namespace razor
