#pragma once
// MMRazor's MLPHandler: a small MLP (Linear D→H, ReLU, `num_hidden_layers` × (Linear H→H,
// ReLU), Linear H→1) trained full-batch with Adam under a cosine learning rate for
// `epoch` steps, keeping the weights of the step with the lowest loss on a held-out
// `1 - data_split` of the samples (on the training samples when none are held out).
//
// Departures, for a handful of training subnets: the targets are standardised before
// training (the MLP fits scores of ~80 as well as of ~0.8), and the loss is MSE by default
// (MMRazor's SmoothL1 as loss = "smooth_l1"). Weights start as U(-1/√fan_in, 1/√fan_in),
// biases 0 (MMRazor's MLP.init_weights). Every random draw (initialisation, the split) comes
// from a generator seeded by fit()'s seed: a fit is deterministic.
#include <vector>

#include "components/predictors/predictor_handler.h"

namespace razor {

struct MLPHandlerOptions {
  /// Width of every hidden layer (MMRazor's model_cfg.hidden_features).
  int64_t hidden_features = 300;
  /// Hidden H→H layers after the first (MMRazor's model_cfg.num_hidden_layers).
  int64_t num_hidden_layers = 2;
  /// Adam's learning rate at step 0; cosine-annealed to 0 over `epoch` steps.
  double lr = 8e-4;
  /// "mse" or "smooth_l1" (β = 1, mmdet's SmoothL1Loss).
  std::string loss = "mse";
  /// Full-batch training steps (MetricPredictor's fit_cfg.epoch).
  int64_t epoch = 2000;
  /// Share of the samples trained on; the rest pick the best step (fit_cfg.data_split).
  double data_split = 0.8;

  // clang-format off
  MLPHandlerOptions& with_hidden_features(int64_t v) { hidden_features = v; return *this; }
  MLPHandlerOptions& with_num_hidden_layers(int64_t v) { num_hidden_layers = v; return *this; }
  MLPHandlerOptions& with_lr(double v) { lr = v; return *this; }
  MLPHandlerOptions& with_loss(std::string v) { loss = std::move(v); return *this; }
  MLPHandlerOptions& with_epoch(int64_t v) { epoch = v; return *this; }
  MLPHandlerOptions& with_data_split(double v) { data_split = v; return *this; }
  // clang-format on
};

/// Reads `handler_cfg = { type = "MLPHandler", model_cfg = { hidden_features = 300,
/// num_hidden_layers = 2 }, lr = 8e-4, loss = "mse" }` (epoch and data_split come from the
/// predictor's fit_cfg, as in MMRazor).
MLPHandlerOptions mlp_options_from(Args& args);

class MLPHandler : public PredictorHandler {
 public:
  explicit MLPHandler(MLPHandlerOptions options = {});

  std::string type() const override { return "MLPHandler"; }
  void fit(const torch::Tensor& inputs, const torch::Tensor& targets, uint64_t seed) override;
  torch::Tensor predict(const torch::Tensor& inputs) const override;
  bool fitted() const override { return !weights_.empty(); }
  Json state() const override;
  void load_state(const Json& state, const std::string& origin) override;
  /// fit_cfg = { epoch = 2000, data_split = 0.8 }.
  void read_fit_cfg(Args& fit_cfg) override;

  const MLPHandlerOptions& options() const { return options_; }
  /// The loss of the kept weights on the samples that chose them (standardised targets).
  double best_loss() const { return best_loss_; }

 private:
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights,
                        const std::vector<torch::Tensor>& biases) const;
  torch::Tensor loss(const torch::Tensor& prediction, const torch::Tensor& target) const;

  MLPHandlerOptions options_;
  std::vector<torch::Tensor> weights_, biases_;  // float32, out x in and out
  double y_mean_ = 0, y_scale_ = 1;
  double best_loss_ = 0;
};

}  // namespace razor
