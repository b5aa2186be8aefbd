#include "engine/loop.h"

#include <cmath>
#include <limits>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "engine/dist.h"
#include "engine/runner.h"
#include "engine/strings.h"

namespace razor {

void TrainLoop::run_iter(int64_t batch_idx, const Batch& batch) {
  runner_.call_hooks([&](Hook& h) { h.before_train_iter(runner_, batch_idx, batch); });
  const Batch on_device = runner_.to_device(batch);
  if (DataParallel* parallel = runner_.data_parallel()) parallel->before_train_step();
  LossMap outputs = runner_.model().train_step(on_device, runner_.optim_wrapper());
  ++iter_;
  // Remember the first non-finite loss on the device: reading it here would make every
  // step wait for the device.
  for (const auto& item : outputs) {
    if (item.first != "loss") continue;
    const torch::Tensor loss = item.second.detach().reshape({});
    if (!first_bad_iter_.defined()) reset_finite_check(loss.device());
    const torch::Tensor fresh = torch::isfinite(loss).logical_not() & first_bad_iter_.eq(kNoBadIter);
    first_bad_iter_ = torch::where(fresh, torch::full({}, iter_, first_bad_iter_.options()), first_bad_iter_);
    first_bad_value_ = torch::where(fresh, loss.to(torch::kDouble), first_bad_value_);
  }
  const bool epoch_end = by_epoch() && batch_idx + 1 == runner_.train_dataloader().size();
  if (iter_ % check_interval_ == 0 || epoch_end || iter_ == max_iters()) check_finite();
  runner_.call_hooks([&](Hook& h) { h.after_train_iter(runner_, batch_idx, batch, outputs); });
}

void TrainLoop::reset_finite_check(const torch::Device& device) {
  first_bad_iter_ = torch::full({}, kNoBadIter, torch::TensorOptions(torch::kLong).device(device));
  first_bad_value_ = torch::zeros({}, torch::TensorOptions(torch::kDouble).device(device));
}

void TrainLoop::check_finite() {
  if (!first_bad_iter_.defined()) reset_finite_check(torch::kCPU);
  const int64_t here = first_bad_iter_.item<int64_t>();
  // A MIN over the ranks finds the earliest bad iteration anywhere.
  torch::Tensor earliest = torch::full({1}, here, torch::kLong);
  dist::all_reduce(earliest, dist::ReduceOp::Min);
  const int64_t bad_iter = earliest.item<int64_t>();
  if (bad_iter == kNoBadIter) return;
  const bool on_this_rank = here == bad_iter;
  throw runtime_error("the loss is ",
                      on_this_rank ? std::to_string(first_bad_value_.item<double>()) : std::string("not finite"),
                      " at iteration ", bad_iter, on_this_rank ? "" : " on another rank",
                      "; stopping. Lower the learning rate or add clip_grad to optim_wrapper.");
}

int64_t TrainLoop::batches_done_in_epoch(int64_t per_epoch) const {
  const int64_t skip = iter_ - epoch_ * per_epoch;
  RAZOR_RUNTIME_CHECK(skip >= 0 && skip < per_epoch, "the checkpoint's position (epoch ", epoch_,
                      ", iteration ", iter_, ") does not fit ", per_epoch,
                      " batches per epoch: was the batch size or the data changed?");
  return skip;
}

void TrainLoop::maybe_validate(int64_t completed, int64_t total) {
  if (!runner_.has_val()) return;
  if (completed >= val_begin_ && (completed % val_interval_ == 0 || completed == total)) runner_.val();
}

void EvalLoop::report_subnets(const Metrics& metrics, const std::string& what, int precision) const {
  std::vector<std::string> parts;
  for (const auto& item : metrics) parts.push_back(item.first + ": " + format_number(item.second, precision));
  spdlog::info("{} of {}: {}", is_test_ ? "test" : "validation", what, join(parts, "  "));
  for (const auto& item : metrics) runner_.message_hub().scalars[item.first] = item.second;
}

Metrics EvalLoop::run() {
  Model& model = runner_.model();
  DataLoader& loader = is_test_ ? runner_.test_dataloader() : runner_.val_dataloader();
  Evaluator& evaluator = is_test_ ? runner_.test_evaluator() : runner_.val_evaluator();
  const bool was_training = model.is_training();

  runner_.call_hooks([&](Hook& h) { is_test_ ? h.before_test(runner_) : h.before_val(runner_); });
  runner_.call_hooks([&](Hook& h) { is_test_ ? h.before_test_epoch(runner_) : h.before_val_epoch(runner_); });
  model.eval();
  evaluator.reset();
  {
    torch::NoGradGuard no_grad;
    loader.set_epoch(0);
    loader.start();
    int64_t index = 0;
    while (auto batch = loader.next()) {
      runner_.call_hooks([&](Hook& h) {
        is_test_ ? h.before_test_iter(runner_, index, *batch) : h.before_val_iter(runner_, index, *batch);
      });
      const Batch on_device = runner_.to_device(*batch);
      torch::Tensor scores = model.predict(on_device);
      evaluator.process(scores, on_device);
      runner_.call_hooks([&](Hook& h) {
        is_test_ ? h.after_test_iter(runner_, index, *batch, scores)
                 : h.after_val_iter(runner_, index, *batch, scores);
      });
      ++index;
    }
  }
  Metrics metrics = evaluator.compute();
  for (const auto& item : metrics) runner_.message_hub().scalars[item.first] = item.second;
  model.train(was_training);
  runner_.call_hooks([&](Hook& h) {
    is_test_ ? h.after_test_epoch(runner_, metrics) : h.after_val_epoch(runner_, metrics);
  });
  runner_.call_hooks([&](Hook& h) { is_test_ ? h.after_test(runner_) : h.after_val(runner_); });
  return metrics;
}

namespace {

class EpochBasedTrainLoop : public TrainLoop {
 public:
  EpochBasedTrainLoop(Runner& runner, Args& args) : TrainLoop(runner) {
    max_epochs_ = args.require<int64_t>("max_epochs");
    val_begin_ = args.get<int64_t>("val_begin", 1);
    val_interval_ = args.get<int64_t>("val_interval", 1);
    check_interval_ = args.get<int64_t>("check_interval", 50);
    RAZOR_CHECK(check_interval_ >= 1, args.where("check_interval"), ": must be >= 1");
    RAZOR_CHECK(max_epochs_ >= 1, args.where("max_epochs"), ": must be >= 1, got ", max_epochs_);
    RAZOR_CHECK(val_interval_ >= 1, args.where("val_interval"), ": must be >= 1");
  }

