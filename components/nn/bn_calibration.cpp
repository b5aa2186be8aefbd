#include "components/nn/bn_calibration.h"

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "components/nn/batch_norm.h"
#include "engine/dist.h"
#include "engine/error.h"

namespace razor {

namespace {

/// The calibration over the batches `next` yields (on the model's device) until it yields
/// none or `num_samples` images were run (the last batch cut to fit).
BNCalibrationReport calibrate(Model& model, const std::function<std::optional<Batch>()>& next,
                              int64_t num_samples, bool across_ranks) {
  RAZOR_CHECK(num_samples > 0, "BN calibration needs a positive number of samples, got ",
              num_samples);
  struct Sums {
    nn::BatchNorm2d* norm;
    torch::Tensor mean, var;  // sample-weighted sums (double)
    int64_t count = 0;
  };
  std::vector<Sums> sums;
  std::vector<nn::HookHandle> handles;
  for (const auto& module : model.modules(/*include_self=*/false)) {
    auto* norm = dynamic_cast<nn::BatchNorm2d*>(module.get());
    if (!norm) continue;
    sums.push_back({norm, {}, {}, 0});
  }
  // Each BN computes its batch's mean and unbiased variance in its training forward anyway:
  // with momentum 1 (and no cross-rank sync, each rank calibrates on its own images) its
  // running statistics become exactly those, read after the batch. A second pass over the
  // input (var_mean) cost more than the forward itself.
  struct Saved {
    double momentum;
    bool sync;
  };
  std::vector<Saved> saved;
  for (auto& s : sums) {
    saved.push_back({s.norm->momentum(), s.norm->sync_across_ranks()});
    s.norm->set_momentum(1.0);
    s.norm->set_sync_across_ranks(false);
  }
  auto restore = [&] {
    for (auto& h : handles) h.remove();
    for (size_t i = 0; i < sums.size(); ++i) {
      sums[i].norm->set_momentum(saved[i].momentum);
      sums[i].norm->set_sync_across_ranks(saved[i].sync);
    }
  };
  for (size_t i = 0; i < sums.size(); ++i) {
    // (1 - momentum) * running is 0 only for finite running values: start each batch clean.
    handles.push_back(sums[i].norm->add_forward_pre_hook([&sums, i](nn::Module&, nn::Inputs&) {
      sums[i].norm->running_mean.zero_();
      sums[i].norm->running_var.zero_();
    }, /*keeps_tensors=*/false));
    handles.push_back(sums[i].norm->add_forward_hook([&sums, i](nn::Module&, const nn::Inputs& in, torch::Tensor&) {
      const int64_t n = in.at(0).size(0);
      Sums& s = sums[i];
      // Only the per-channel results are summed in double.
      const torch::Tensor mean = s.norm->running_mean.to(torch::kDouble) * static_cast<double>(n);
      const torch::Tensor var = s.norm->running_var.to(torch::kDouble) * static_cast<double>(n);
      s.mean = s.mean.defined() ? s.mean + mean : mean;
      s.var = s.var.defined() ? s.var + var : var;
      s.count += n;
    }, /*keeps_tensors=*/false));
  }
  const bool was_training = model.is_training();
  model.train(true);
  int64_t seen = 0;
  try {
    torch::NoGradGuard no_grad;
    while (seen < num_samples) {
      auto batch = next();
      if (!batch) break;
      const int64_t keep = std::min<int64_t>(batch->size(), num_samples - seen);
      model.predict(keep < batch->size() ? first_samples(*batch, keep) : *batch);
      seen += keep;
    }
  } catch (...) {
    restore();
    model.train(was_training);
    throw;
  }
  restore();
  model.train(was_training);

  BNCalibrationReport report;
  report.samples = seen;
  torch::NoGradGuard no_grad;
  for (auto& s : sums) {
    // Every rank must take part in the same reductions: a BatchNorm that ran nowhere has
    // count 0 everywhere (the subnet is the same on every rank).
    if (across_ranks && dist::world_size() > 1) {
      torch::Tensor count = torch::full({1}, s.count, torch::kDouble);
      dist::all_reduce(count);
      if (count.item<double>() == 0) continue;
      const int64_t c = s.norm->num_features();
      torch::Tensor packed = s.count ? torch::cat({s.mean, s.var}) : torch::zeros({2 * c}, torch::kDouble);
      dist::all_reduce(packed);
      s.mean = packed.narrow(0, 0, c);
      s.var = packed.narrow(0, c, c);
      s.count = static_cast<int64_t>(count.item<double>());
    }
    if (s.count == 0) continue;
    s.norm->running_mean.copy_(s.mean / static_cast<double>(s.count));
    s.norm->running_var.copy_(s.var / static_cast<double>(s.count));
    ++report.norms;
  }
  return report;
}

}  // namespace

Batch first_samples(const Batch& batch, int64_t count) {
  Batch b = batch;
  b.inputs = b.inputs.narrow(0, 0, count);
  b.targets = b.targets.narrow(0, 0, count);
  if (b.indices.defined()) b.indices = b.indices.narrow(0, 0, count);
  return b;
}

BNCalibrationReport calibrate_bn_statistics(Model& model, DataLoader& loader, int64_t num_samples,
                                            const std::function<Batch(const Batch&)>& to_device,
                                            bool across_ranks) {
  loader.set_epoch(0);
  loader.start();
  return calibrate(
      model,
      [&]() -> std::optional<Batch> {
        auto batch = loader.next();
        if (!batch) return std::nullopt;
        return to_device(*batch);
      },
      num_samples, across_ranks);
}

BNCalibrationReport calibrate_bn_statistics(Model& model, const std::vector<Batch>& batches,
                                            int64_t num_samples, bool across_ranks) {
  size_t i = 0;
  return calibrate(
      model,
      [&]() -> std::optional<Batch> {
        if (i == batches.size()) return std::nullopt;
        return batches[i++];
      },
      num_samples, across_ranks);
}

}  // namespace razor
