#include "components/nn/bn_calibration.h"

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "engine/dist.h"
#include "engine/error.h"

namespace razor {

BNStatisticsRecorder::BNStatisticsRecorder(std::vector<nn::BatchNorm2d*> norms)
    : norms_(std::move(norms)),
      mean_sums_(norms_.size()),
      var_sums_(norms_.size()),
      counts_(norms_.size(), 0),
      batches_(norms_.size(), 0) {
  // Each BN computes its batch's mean and unbiased variance in its training forward anyway:
  // with momentum 1 its running statistics become exactly those, read after the batch. A
  // second pass over the input (var_mean) cost more than the forward itself.
  for (size_t i = 0; i < norms_.size(); ++i) {
    nn::BatchNorm2d* norm = norms_[i];
    momenta_.push_back(norm->momentum());
    syncs_.push_back(norm->sync_across_ranks());
    norm->set_momentum(1.0);
    norm->set_sync_across_ranks(false);
    // (1 - momentum) * running is 0 only for finite running values: start each batch clean.
    handles_.push_back(norm->add_forward_pre_hook([norm](nn::Module&, nn::Inputs&) {
      norm->running_mean.zero_();
      norm->running_var.zero_();
    }, /*keeps_tensors=*/false));
    handles_.push_back(norm->add_forward_hook([this, i](nn::Module&, const nn::Inputs& in, torch::Tensor&) {
      const int64_t n = in.at(0).size(0);
      // Only the per-channel results are summed in double.
      const torch::Tensor mean = norms_[i]->running_mean.to(torch::kDouble) * static_cast<double>(n);
      const torch::Tensor var = norms_[i]->running_var.to(torch::kDouble) * static_cast<double>(n);
      mean_sums_[i] = mean_sums_[i].defined() ? mean_sums_[i] + mean : mean;
      var_sums_[i] = var_sums_[i].defined() ? var_sums_[i] + var : var;
      counts_[i] += n;
      ++batches_[i];
    }, /*keeps_tensors=*/false));
  }
}

BNStatisticsRecorder::~BNStatisticsRecorder() { stop(); }

void BNStatisticsRecorder::stop() {
  if (!recording_) return;
  recording_ = false;
  for (auto& h : handles_) h.remove();
  for (size_t i = 0; i < norms_.size(); ++i) {
    norms_[i]->set_momentum(momenta_[i]);
    norms_[i]->set_sync_across_ranks(syncs_[i]);
  }
}

int64_t BNStatisticsRecorder::apply(bool across_ranks) {
  stop();
  torch::NoGradGuard no_grad;
  int64_t set = 0;
  for (size_t i = 0; i < norms_.size(); ++i) {
    nn::BatchNorm2d* norm = norms_[i];
    torch::Tensor mean = mean_sums_[i], var = var_sums_[i];
    int64_t count = counts_[i];
    // Every rank must take part in the same reductions: a BatchNorm that ran nowhere has
    // count 0 everywhere (the subnet is the same on every rank).
    if (across_ranks && dist::world_size() > 1) {
      torch::Tensor total = torch::full({1}, count, torch::kDouble);
      dist::all_reduce(total);
      if (total.item<double>() == 0) continue;
      const int64_t c = norm->num_features();
      torch::Tensor packed = count ? torch::cat({mean, var}) : torch::zeros({2 * c}, torch::kDouble);
      dist::all_reduce(packed);
      mean = packed.narrow(0, 0, c);
      var = packed.narrow(0, c, c);
      count = static_cast<int64_t>(total.item<double>());
    }
    if (count == 0) continue;
    norm->running_mean.copy_(mean / static_cast<double>(count));
    norm->running_var.copy_(var / static_cast<double>(count));
    ++set;
  }
  return set;
}

std::vector<nn::BatchNorm2d*> batch_norms(torch::nn::Module& root) {
  std::vector<nn::BatchNorm2d*> out;
  // modules(include_self) would need `root` held by a shared_ptr.
  if (auto* norm = dynamic_cast<nn::BatchNorm2d*>(&root)) out.push_back(norm);
  for (const auto& module : root.modules(/*include_self=*/false)) {
    if (auto* norm = dynamic_cast<nn::BatchNorm2d*>(module.get())) out.push_back(norm);
  }
  return out;
}

namespace {

/// The calibration over the batches `next` yields (on the model's device) until it yields
/// none or `num_samples` images were run (the last batch cut to fit).
BNCalibrationReport calibrate(Model& model, const std::function<std::optional<Batch>()>& next,
                              int64_t num_samples, bool across_ranks) {
  RAZOR_CHECK(num_samples > 0, "BN calibration needs a positive number of samples, got ",
              num_samples);
  const bool was_training = model.is_training();
  BNCalibrationReport report;
  {
    BNStatisticsRecorder recorder(batch_norms(model));
    model.train(true);
    try {
      torch::NoGradGuard no_grad;
      while (report.samples < num_samples) {
        auto batch = next();
        if (!batch) break;
        const int64_t keep = std::min<int64_t>(batch->size(), num_samples - report.samples);
        model.predict(keep < batch->size() ? first_samples(*batch, keep) : *batch);
        report.samples += keep;
      }
    } catch (...) {
      model.train(was_training);
      throw;
    }
    model.train(was_training);
    report.norms = recorder.apply(across_ranks);
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
