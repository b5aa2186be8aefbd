#include "engine/runner.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "engine/checkpoint.h"
#include "engine/checkpoint_names.h"
#include "engine/default_hooks.h"
#include "engine/dist.h"
#include "engine/logging.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/strings.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

std::vector<std::string> runner_keys() {
  return {"work_dir",         "experiment_name", "seed",           "deterministic",
          "device",           "num_threads",     "memory_format",  "log_level",
          "load_from",        "resume",          "model",          "train_dataloader",
          "val_dataloader",   "test_dataloader", "train_cfg",      "val_cfg",
          "test_cfg",         "val_evaluator",   "test_evaluator", "optim_wrapper",
          "param_scheduler",  "default_hooks",   "custom_hooks",   "dist_timeout",
          "sync_bn",          "model_wrapper_cfg", "diff_rank_seed", "dtype",
          "checkpoint_key",   "revise_keys",     "checkpoint_mapping"};
}

namespace {

torch::Device parse_device(const std::string& text, const std::string& where) {
  if (text == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  torch::Device device = torch::kCPU;
  try {
    device = torch::Device(text);
  } catch (const c10::Error&) {
    throw config_error(where, ": unknown device \"", text, "\" (auto, cpu, cuda, cuda:N)");
  }
  if (device.is_cuda()) {
    RAZOR_CHECK(torch::cuda::is_available(), where, ": device \"", text,
                "\" asked for, but this razor has no CUDA device available (LibTorch built without CUDA or no GPU)");
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    RAZOR_CHECK(!device.has_index() || device.index() < count, where, ": ", text, " does not exist (",
                count, " CUDA device(s))");
    if (!device.has_index()) device = torch::Device(torch::kCUDA, 0);
  } else {
    RAZOR_CHECK(device.is_cpu(), where, ": unsupported device \"", text, "\" (auto, cpu, cuda, cuda:N)");
  }
  return device;
}

std::string config_stem(const std::string& file) {
  return file.empty() ? std::string("razor") : fs::path(file).stem().string();
}

}  // namespace

Runner::Runner(std::shared_ptr<const Config> config, RunnerOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  register_hooks();
  register_loops();
  register_metrics();
  register_schedulers();
  register_optimizers();
  setup_environment();
}

Runner::~Runner() = default;

Args Runner::root_args() { return Args(config_->tree, "", config_); }

BuildContext Runner::build_context(bool even_shards) {
  BuildContext context{this, seed_, dist::rank(), dist::world_size()};
  context.even_shards = even_shards;
  return context;
}

void Runner::setup_environment() {
  Args root = root_args();
  // Unknown top-level keys are typos (components check their own tables).
  const auto known = runner_keys();
  for (const auto& item : config_->tree.items()) {
    if (std::find(known.begin(), known.end(), item.key()) == known.end()) {
      root.fail(item.key(), "unknown top-level key" + did_you_mean(item.key(), known));
    }
  }
  experiment_name_ = root.get("experiment_name", config_stem(config_->file));
  work_dir_ = options_.work_dir ? *options_.work_dir : root.get("work_dir", "work_dirs/" + config_stem(config_->file));
  seed_ = options_.seed ? static_cast<uint64_t>(*options_.seed) : root.get<uint64_t>("seed", 0);
  const std::string device_text = options_.device ? *options_.device : root.get("device", "auto");
  device_ = parse_device(device_text, options_.device ? "--device" : root.where("device"));
  const std::string memory_format = root.get("memory_format", "auto");
  RAZOR_CHECK(memory_format == "auto" || memory_format == "contiguous" || memory_format == "channels_last",
              root.where("memory_format"), ": expected \"auto\", \"contiguous\" or \"channels_last\", got \"",
              memory_format, "\"");
  // "auto": channels_last on the CPU, where oneDNN trains ResNet-20 1.4x faster with it
  // (scripts/bench W1); contiguous on CUDA until measured there.
  channels_last_ = memory_format == "channels_last" || (memory_format == "auto" && device_.is_cpu());
  // float64 is for numerical checks (rounding differences stay far below any tolerance).
  const std::string dtype = root.get("dtype", "float32");
  RAZOR_CHECK(dtype == "float32" || dtype == "float64", root.where("dtype"),
              ": expected \"float32\" or \"float64\", got \"", dtype, "\"");
  dtype_ = dtype == "float64" ? torch::kDouble : torch::kFloat;

  // Debian's LibTorch starts with one thread; default to every core.
  const int64_t threads = root.get<int64_t>("num_threads", 0);
  RAZOR_CHECK(threads >= 0, root.where("num_threads"), ": must be >= 0 (0 = all cores)");
  torch::set_num_threads(threads > 0 ? static_cast<int>(threads)
                                     : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  if (root.get<bool>("deterministic", false)) {
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
    at::globalContext().setDeterministicCuDNN(true);
    at::globalContext().setBenchmarkCuDNN(false);
  }
  // Values below 1e-38 (gradients late in a decayed schedule) are flushed to zero: on the CPU
  // denormal arithmetic is many times slower and changes no result that matters.
  at::globalContext().setFlushDenormal(true);
  // Many processes: join the process group before anything is built (dist.h).
  const double timeout_s = root.get<double>("dist_timeout", 1800.0);
  RAZOR_CHECK(timeout_s > 0, root.where("dist_timeout"), ": must be > 0 seconds, got ", timeout_s);
  dist::InitOptions dist_options;
  dist_options.launcher = options_.launcher;
  dist_options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  dist_options.device = device_;
  dist::init(dist_options);
  if (device_.is_cuda() && dist::world_size() > 1 && !options_.device) {
    // One GPU per process on a host.
    device_ = torch::Device(torch::kCUDA, static_cast<int>(dist::local_rank() % torch::cuda::device_count()));
  }
  write_files_ = options_.write_files && dist::is_main();
  // Per-rank seeds vary dropout-like randomness across ranks (MMEngine's diff_rank_seed);
  // the data's randomness is per sample and the initial weights are broadcast either way.
  const bool diff_rank_seed = root.get<bool>("diff_rank_seed", false);
  torch::manual_seed(seed_ + (diff_rank_seed ? static_cast<uint64_t>(dist::rank()) : 0));

  std::string log_file;
  if (write_files_) {
    std::error_code ec;
    fs::create_directories(work_dir_, ec);
    RAZOR_RUNTIME_CHECK(!ec, "cannot create the work dir ", work_dir_, ": ", ec.message());
    log_file = (fs::path(work_dir_) / "razor.log").string();
  }
  const std::string log_level = root.get("log_level", "info");
  // Other ranks print warnings and errors only.
  setup_logging(log_file, !dist::is_main() ? "warn" : options_.log_level ? *options_.log_level : log_level);
  if (write_files_) {
    write_file_atomically((fs::path(work_dir_) / (config_stem(config_->file) + ".toml")).string(),
                          to_toml(config_->tree));
  }
}

Model& Runner::model() { return *model_ptr(); }

std::shared_ptr<Model> Runner::model_ptr() {
  if (!model_) {
    Args root = root_args();
    Args args = root.sub("model");
    BuildContext context = build_context();
    torch::manual_seed(seed_);  // the same initial weights whatever was built before
    model_ = build_model_as<Model>(args, context, "a model (it has no loss/predict)");
    model_->to(device_);
    if (dtype_ != torch::kFloat) {
      // Floating tensors only: counters such as num_batches_tracked stay integers.
      torch::NoGradGuard no_grad;
      for (auto& p : model_->parameters()) p.set_data(p.to(dtype_));
      for (auto& b : model_->buffers()) {
        if (b.is_floating_point()) b.set_data(b.to(dtype_));
      }
    }
    if (channels_last_) {
      torch::NoGradGuard no_grad;
      for (auto& p : model_->parameters()) {
        if (p.dim() != 4) continue;
        // Explicit channels_last strides: for 1x1 kernels contiguous() would keep NCHW strides
        // (the same memory order), unlike the gradients convolution makes, and c10d's Reducer
        // would warn that they differ.
        const int64_t c = p.size(1), h = p.size(2), w = p.size(3);
        p.set_data(torch::empty_strided(p.sizes(), {c * h * w, 1, w * c, c}, p.options()).copy_(p));
      }
    }
  }
  return model_;
}

OptimWrapper& Runner::optim_wrapper() {
  if (!optim_wrapper_) {
    Args root = root_args();
    Args args = root.sub("optim_wrapper");
    check_optim_wrapper_names(args, model().optim_wrapper_names(),
                              root.sub("model").get("type", "?"));
    optim_wrapper_ = build_optim_wrapper(args, model());
  }
  return *optim_wrapper_;
}

ParamSchedulerSet& Runner::schedulers() {
  if (!schedulers_) {
    Args root = root_args();
    std::vector<std::shared_ptr<ParamScheduler>> list;
    TrainLoop& loop = train_loop();
    const int64_t per_epoch = train_dataloader().size();
    for (Args& args : root.sub_list("param_scheduler")) {
      auto scheduler = scheduler_registry().build(args);
      scheduler->resolve(per_epoch, loop.max_epochs(), loop.max_iters());
      list.push_back(scheduler);
    }
    schedulers_ = std::make_unique<ParamSchedulerSet>(list, optim_wrapper(), model().scheduled_values());
  }
  return *schedulers_;
}

std::shared_ptr<DataLoader> Runner::build_dataloader(const std::string& key) {
  Args root = root_args();
  RAZOR_CHECK(root.has(key), config_->file, ": the config has no \"", key, "\" table");
  Args args = root.sub(key);
  // Evaluation counts each sample once: unpadded shards.
  BuildContext context = build_context(/*even_shards=*/key == "train_dataloader");
  return dataloader_registry().build(args, context, "DataLoader");
}

DataLoader& Runner::train_dataloader() {
  if (!train_loader_) train_loader_ = build_dataloader("train_dataloader");
  return *train_loader_;
}

DataLoader& Runner::val_dataloader() {
  if (!val_loader_) val_loader_ = build_dataloader("val_dataloader");
  return *val_loader_;
}

DataLoader& Runner::test_dataloader() {
  if (!test_loader_) test_loader_ = build_dataloader("test_dataloader");
  return *test_loader_;
}

DataLoader& Runner::whole_dataloader(const std::string& key) {
  auto& loader = whole_loaders_[key];
  if (!loader) {
    Args root = root_args();
    RAZOR_CHECK(root.has(key), config_->file, ": the config has no \"", key, "\" table");
    Args args = root.sub(key);
    BuildContext context = build_context(/*even_shards=*/false);
    context.rank = 0;
    context.world_size = 1;
    loader = dataloader_registry().build(args, context, "DataLoader");
  }
  return *loader;
}

bool Runner::has_val() const { return config_->tree.contains("val_dataloader"); }

std::shared_ptr<Evaluator> Runner::build_evaluator(const std::string& key) {
  Args root = root_args();
  std::vector<std::shared_ptr<Metric>> metrics;
  if (!root.has(key)) {
    metrics.push_back(std::make_shared<Accuracy>());  // classification default: top-1
  } else {
    for (Args& args : root.sub_list(key)) metrics.push_back(metric_registry().build(args));
  }
  return std::make_shared<Evaluator>(metrics);
}

Evaluator& Runner::val_evaluator() {
  if (!val_evaluator_) val_evaluator_ = build_evaluator("val_evaluator");
  return *val_evaluator_;
}

Evaluator& Runner::test_evaluator() {
  if (!test_evaluator_) {
    test_evaluator_ = config_->tree.contains("test_evaluator") ? build_evaluator("test_evaluator")
                                                               : build_evaluator("val_evaluator");
  }
  return *test_evaluator_;
}

TrainLoop& Runner::train_loop() {
  if (!train_loop_) {
    Args root = root_args();
    Args args = root.sub("train_cfg");
    BuildContext context = build_context();
    auto loop = loop_registry().build(args, context, "EpochBasedTrainLoop");
    train_loop_ = std::dynamic_pointer_cast<TrainLoop>(loop);
    if (!train_loop_) args.fail("type", "is not a train loop");
  }
  return *train_loop_;
}

int64_t Runner::epoch() const { return train_loop_ ? train_loop_->epoch() : 0; }
int64_t Runner::iter() const { return train_loop_ ? train_loop_->iter() : 0; }
int64_t Runner::max_epochs() { return train_loop().max_epochs(); }
int64_t Runner::max_iters() { return train_loop().max_iters(); }

Batch Runner::to_device(const Batch& batch) const {
  Batch out = batch.to(device_, /*non_blocking=*/device_.is_cuda());
  if (out.inputs.is_floating_point() && out.inputs.scalar_type() != dtype_) out.inputs = out.inputs.to(dtype_);
  if (channels_last_ && out.inputs.dim() == 4) {
    out.inputs = out.inputs.contiguous(at::MemoryFormat::ChannelsLast);
  }
  return out;
}

void Runner::register_hook(std::shared_ptr<Hook> hook) {
  // Stable by priority: among equals, the order of registration.
  auto it = std::upper_bound(hooks_.begin(), hooks_.end(), hook,
                             [](const auto& a, const auto& b) { return a->priority() < b->priority(); });
  hooks_.insert(it, std::move(hook));
}

void Runner::build_hooks() {
  if (hooks_built_) return;
  hooks_built_ = true;
  Args root = root_args();
  const std::vector<std::pair<std::string, std::string>> default_hooks = {
      {"timer", "IterTimerHook"},
      {"logger", "LoggerHook"},
      {"param_scheduler", "ParamSchedulerHook"},
      {"checkpoint", "CheckpointHook"},
      {"sampler_seed", "DistSamplerSeedHook"}};
  Json table = root.has("default_hooks") ? root.raw("default_hooks") : Json::object();
  Args section(table, "default_hooks", config_);
  BuildContext context = build_context();
  for (const auto& item : default_hooks) {
    // Absent or `true`: the hook with its defaults; `false`: none; a table: configured.
    const Json* value = table.contains(item.first) ? &section.raw(item.first) : nullptr;
    if (value && value->is_boolean() && !value->get<bool>()) continue;
    if (value && !value->is_boolean()) {
      Args args = section.sub(item.first);
      register_hook(hook_registry().build(args, context, item.second));
      continue;
    }
    Json defaults = {{"type", item.second}};
    Args args(defaults, "default_hooks." + item.first, config_);
    register_hook(hook_registry().build(args, context));
  }
  // Any further named hook in default_hooks is built by its type.
  for (const auto& item : table.items()) {
    const bool is_default = std::any_of(default_hooks.begin(), default_hooks.end(),
                                        [&](const auto& d) { return d.first == item.key(); });
    if (is_default) continue;
    Args args = section.sub(item.key());
    register_hook(hook_registry().build(args, context));
  }
  for (Args& args : root.sub_list("custom_hooks")) register_hook(hook_registry().build(args, context));
}

void Runner::call_hooks(const std::function<void(Hook&)>& fn) {
  build_hooks();
  for (auto& hook : hooks_) fn(*hook);
}

void Runner::log_scalars(const Json& record) {
  if (!write_files_) return;
  if (!scalars_file_) {
    const std::string path = (fs::path(work_dir_) / "scalars.jsonl").string();
    scalars_file_ = std::make_unique<std::ofstream>(path, std::ios::app);
    RAZOR_RUNTIME_CHECK(scalars_file_->good(), "cannot open ", path);
  }
  // The logger logs the first optimiser's lr; with several, each goes in as "<name>.lr"
  // (MMEngine's OptimWrapperDict.get_lr keys).
  auto* dict = dynamic_cast<OptimWrapperDict*>(optim_wrapper_.get());
  if (dict && record.value("mode", "") == "train" && record.contains("lr")) {
    Json with_lrs = record;
    for (const auto& item : dict->items()) with_lrs[item.first + ".lr"] = item.second->get("lr").front();
    *scalars_file_ << with_lrs.dump() << '\n';
  } else {
    *scalars_file_ << record.dump() << '\n';
  }
  scalars_file_->flush();
}

std::string Runner::save_checkpoint(const std::string& filename) {
  const std::string path = (fs::path(work_dir_) / filename).string();
  CheckpointContents contents;
  Json hook_states = Json::object();
  for (auto& hook : hooks_) {
    Json state = Json::object();
    hook->before_save_checkpoint(*this, state);
    if (!state.empty()) hook_states[hook->name()] = state;
  }
  contents.meta = {{"format", kCheckpointFormat},
                   {"razor_version", kVersion},
                   {"experiment_name", experiment_name_},
                   {"config", to_toml(config_->tree)},
                   {"config_file", config_->file},
                   {"seed", seed_},
                   {"epoch", epoch()},
                   {"iter", iter()},
                   {"scalars", hub_.scalars},
                   {"runtime_info", hub_.runtime_info},
                   {"hooks", hook_states}};
  if (Json extra = model().extra_state(); !extra.is_null()) contents.meta["model_state"] = extra;
  contents.model = state_dict(model());
  contents.rng = capture_rng_state();
  write_checkpoint(path, contents, optim_wrapper_ ? &optim_wrapper_->optimizer() : nullptr);
  write_file_atomically((fs::path(work_dir_) / "last_checkpoint").string(), path);
  spdlog::info("Saved checkpoint {}", path);
  return path;
}

std::string Runner::resolve_resume_path() const {
  std::string resume = options_.resume;
  if (resume.empty() && config_->tree.contains("resume")) {
    const Json& value = config_->tree.at("resume");
    if (value.is_boolean() && value.get<bool>()) resume = "auto";
    if (value.is_string()) resume = value.get<std::string>();
  }
  if (resume != "auto") return resume;
  const fs::path marker = fs::path(work_dir_) / "last_checkpoint";
  RAZOR_CHECK(fs::exists(marker), "--resume: no checkpoint to resume in ", work_dir_,
              " (", marker.string(), " does not exist)");
  std::ifstream in(marker);
  std::string path;
  std::getline(in, path);
  return path;
}

void Runner::resume_from(const std::string& path) {
  CheckpointReader reader(path);
  RAZOR_CHECK(!reader.from_pytorch(), "--resume ", path, ": the file was written by Python's torch.save and holds "
              "weights only; resuming needs a razor checkpoint (load the weights with load_from instead)");
  const auto& contents = reader.contents();
  // The model's own state first: it may change which tensors the model has (DSNAS fixes
  // mutables, dropping their other candidates), and the weights must then fit.
  if (contents.meta.contains("model_state")) model().load_extra_state(contents.meta["model_state"]);
  load_state_dict(model(), contents.model, /*strict=*/true, path);
  try {
    if (!reader.load_optimizer(optim_wrapper().optimizer())) {
      spdlog::warn("{} holds no optimizer state; the optimizer starts afresh", path);
    }
  } catch (const Error& e) {
    throw e.with_context("resuming from " + path);
  }
  const Json& meta = contents.meta;
  train_loop().set_position(meta.value("epoch", int64_t{0}), meta.value("iter", int64_t{0}));
  const Json scalars = meta.value("scalars", Json::object());
  for (const auto& item : scalars.items()) {
    hub_.scalars[item.key()] = item.value().get<double>();
  }
  hub_.runtime_info = meta.value("runtime_info", Json::object());
  build_hooks();
  const Json hook_states = meta.value("hooks", Json::object());
  for (auto& hook : hooks_) {
    if (hook_states.contains(hook->name())) hook->after_load_checkpoint(*this, hook_states[hook->name()]);
  }
  restore_rng_state(contents.rng);
  spdlog::info("Resumed from {} at epoch {}, iteration {}", path, epoch(), iter());
}

void Runner::load_weights(const std::string& path, bool require_all) {
  const CheckpointNaming naming = CheckpointNaming::from_config(*config_);
  CheckpointReader reader(path, naming.checkpoint_key);
  if (reader.contents().meta.contains("model_state")) model().load_weights_state(reader.contents().meta["model_state"]);
  const StateDict weights = rename_for_model(reader.contents().model, model(), naming, path);
  LoadReport report = load_state_dict(model(), weights, /*strict=*/false, path);
  if (require_all && !report.missing.empty()) {
    const bool algorithm_checkpoint = std::any_of(report.unexpected.begin(), report.unexpected.end(),
                                                  [](const std::string& key) { return key.rfind("architecture.", 0) == 0; });
    throw config_error(path, " does not hold ", report.missing.size(), " of the model's weights (first: ",
                       report.missing.front(), ")",
                       algorithm_checkpoint ? ". It is an algorithm's checkpoint: test it with the algorithm's config, "
                                              "or turn it into a plain one with `razor export CONFIG CHECKPOINT --out FILE`"
                                            : "");
  }
  if (!report.missing.empty()) {
    spdlog::warn("{}: missing keys (left as initialised): {}", path, join(report.missing, ", "));
  }
  if (!report.unexpected.empty()) {
    std::vector<std::string> first(report.unexpected.begin(),
                                   report.unexpected.begin() + std::min<size_t>(report.unexpected.size(), 5));
    spdlog::warn("{}: {} unexpected keys ignored: {}{}", path, report.unexpected.size(), join(first, ", "),
                 report.unexpected.size() > first.size() ? ", ..." : "");
  }
  spdlog::info("Loaded weights from {}", path);
}

void Runner::train() {
  TrainLoop& loop = train_loop();
  model();
  if (!loop.trains_model()) {
    build_hooks();
    if (config_->tree.contains("load_from")) load_weights(root_args().require<std::string>("load_from"), true);
    call_hooks([&](Hook& h) { h.before_run(*this); });
    loop.run();
    call_hooks([&](Hook& h) { h.after_run(*this); });
    return;
  }
  optim_wrapper();
  train_dataloader();
  schedulers();
  build_hooks();
  const std::string resume = resolve_resume_path();
  if (!resume.empty()) {
    resume_from(resume);
  } else if (config_->tree.contains("load_from")) {
    Args root = root_args();
    load_weights(root.require<std::string>("load_from"));
  }
  optim_wrapper().initialize_count_status(loop.iter(), loop.max_iters());
  setup_data_parallel();
  spdlog::info("razor {}: training {} on {} for {} {}; work dir {}", kVersion, experiment_name_,
               device_.str(), loop.by_epoch() ? loop.max_epochs() : loop.max_iters(),
               loop.by_epoch() ? "epochs" : "iterations", work_dir_);
  call_hooks([&](Hook& h) { h.before_run(*this); });
  loop.run();
  call_hooks([&](Hook& h) { h.after_run(*this); });
}

void Runner::setup_data_parallel() {
  Args root = root_args();
  const bool sync_bn = root.get<bool>("sync_bn", false);
  DataParallelOptions options;
  options.find_unused_parameters = model().leaves_parameters_unused();
  if (root.has("model_wrapper_cfg")) {
    Args wrapper = root.sub("model_wrapper_cfg");
    const std::string type = wrapper.get("type", "DistributedDataParallel");
    if (type != "DistributedDataParallel" && type != "MMDistributedDataParallel") {
      wrapper.fail("type", "unknown model wrapper \"" + type + "\" (DistributedDataParallel)");
    }
    options.find_unused_parameters =
        wrapper.get<bool>("find_unused_parameters", options.find_unused_parameters);
    options.broadcast_buffers = wrapper.get<bool>("broadcast_buffers", true);
    options.bucket_cap_mb = wrapper.get<int64_t>("bucket_cap_mb", 25);
    RAZOR_CHECK(options.bucket_cap_mb >= 1, wrapper.where("bucket_cap_mb"), ": must be >= 1");
    wrapper.finish();
  }
  if (dist::world_size() == 1 || data_parallel_) return;
  data_parallel_ = std::make_unique<DataParallel>(model(), options, sync_bn);
  data_parallel_->attach(optim_wrapper());
  spdlog::info("data parallel over {} ranks: gradients averaged by c10d's Reducer{}{}", dist::world_size(),
               sync_bn ? ", SyncBatchNorm" : "", options.find_unused_parameters ? ", find_unused_parameters" : "");
}

std::shared_ptr<EvalLoop> Runner::build_eval_loop(const std::string& key, const std::string& default_type) {
  Args root = root_args();
  BuildContext context = build_context();
  Json fallback = {{"type", default_type}};
  Args args = root.has(key) ? root.sub(key) : Args(fallback, key, config_);
  auto loop = std::dynamic_pointer_cast<EvalLoop>(loop_registry().build(args, context, default_type));
  if (!loop) args.fail("type", "is not an evaluation loop (ValLoop or TestLoop)");
  return loop;
}

Metrics Runner::val() { return build_eval_loop("val_cfg", "ValLoop")->run(); }

Metrics Runner::test() {
  auto loop = build_eval_loop("test_cfg", "TestLoop");
  build_hooks();
  call_hooks([&](Hook& h) { h.before_run(*this); });
  Metrics metrics = loop->run();
  call_hooks([&](Hook& h) { h.after_run(*this); });
  return metrics;
}

}  // namespace razor