  void run() override {
    runner_.call_hooks([&](Hook& h) { h.before_train(runner_); });
    DataLoader& loader = runner_.train_dataloader();
    const int64_t per_epoch = loader.size();
    RAZOR_CHECK(per_epoch > 0, "train_dataloader yields no batches");
    // A checkpoint taken by iteration may sit inside an epoch: resume at the next batch of
    // that epoch's shuffle.
    int64_t skip = batches_done_in_epoch(per_epoch);
    while (epoch_ < max_epochs_) {
      runner_.call_hooks([&](Hook& h) { h.before_train_epoch(runner_); });
      runner_.model().train();
      loader.set_epoch(epoch_);
      loader.start(skip);
      int64_t batch_idx = skip;
      skip = 0;
      while (auto batch = loader.next()) run_iter(batch_idx++, *batch);
      ++epoch_;
      runner_.call_hooks([&](Hook& h) { h.after_train_epoch(runner_); });
      maybe_validate(epoch_, max_epochs_);
    }
    runner_.call_hooks([&](Hook& h) { h.after_train(runner_); });
  }

  int64_t max_epochs() const override { return max_epochs_; }
  int64_t max_iters() const override { return max_epochs_ * runner_.train_dataloader().size(); }
  bool by_epoch() const override { return true; }

 private:
  int64_t max_epochs_;
};

class IterBasedTrainLoop : public TrainLoop {
 public:
  IterBasedTrainLoop(Runner& runner, Args& args) : TrainLoop(runner) {
    max_iters_ = args.require<int64_t>("max_iters");
    val_begin_ = args.get<int64_t>("val_begin", 1);
    val_interval_ = args.get<int64_t>("val_interval", 1000);
    check_interval_ = args.get<int64_t>("check_interval", 50);
    RAZOR_CHECK(check_interval_ >= 1, args.where("check_interval"), ": must be >= 1");
    RAZOR_CHECK(max_iters_ >= 1, args.where("max_iters"), ": must be >= 1, got ", max_iters_);
    RAZOR_CHECK(val_interval_ >= 1, args.where("val_interval"), ": must be >= 1");
  }

  void run() override {
    runner_.call_hooks([&](Hook& h) { h.before_train(runner_); });
    DataLoader& loader = runner_.train_dataloader();
    const int64_t per_epoch = loader.size();
    RAZOR_CHECK(per_epoch > 0, "train_dataloader yields no batches");
    // Resuming: continue inside the epoch where the checkpoint was taken.
    epoch_ = iter_ / per_epoch;
    int64_t batch_idx = iter_ % per_epoch;
    runner_.call_hooks([&](Hook& h) { h.before_train_epoch(runner_); });
    runner_.model().train();
    loader.set_epoch(epoch_);
    loader.start(batch_idx);
    while (iter_ < max_iters_) {
      auto batch = loader.next();
      if (!batch) {
        ++epoch_;
        loader.set_epoch(epoch_);
        loader.start();
        batch_idx = 0;
        continue;
      }
      run_iter(batch_idx++, *batch);
      maybe_validate(iter_, max_iters_);
    }
    runner_.call_hooks([&](Hook& h) { h.after_train_epoch(runner_); });
    runner_.call_hooks([&](Hook& h) { h.after_train(runner_); });
  }

  int64_t max_epochs() const override {
    const int64_t per_epoch = runner_.train_dataloader().size();
    return (max_iters_ + per_epoch - 1) / per_epoch;
  }
  int64_t max_iters() const override { return max_iters_; }
  bool by_epoch() const override { return false; }

 private:
  int64_t max_iters_;
};

}  // namespace

Registry<Loop>& loop_registry() {
  static Registry<Loop> registry("loops");
  return registry;
}

void register_loops() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = loop_registry();
  registry.add("EpochBasedTrainLoop", [](Args& args, const BuildContext& ctx) {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<EpochBasedTrainLoop>(*ctx.runner, args);
  });
  registry.add("IterBasedTrainLoop", [](Args& args, const BuildContext& ctx) {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<IterBasedTrainLoop>(*ctx.runner, args);
  });
  registry.add("ValLoop", [](Args&, const BuildContext& ctx) {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<EvalLoop>(*ctx.runner, /*is_test=*/false);
  });
  registry.add("TestLoop", [](Args&, const BuildContext& ctx) {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<EvalLoop>(*ctx.runner, /*is_test=*/true);
  });
}

}  // namespace razor
