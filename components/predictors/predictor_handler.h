#pragma once
// The regression model behind a MetricPredictor (MMRazor's predictor handlers): it fits
// encoded subnets (one row per subnet) to their scores and predicts the score of new rows.
// Handlers are built from `handler_cfg` tables by type, through predictor_handler_registry().
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "engine/args.h"
#include "engine/config.h"
#include "engine/registry.h"

namespace razor {

class PredictorHandler {
 public:
  virtual ~PredictorHandler() = default;

  /// The registered type name ("GaussProcessHandler").
  virtual std::string type() const = 0;
  /// Fits rows of `inputs` (N x D, float64, CPU) to `targets` (N, float64). `seed` is the
  /// only source of randomness a handler may use (the MLP's initialisation and split), so a
  /// fit is a pure function of (inputs, targets, seed).
  virtual void fit(const torch::Tensor& inputs, const torch::Tensor& targets, uint64_t seed) = 0;
  /// The predicted scores of rows of `inputs` (M x D, float64) as an M-vector (float64).
  virtual torch::Tensor predict(const torch::Tensor& inputs) const = 0;
  virtual bool fitted() const = 0;
  /// Everything predict() needs, as JSON (doubles round-trip exactly): a handler loaded
  /// from its state predicts bit for bit what it predicted when the state was taken.
  virtual Json state() const = 0;
  /// The inverse of state(); a state of another type or shape is a config error naming
  /// `origin` (a file, "search checkpoint").
  virtual void load_state(const Json& state, const std::string& origin) = 0;
  /// Reads MetricPredictor's `fit_cfg` table. MMRazor supports it for the MLP only; the
  /// default rejects a non-empty table.
  virtual void read_fit_cfg(Args& fit_cfg);
};

/// "predictor_handlers": GaussProcessHandler, MLPHandler.
Registry<PredictorHandler>& predictor_handler_registry();

/// Registers the handlers of components/predictors. Idempotent.
void register_predictors();

}  // namespace razor

namespace razor::detail {
/// A 1-D or 2-D float64 tensor as nested JSON arrays (17 significant digits: exact), and back.
Json tensor_to_json(const torch::Tensor& tensor);
/// `value` must be an array of numbers (1-D) or of equal-length arrays (2-D); `what` names it
/// in the error.
torch::Tensor tensor_from_json(const Json& value, const std::string& what);
}  // namespace razor::detail
