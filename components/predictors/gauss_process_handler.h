#pragma once
// MMRazor's GaussProcessHandler (a DACE kriging model: constant regression, Gaussian
// correlation, θ by maximum likelihood), as Gaussian-process regression in float64:
//
//   inputs and targets standardised (x - mean) / std, std with ddof 1 (DACE_with_smooth);
//   k(a, b) = exp(-θ ||a - b||²)               (DACE's corr_gauss with one θ)
//   R = K(X, X) + nugget I                      (near-zero noise: it interpolates)
//   β = 1ᵀR⁻¹y / 1ᵀR⁻¹1, σ² = (y - β)ᵀR⁻¹(y - β) / n   (the constant mean and the
//                                                         variance at their maximum)
//   log L(θ) = -n/2 log(2π σ²) - 1/2 log|R| - n/2      (the marginal likelihood with β
//                                                         and σ² profiled out)
//   mean(x) = β + k(x, X) R⁻¹ (y - β)
//
// θ maximises log L over [theta_bounds] (DACE's thetaL, thetaU): a log-spaced grid, then a
// golden-section refinement around the best grid point, so a fit is deterministic. Every
// solve is a Cholesky factorisation (torch::linalg); the nugget grows tenfold if R is not
// numerically positive definite.
#include <utility>
#include <vector>

#include "components/predictors/predictor_handler.h"

namespace razor {

struct GaussProcessHandlerOptions {
  /// θ before fitting (DACE's theta = 1), and the value used when `optimize` is off.
  double theta = 1.0;
  /// Bounds of θ for the maximum-likelihood fit (MMRazor's thetaL, thetaU).
  std::pair<double, double> theta_bounds = {1e-5, 100.0};
  /// Added to the diagonal of R (relative to the unit prior variance).
  double nugget = 1e-10;
  /// Fit θ by maximum likelihood; off, θ stays at `theta`.
  bool optimize = true;
  /// Standardise inputs and targets (DACE does); off, the GP sees the raw values.
  bool normalize = true;
  /// Log-spaced θ values tried before the golden-section refinement.
  int64_t grid_points = 25;

  // clang-format off
  GaussProcessHandlerOptions& with_theta(double v) { theta = v; return *this; }
  GaussProcessHandlerOptions& with_theta_bounds(double lo, double hi) { theta_bounds = {lo, hi}; return *this; }
  GaussProcessHandlerOptions& with_nugget(double v) { nugget = v; return *this; }
  GaussProcessHandlerOptions& with_optimize(bool v) { optimize = v; return *this; }
  GaussProcessHandlerOptions& with_normalize(bool v) { normalize = v; return *this; }
  GaussProcessHandlerOptions& with_grid_points(int64_t v) { grid_points = v; return *this; }
  // clang-format on
};

/// Reads `handler_cfg = { type = "GaussProcessHandler", regr = "constant", corr = "gauss",
/// theta = 1.0, theta_bounds = [1e-5, 100], nugget = 1e-10, optimize = true,
/// normalize = true, grid_points = 25 }`. regr and corr accept only what is implemented.
GaussProcessHandlerOptions gauss_process_options_from(Args& args);

class GaussProcessHandler : public PredictorHandler {
 public:
  explicit GaussProcessHandler(GaussProcessHandlerOptions options = {});

  std::string type() const override { return "GaussProcessHandler"; }
  void fit(const torch::Tensor& inputs, const torch::Tensor& targets, uint64_t seed = 0) override;
  torch::Tensor predict(const torch::Tensor& inputs) const override;
  bool fitted() const override { return alpha_.defined(); }
  Json state() const override;
  void load_state(const Json& state, const std::string& origin) override;

  /// The fitted θ (the initial one before fit()).
  double theta() const { return theta_; }
  /// The fitted constant mean β and variance σ², in the standardised target units.
  double beta() const { return beta_; }
  double sigma2() const { return sigma2_; }
  double nugget() const { return nugget_; }
  /// log L(θ) of the fitted training data (standardised as in the fit), for any θ.
  double log_marginal_likelihood(double theta) const;
  const GaussProcessHandlerOptions& options() const { return options_; }

 private:
  /// Correlations exp(-θ ||a_i - b_j||²) of standardised rows.
  torch::Tensor correlation(const torch::Tensor& a, const torch::Tensor& b, double theta) const;
  /// Cholesky factor of R(θ) with the nugget, growing the nugget until it factorises.
  torch::Tensor factor(double theta, double& nugget) const;

  GaussProcessHandlerOptions options_;
  double theta_;
  double nugget_;
  double beta_ = 0;
  double sigma2_ = 0;
  // Standardisation: x' = (x - x_mean) / x_scale, y' = (y - y_mean) / y_scale.
  torch::Tensor x_mean_, x_scale_;
  double y_mean_ = 0, y_scale_ = 1;
  torch::Tensor train_x_;  // N x D, standardised
  torch::Tensor train_y_;  // N, standardised
  torch::Tensor alpha_;    // R⁻¹ (y' - β), N
};

}  // namespace razor
