#include "algorithms/quantization/quant_loops.h"

#include <map>
#include <optional>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/quantization/adaround.h"
#include "algorithms/quantization/bias_correction.h"
#include "algorithms/quantization/mixed_precision.h"
#include "algorithms/quantization/mm_architecture_quant.h"
#include "components/quant/learnable_fake_quantize.h"
#include "engine/checkpoint.h"
#include "engine/data.h"
#include "engine/dist.h"
#include "engine/loop.h"
#include "engine/runner.h"
#include "engine/strings.h"

namespace razor {

namespace {

MMArchitectureQuant& quant_model(Runner& runner, const char* loop) {
  auto* model = dynamic_cast<MMArchitectureQuant*>(&runner.model());
  RAZOR_CHECK(model, runner.config().file, ": ", loop, " runs a quantised model (model.type = \"MMArchitectureQuant\")");
  return *model;
}

class PTQLoop : public TrainLoop {
 public:
  PTQLoop(Runner& runner, Args& args, const BuildContext& ctx) : TrainLoop(runner) {
    // A loader table of its own (MMRazor's calibrate_dataloader = dict(...)), or the name of
    // one of the config's loaders. Every rank calibrates on the same, whole data set.
    if (args.has("calibrate_dataloader") && args.table().at("calibrate_dataloader").is_object()) {
      Args loader = args.sub("calibrate_dataloader");
      BuildContext whole = ctx;
      whole.rank = 0;
      whole.world_size = 1;
      own_loader_ = dataloader_registry().build(loader, whole, "DataLoader");
      loader_key_ = "train_cfg.calibrate_dataloader";
    } else {
      loader_key_ = args.get("calibrate_dataloader", "train_dataloader");
    }
    calibrate_steps_ = args.get<int64_t>("calibrate_steps", 32);
    RAZOR_CHECK(calibrate_steps_ >= 1, args.where("calibrate_steps"), ": must be >= 1, got ", calibrate_steps_);
    checkpoint_ = args.get("checkpoint_name", "model_ptq.pth");
    // Refinements after calibration, on the first refine_steps calibration batches.
    bias_correction_ = args.get("bias_correction", false);
    if (args.has("adaround")) {
      const Json& value = args.table().at("adaround");
      if (value.is_boolean()) {
        adaround_ = value.get<bool>();
        args.accept("adaround");
      } else if (value.is_object()) {
        adaround_ = true;
        adaround_options_ = AdaRoundOptions::parse(args, "adaround");
      } else {
        args.fail("adaround", "must be true, false or a table { iters, batch_size, lr, reg, beta, warmup }");
      }
    }
    if (args.has("mixed_precision")) {
      mixed_precision_ = MixedPrecisionOptions::parse(args, "mixed_precision");
    }
    refine_steps_ = args.get<int64_t>("refine_steps", 8);
    RAZOR_CHECK(refine_steps_ >= 1, args.where("refine_steps"), ": must be >= 1, got ", refine_steps_);
    args.finish();
  }

