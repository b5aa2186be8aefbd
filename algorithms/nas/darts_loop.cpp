#include "algorithms/nas/darts_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "algorithms/nas/darts.h"
#include "components/mutators/fix_subnet.h"
#include "engine/runner.h"

namespace razor {

namespace {

class DartsEpochBasedTrainLoop : public TrainLoop {
 public:
  DartsEpochBasedTrainLoop(Runner& runner, Args& args, const BuildContext& context)
      : TrainLoop(runner) {
    max_epochs_ = args.require<int64_t>("max_epochs");
    val_begin_ = args.get<int64_t>("val_begin", 1);
    val_interval_ = args.get<int64_t>("val_interval", 1);
    check_interval_ = args.get<int64_t>("check_interval", 50);
    RAZOR_CHECK(check_interval_ >= 1, args.where("check_interval"), ": must be >= 1");
    RAZOR_CHECK(max_epochs_ >= 1, args.where("max_epochs"), ": must be >= 1, got ", max_epochs_);
    RAZOR_CHECK(val_interval_ >= 1, args.where("val_interval"), ": must be >= 1");
    Args loader_args = args.sub("mutator_dataloader");
    BuildContext loader_context = context;
    loader_context.seed = context.seed + 1;  // another shuffle than the weights' half
    loader_context.even_shards = true;
    mutator_loader_ = dataloader_registry().build(loader_args, loader_context, "DataLoader");
  }

  void run() override {
    runner_.call_hooks([&](Hook& h) { h.before_train(runner_); });
    auto* darts = dynamic_cast<Darts*>(&runner_.model());
    RAZOR_CHECK(darts != nullptr,
                "train_cfg: DartsEpochBasedTrainLoop trains a model of type \"Darts\" (it hands "
                "the mutator's batches to it)");
    DataLoader& loader = runner_.train_dataloader();
    const int64_t per_epoch = epoch_length();
    RAZOR_CHECK(per_epoch > 0,
                "train_dataloader or train_cfg.mutator_dataloader yields no batches");
    int64_t skip = batches_done_in_epoch(per_epoch);
    while (epoch_ < max_epochs_) {
      runner_.call_hooks([&](Hook& h) { h.before_train_epoch(runner_); });
      runner_.model().train();
      loader.set_epoch(epoch_);
      loader.start(skip);
      mutator_loader_->set_epoch(epoch_);
      mutator_loader_->start(skip);
      for (int64_t batch_idx = skip; batch_idx < per_epoch; ++batch_idx) {
        auto batch = loader.next();
        auto mutator_batch = mutator_loader_->next();
        RAZOR_ASSERT(batch && mutator_batch);
        darts->set_mutator_batch(runner_.to_device(*mutator_batch));
        run_iter(batch_idx, *batch);
      }
      skip = 0;
      check_finite();  // run_iter checks at the end of the train loader, which may be longer
      ++epoch_;
      runner_.call_hooks([&](Hook& h) { h.after_train_epoch(runner_); });
      maybe_validate(epoch_, max_epochs_);
    }
    write_subnet(*darts);
    runner_.call_hooks([&](Hook& h) { h.after_train(runner_); });
  }

  int64_t max_epochs() const override { return max_epochs_; }
  int64_t max_iters() const override { return max_epochs_ * epoch_length(); }
  bool by_epoch() const override { return true; }

 private:
  int64_t epoch_length() const {
    return std::min(runner_.train_dataloader().size(), mutator_loader_->size());
  }

  void write_subnet(Darts& darts) {
    const Json subnet = derive_subnet(darts.mutator());
    if (!runner_.write_files()) return;
    const auto path = (std::filesystem::path(runner_.work_dir()) / "best_fix_subnet.yaml").string();
    write_subnet_file(path, subnet);
    spdlog::info("The searched subnet is saved to {}", path);
  }

  int64_t max_epochs_;
  std::shared_ptr<DataLoader> mutator_loader_;
};

}  // namespace

Json derive_subnet(NasMutator& mutator) {
  mutator.set_choices(mutator.sample_choices("random"));
  return mutator.current_subnet();
}

DumpSubnetHook::DumpSubnetHook(int64_t interval, bool by_epoch, int64_t max_keep_subnets)
    : interval_(interval), by_epoch_(by_epoch), max_keep_subnets_(max_keep_subnets) {
  RAZOR_CHECK(interval >= 1, "DumpSubnetHook: interval must be >= 1, got ", interval);
}

void DumpSubnetHook::after_train_epoch(Runner& runner) {
  if (by_epoch_ && runner.epoch() % interval_ == 0) dump(runner, "epoch", runner.epoch());
}

void DumpSubnetHook::after_train_iter(Runner& runner, int64_t, const Batch&, const LossMap&) {
  if (!by_epoch_ && runner.iter() % interval_ == 0) dump(runner, "iter", runner.iter());
}

void DumpSubnetHook::dump(Runner& runner, const std::string& unit, int64_t count) {
  auto* nas = dynamic_cast<NasAlgorithm*>(&runner.model());
  RAZOR_CHECK(nas != nullptr, "custom_hooks: DumpSubnetHook needs a NAS algorithm as the model");
  const Json subnet = derive_subnet(nas->mutator());
  if (!runner.write_files()) return;
  const std::filesystem::path dir(runner.work_dir());
  auto file = [&](int64_t n) {
    return dir / ("subnet_" + unit + "_" + std::to_string(n) + ".yaml");
  };
  write_subnet_file(file(count).string(), subnet);
  // The files are named by count, so the one to drop is known without remembering any.
  if (max_keep_subnets_ > 0) {
    const int64_t old = count - max_keep_subnets_ * interval_;
    std::error_code ignored;
    if (old > 0) std::filesystem::remove(file(old), ignored);
  }
}

void register_darts_loop() {
  static bool done = false;
  if (done) return;
  done = true;
  loop_registry().add("DartsEpochBasedTrainLoop", [](Args& args, const BuildContext& context) {
    RAZOR_ASSERT(context.runner);
    return std::make_shared<DartsEpochBasedTrainLoop>(*context.runner, args, context);
  });
}

void register_dump_subnet_hook() {
  static bool done = false;
  if (done) return;
  done = true;
  hook_registry().add("DumpSubnetHook", [](Args& args, const BuildContext&) {
    const int64_t interval = args.get<int64_t>("interval", 1);
    if (interval < 1) args.fail("interval", "must be >= 1");
    const int64_t max_keep = args.get<int64_t>("max_keep_subnets", -1);
    if (max_keep == 0 || max_keep < -1) args.fail("max_keep_subnets", "must be >= 1, or -1 (all)");
    auto hook = std::make_shared<DumpSubnetHook>(interval, args.get<bool>("by_epoch", true),
                                                 max_keep);
    hook->set_priority(parse_priority(args, "priority", kVeryLow));
    return hook;
  });
}

}  // namespace razor
