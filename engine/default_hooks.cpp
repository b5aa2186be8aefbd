#include "engine/default_hooks.h"

#include <filesystem>
#include <numeric>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "engine/dist.h"
#include "engine/logging.h"
#include "engine/runner.h"

namespace razor {

namespace fs = std::filesystem;

int parse_priority(Args& args, const std::string& key, int fallback) {
  if (!args.has(key)) return fallback;
  const Json& value = args.raw(key);
  if (value.is_number_integer()) return value.get<int>();
  static const std::vector<std::pair<std::string, int>> names = {
      {"HIGHEST", kHighest}, {"VERY_HIGH", kVeryHigh}, {"HIGH", kHigh},
      {"ABOVE_NORMAL", kAboveNormal}, {"NORMAL", kNormal}, {"BELOW_NORMAL", kBelowNormal},
      {"LOW", kLow}, {"VERY_LOW", kVeryLow}, {"LOWEST", kLowest}};
  if (value.is_string()) {
    std::vector<std::string> known;
    for (const auto& item : names) {
      if (item.first == value.get<std::string>()) return item.second;
      known.push_back(item.first);
    }
    args.fail(key, "unknown priority " + value.dump() + did_you_mean(value.get<std::string>(), known) +
                       " (" + join(known, ", ") + ", or an integer)");
  }
  args.fail(key, "expected a priority name or an integer, got " + value.dump());
}

// ---- IterTimerHook ----

void IterTimerHook::before_train(Runner&) {
  times_.clear();
  data_times_.clear();
  total_time_ = 0.0;
  timed_iters_ = 0;
}

void IterTimerHook::before_train_epoch(Runner&) { last_ = Clock::now(); }

void IterTimerHook::before_train_iter(Runner& runner, int64_t, const Batch&) {
  const auto now = Clock::now();
  data_times_.push_back(std::chrono::duration<double>(now - last_).count());
  if (data_times_.size() > 50) data_times_.pop_front();
  runner.message_hub().scalars["data_time"] =
      std::accumulate(data_times_.begin(), data_times_.end(), 0.0) / data_times_.size();
}

void IterTimerHook::after_train_iter(Runner& runner, int64_t, const Batch&, const LossMap&) {
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  times_.push_back(elapsed);
  if (times_.size() > 50) times_.pop_front();
  total_time_ += elapsed;
  ++timed_iters_;
  auto& scalars = runner.message_hub().scalars;
  scalars["time"] = std::accumulate(times_.begin(), times_.end(), 0.0) / times_.size();
  // ETA from the average over the whole run so far: steadier than the window.
  const double per_iter = total_time_ / static_cast<double>(timed_iters_);
  scalars["eta"] = per_iter * static_cast<double>(runner.max_iters() - runner.iter());
}

// ---- LoggerHook ----

namespace {

/// The logged values, read from the device only here, when a line is due.
std::vector<std::pair<std::string, double>> read_values(const LossMap& outputs) {
  std::vector<std::pair<std::string, double>> values;
  for (const auto& item : outputs) values.emplace_back(item.first, item.second.item<double>());
  return values;
}

}  // namespace

void LoggerHook::before_train(Runner& runner) { start_iter_ = runner.iter(); }

void LoggerHook::after_train_iter(Runner& runner, int64_t batch_idx, const Batch&, const LossMap& outputs) {
  auto& scalars = runner.message_hub().scalars;
  const int64_t per_epoch = runner.train_dataloader().size();
  const bool by_epoch = runner.train_loop().by_epoch();
  // By epoch, count within the epoch (as MMEngine does); by iteration, globally.
  const int64_t count = by_epoch ? batch_idx + 1 : runner.iter();
  const bool due = count % interval_ == 0 || (by_epoch && batch_idx + 1 == per_epoch);
  const bool progress = stdout_is_terminal() && runner.write_files();
  if (!due && !progress) return;  // nothing to format, nothing to read from the device
  if (due) {
    last_values_ = read_values(outputs);
    for (const auto& item : last_values_) scalars[item.first] = item.second;
  }
  std::string fields;
  for (const auto& item : last_values_) fields += fmt::format("  {}: {:.4f}", item.first, item.second);
  // Global throughput: every rank trains a batch per iteration.
  const double images_per_s = scalars["time"] > 0
      ? static_cast<double>(runner.train_dataloader().batch_size() * dist::world_size()) / scalars["time"]
      : 0.0;
  const std::string position =
      by_epoch ? fmt::format("Epoch(train) [{}][{:>{}}/{}]", runner.epoch() + 1, batch_idx + 1,
                             std::to_string(per_epoch).size(), per_epoch)
               : fmt::format("Iter(train) [{:>{}}/{}]", runner.iter(),
                             std::to_string(runner.max_iters()).size(), runner.max_iters());
  const std::string text =
      fmt::format("{}  lr: {:.4e}  eta: {}  time: {:.4f}  data_time: {:.4f}  images/s: {:.0f}{}",
                  position, scalars["lr"], format_duration(scalars["eta"]), scalars["time"],
                  scalars["data_time"], images_per_s, fields);
  if (progress) {
    print_progress(text);
  } else if (due) {
    spdlog::info(text);
  }
  if (due) {
    Json record = {{"mode", "train"},           {"epoch", runner.epoch() + 1},
                   {"iter", runner.iter()},        {"lr", scalars["lr"]},
                   {"time", scalars["time"]},      {"data_time", scalars["data_time"]},
                   {"images_per_s", images_per_s}};
    for (const auto& item : last_values_) record[item.first] = item.second;
    runner.log_scalars(record);
  }
}

void LoggerHook::after_train_epoch(Runner&) { end_progress(); }

void LoggerHook::eval_progress(Runner& runner, int64_t index, bool is_test) {
  if (!stdout_is_terminal() || !runner.write_files()) return;
  DataLoader& loader = is_test ? runner.test_dataloader() : runner.val_dataloader();
  print_progress(fmt::format("Epoch({}) [{}/{}]", is_test ? "test" : "val", index + 1, loader.size()));
}

void LoggerHook::after_val_iter(Runner& runner, int64_t index, const Batch&, const torch::Tensor&) {
  eval_progress(runner, index, false);
}

void LoggerHook::after_test_iter(Runner& runner, int64_t index, const Batch&, const torch::Tensor&) {
  eval_progress(runner, index, true);
}

void LoggerHook::log_eval(Runner& runner, const Metrics& metrics, const std::string& mode) {
  end_progress();
  std::string text;
  for (const auto& item : metrics) text += fmt::format("  {}: {:.4f}", item.first, item.second);
  spdlog::info("Epoch({}) [{}]{}", mode, runner.epoch(), text);
  Json record = {{"mode", mode}, {"epoch", runner.epoch()}, {"iter", runner.iter()}};
  for (const auto& item : metrics) record[item.first] = item.second;
  runner.log_scalars(record);
}

void LoggerHook::after_val_epoch(Runner& runner, const Metrics& metrics) { log_eval(runner, metrics, "val"); }
void LoggerHook::after_test_epoch(Runner& runner, const Metrics& metrics) { log_eval(runner, metrics, "test"); }

// ---- ParamSchedulerHook ----

void ParamSchedulerHook::before_train_iter(Runner& runner, int64_t, const Batch&) {
  runner.schedulers().apply(runner.epoch(), runner.iter());
  runner.message_hub().scalars["lr"] = runner.optim_wrapper().get("lr").front();
}

// ---- CheckpointHook ----

CheckpointHook::CheckpointHook(Args& args) {
  interval_ = args.get<int64_t>("interval", 1);
  by_epoch_ = args.optional<bool>("by_epoch");
  max_keep_ckpts_ = args.get<int64_t>("max_keep_ckpts", -1);
  save_last_ = args.get<bool>("save_last", true);
  save_best_ = args.get("save_best", "");
  rule_ = args.get("rule", "greater");
  RAZOR_CHECK(interval_ >= 1, args.where("interval"), ": must be >= 1, got ", interval_);
  RAZOR_CHECK(rule_ == "greater" || rule_ == "less", args.where("rule"),
              ": expected \"greater\" or \"less\", got \"", rule_, "\"");
}

void CheckpointHook::before_train(Runner& runner) {
  if (!by_epoch_) by_epoch_ = runner.train_loop().by_epoch();
}

void CheckpointHook::save(Runner& runner, const std::string& filename) {
  // Never a checkpoint of a diverged model (a collective: every rank checks).
  runner.train_loop().check_finite();
  if (!runner.write_files()) return;
  const std::string path = runner.save_checkpoint(filename);
  if (std::find(kept_.begin(), kept_.end(), path) == kept_.end()) kept_.push_back(path);
  while (max_keep_ckpts_ > 0 && static_cast<int64_t>(kept_.size()) > max_keep_ckpts_) {
    std::error_code ignored;
    fs::remove(kept_.front(), ignored);
    kept_.erase(kept_.begin());
  }
}

void CheckpointHook::after_train_epoch(Runner& runner) {
  if (!*by_epoch_) return;
  const int64_t epoch = runner.epoch();
  if (epoch % interval_ == 0 || (save_last_ && epoch == runner.max_epochs())) {
    save(runner, "epoch_" + std::to_string(epoch) + ".pth");
  }
}

void CheckpointHook::after_train_iter(Runner& runner, int64_t, const Batch&, const LossMap&) {
  if (*by_epoch_) return;
  const int64_t iter = runner.iter();
  if (iter % interval_ == 0 || (save_last_ && iter == runner.max_iters())) {
    save(runner, "iter_" + std::to_string(iter) + ".pth");
  }
}

void CheckpointHook::after_val_epoch(Runner& runner, const Metrics& metrics) {
  if (save_best_.empty() || metrics.empty() || !runner.write_files()) return;
  std::string key = save_best_;
  if (key == "auto") key = metrics.begin()->first;
  auto it = metrics.find(key);
  if (it == metrics.end()) {
    std::vector<std::string> names;
    for (const auto& item : metrics) names.push_back(item.first);
    throw config_error("default_hooks.checkpoint.save_best: no metric \"", key, "\"",
                       did_you_mean(key, names), " (metrics: ", join(names, ", "), ")");
  }
  const double score = it->second;
  const bool better = !best_score_ || (rule_ == "greater" ? score > *best_score_ : score < *best_score_);
  if (!better) return;
  best_score_ = score;
  std::string safe = key;
  std::replace(safe.begin(), safe.end(), '/', '_');
  const bool by_epoch = by_epoch_.value_or(true);
  const std::string filename = "best_" + safe + "_" + (by_epoch ? "epoch_" : "iter_") +
                               std::to_string(by_epoch ? runner.epoch() : runner.iter()) + ".pth";
  auto& info = runner.message_hub().runtime_info;
  info["best_score"] = score;
  info["best_metric"] = key;
  const std::string previous = best_path_;
  best_path_ = runner.save_checkpoint(filename);
  info["best_ckpt"] = best_path_;
  if (!previous.empty() && previous != best_path_) {
    std::error_code ignored;
    fs::remove(previous, ignored);
  }
  spdlog::info("The best checkpoint ({} = {:.4f}) is saved to {}", key, score, best_path_);
}

void CheckpointHook::before_save_checkpoint(Runner&, Json& state) {
  state["kept"] = kept_;
  state["best_path"] = best_path_;
  if (best_score_) state["best_score"] = *best_score_;
}

void CheckpointHook::after_load_checkpoint(Runner&, const Json& state) {
  kept_ = state.value("kept", std::vector<std::string>{});
  best_path_ = state.value("best_path", std::string());
  if (state.contains("best_score")) best_score_ = state["best_score"].get<double>();
}

// ---- DistSamplerSeedHook ----

void DistSamplerSeedHook::before_train_epoch(Runner& runner) {
  runner.train_dataloader().set_epoch(runner.epoch());
}

// ---- registry ----

Registry<Hook>& hook_registry() {
  static Registry<Hook> registry("hooks");
  return registry;
}

void register_hooks() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = hook_registry();
  registry.add("IterTimerHook", [](Args& args, const BuildContext&) {
    auto hook = std::make_shared<IterTimerHook>();
    hook->set_priority(parse_priority(args, "priority", kNormal));
    return hook;
  });
  registry.add("LoggerHook", [](Args& args, const BuildContext&) {
    const int64_t interval = args.get<int64_t>("interval", 50);
    RAZOR_CHECK(interval >= 1, args.where("interval"), ": must be >= 1, got ", interval);
    auto hook = std::make_shared<LoggerHook>(interval);
    hook->set_priority(parse_priority(args, "priority", kBelowNormal));
    return hook;
  });
  registry.add("ParamSchedulerHook", [](Args& args, const BuildContext&) {
    auto hook = std::make_shared<ParamSchedulerHook>();
    hook->set_priority(parse_priority(args, "priority", kLow));
    return hook;
  });
  registry.add("CheckpointHook", [](Args& args, const BuildContext&) {
    auto hook = std::make_shared<CheckpointHook>(args);
    hook->set_priority(parse_priority(args, "priority", kVeryLow));
    return hook;
  });
  registry.add("DistSamplerSeedHook", [](Args& args, const BuildContext&) {
    auto hook = std::make_shared<DistSamplerSeedHook>();
    hook->set_priority(parse_priority(args, "priority", kNormal));
    return hook;
  });
}

}  // namespace razor