  void run() override {
    MMArchitectureQuant& model = quant_model(runner_, "PTQLoop");
    // Every rank calibrates on the same batches, so the scales agree without a reduction.
    DataLoader& loader = own_loader_ ? *own_loader_ : runner_.whole_dataloader(loader_key_);
    model.eval();
    quant::enable_fake_quant(model, true);
    quant::enable_observer(model, true);
    int64_t steps = 0;
    std::vector<torch::Tensor> kept;
    {
      torch::NoGradGuard no_grad;
      loader.set_epoch(0);
      loader.start();
      while (steps < calibrate_steps_) {
        auto batch = loader.next();
        if (!batch) break;
        const torch::Tensor inputs = runner_.to_device(*batch).inputs;
        model.forward_tensor(inputs);
        if ((adaround_ || bias_correction_ || mixed_precision_) && steps < refine_steps_) kept.push_back(inputs);
        ++steps;
      }
    }
    RAZOR_CHECK(steps > 0, runner_.config().file, ": train_cfg.calibrate_dataloader (\"", loader_key_,
                "\") yielded no batch to calibrate on");
    if (steps < calibrate_steps_) {
      spdlog::warn("PTQ: the calibration loader ran out after {} of {} batches", steps, calibrate_steps_);
    }
    quant::enable_observer(model, false);
    spdlog::info("PTQ: calibrated {} quantisers on {} batches", quant::fake_quantizers(model).size(), steps);
    if (mixed_precision_) {
      const MixedPrecisionReport r = assign_weight_bits(model, kept, *mixed_precision_);
      Json layers = Json::array();
      std::map<int64_t, int64_t> histogram;
      for (const auto& layer : r.layers) {
        ++histogram[layer.bits];
        layers.push_back({{"layer", layer.path}, {"weights", layer.weights}, {"bits", layer.bits},
                          {"sensitivity", layer.sensitivity}});
        spdlog::info("PTQ: mixed precision: {} {} bits", layer.path, layer.bits);
      }
      std::vector<std::string> counts;
      for (const auto& [bits, n] : histogram) counts.push_back(std::to_string(n) + " at " + std::to_string(bits));
      spdlog::info("PTQ: mixed precision on {} batches: {} layers ({}); weights at {:.3f} of their {}-bit size "
                   "(budget {:.3f}); {:.0f} bytes",
                   kept.size(), r.layers.size(), join(counts, ", "), r.size_ratio, mixed_precision_->bits.back(),
                   mixed_precision_->size_ratio, model.weight_bytes());
      if (runner_.write_files()) {
        const Json out = {{"bits", mixed_precision_->bits}, {"size_ratio", r.size_ratio},
                          {"budget", mixed_precision_->size_ratio}, {"layers", layers}};
        write_file_atomically(runner_.work_dir() + "/mixed_precision.json", out.dump(2) + "\n");
      }
    }
    if (adaround_) {
      const AdaRoundReport r = adaround(model, kept, adaround_options_);
      spdlog::info("PTQ: AdaRound over {} layers on {} batches: {} of {} weights rounded away from nearest; output "
                   "error {:.4g} -> {:.4g}",
                   r.layers, kept.size(), r.flipped, r.weights, r.nearest_error, r.adaround_error);
    }
    if (bias_correction_) {
      const BiasCorrectionReport r = correct_biases(model, kept);
      spdlog::info("PTQ: bias correction of {} layers on {} batches ({} without bias or BatchNorm left alone); "
                   "largest shift {:.3g}",
                   r.corrected, kept.size(), r.skipped, r.max_shift);
    }
    epoch_ = 1;
    iter_ = steps;
    if (runner_.write_files()) spdlog::info("PTQ: saved {}", runner_.save_checkpoint(checkpoint_));
    dist::barrier();
    maybe_validate(1, 1);
  }

  int64_t max_epochs() const override { return 1; }
  int64_t max_iters() const override { return calibrate_steps_; }
  bool by_epoch() const override { return true; }
  bool trains_model() const override { return false; }

 private:
  std::string loader_key_;
  std::shared_ptr<DataLoader> own_loader_;
  int64_t calibrate_steps_ = 32;
  std::string checkpoint_;
  bool bias_correction_ = false;
  bool adaround_ = false;
  AdaRoundOptions adaround_options_;
  std::optional<MixedPrecisionOptions> mixed_precision_;
  int64_t refine_steps_ = 8;
};

/// The QAT switches of QATEpochBasedLoop and LSQEpochBasedLoop, at each epoch and iteration.
class QatControlHook : public Hook {
 public:
  QatControlHook(int64_t disable_observer_begin, int64_t freeze_bn_begin, bool lsq)
      : disable_observer_begin_(disable_observer_begin), freeze_bn_begin_(freeze_bn_begin), lsq_(lsq) {
    set_priority(kHigh);
  }
  std::string name() const override { return lsq_ ? "LSQEpochBasedLoop" : "QATEpochBasedLoop"; }

  void before_train_epoch(Runner& runner) override {
    MMArchitectureQuant& model = quant_model(runner, lsq_ ? "LSQEpochBasedLoop" : "QATEpochBasedLoop");
    const int64_t epoch = runner.epoch() + 1;
    if (!lsq_) {
      quant::enable_fake_quant(model, true);
      quant::enable_observer(model, !(disable_observer_begin_ > 0 && epoch >= disable_observer_begin_));
    }
    if (freeze_bn_begin_ > 0 && epoch >= freeze_bn_begin_ && !model.bn_frozen()) {
      spdlog::info("QAT: BatchNorm statistics frozen from epoch {}", epoch);
      model.freeze_bn(true);
    }
  }

  void before_train_iter(Runner& runner, int64_t, const Batch&) override {
    if (!lsq_) return;
    MMArchitectureQuant& model = quant_model(runner, "LSQEpochBasedLoop");
    // The run's first batch sets the scales from the data (2 mean|x| / sqrt(qmax)); every
    // later one, a resumed run's included, learns them.
    if (runner.iter() == 0) {
      quant::enable_static_estimate(model);
    } else if (!learning_) {
      quant::enable_param_learning(model);
      learning_ = true;
    }
  }

 private:
  int64_t disable_observer_begin_, freeze_bn_begin_;
  bool lsq_;
  bool learning_ = false;
};

std::shared_ptr<Loop> build_qat_loop(Args& args, const BuildContext& ctx, bool lsq) {
  RAZOR_ASSERT(ctx.runner);
  const int64_t disable_observer_begin = lsq ? -1 : args.get<int64_t>("disable_observer_begin", -1);
  const int64_t freeze_bn_begin = args.get<int64_t>("freeze_bn_begin", -1);
  // The other keys are the epoch loop's; it checks them.
  for (const auto& item : args.table().items()) args.accept(item.key());
  Json inner = args.table();
  inner.erase("disable_observer_begin");
  inner.erase("freeze_bn_begin");
  inner["type"] = "EpochBasedTrainLoop";
  Args inner_args(inner, args.path(), args.config());
  auto loop = loop_registry().build(inner_args, ctx);
  ctx.runner->register_hook(std::make_shared<QatControlHook>(disable_observer_begin, freeze_bn_begin, lsq));
  return loop;
}

class QATValLoop : public EvalLoop {
 public:
  QATValLoop(Runner& runner, bool is_test) : EvalLoop(runner, is_test) {}

  Metrics run() override {
    MMArchitectureQuant& model = quant_model(runner_, is_test_ ? "QATTestLoop" : "QATValLoop");
    QuantSwitches switches(model);
    switches.all_off();
    const Metrics original = evaluate_without_hooks();
    switches.restore();
    switches.observers_off();
    const Metrics quantised = EvalLoop::run();
    switches.restore();
    Metrics all;
    for (const auto& item : quantised) all["qat." + item.first] = item.second;
    for (const auto& item : original) all["original." + item.first] = item.second;
    std::vector<std::string> parts;
    for (const auto& item : all) parts.push_back(item.first + ": " + format_number(item.second, 4));
    spdlog::info("{} of the quantised and the float model: {}", is_test_ ? "test" : "validation", join(parts, "  "));
    for (const auto& item : all) runner_.message_hub().scalars[item.first] = item.second;
    return all;
  }

 private:
  /// One pass with the metrics only (the hooks see the quantised pass).
  Metrics evaluate_without_hooks() {
    Model& model = runner_.model();
    DataLoader& loader = is_test_ ? runner_.test_dataloader() : runner_.val_dataloader();
    Evaluator& evaluator = is_test_ ? runner_.test_evaluator() : runner_.val_evaluator();
    const bool was_training = model.is_training();
    model.eval();
    evaluator.reset();
    {
      torch::NoGradGuard no_grad;
      loader.set_epoch(0);
      loader.start();
      while (auto batch = loader.next()) {
        const Batch on_device = runner_.to_device(*batch);
        evaluator.process(model.predict(on_device), on_device);
      }
    }
    model.train(was_training);
    return evaluator.compute();
  }
};

}  // namespace

void register_quant_loops() {
  auto& registry = loop_registry();
  registry.add("PTQLoop", [](Args& args, const BuildContext& ctx) -> std::shared_ptr<Loop> {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<PTQLoop>(*ctx.runner, args, ctx);
  });
  registry.add("QATEpochBasedLoop", [](Args& args, const BuildContext& ctx) { return build_qat_loop(args, ctx, false); });
  registry.add("LSQEpochBasedLoop", [](Args& args, const BuildContext& ctx) { return build_qat_loop(args, ctx, true); });
  registry.add("QATValLoop", [](Args&, const BuildContext& ctx) -> std::shared_ptr<Loop> {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<QATValLoop>(*ctx.runner, false);
  });
  registry.add("QATTestLoop", [](Args&, const BuildContext& ctx) -> std::shared_ptr<Loop> {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<QATValLoop>(*ctx.runner, true);
  });
}

}  // namespace razor
