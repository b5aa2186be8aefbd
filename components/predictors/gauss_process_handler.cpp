#include "components/predictors/gauss_process_handler.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace {

constexpr double kTwoPi = 6.283185307179586;
/// The most the nugget may grow to before a fit gives up (a unit-variance GP).
constexpr double kMaxNugget = 1e-2;

/// std with ddof 1 per column; columns (or samples) without spread are scaled by 1, so an
/// unseen one-hot choice moves a point one unit rather than (DACE: + 1e-6) a million.
torch::Tensor column_scale(const torch::Tensor& x) {
  if (x.size(0) < 2) return torch::ones({x.size(1)}, x.options());
  torch::Tensor s = x.std(0, /*unbiased=*/true);
  return torch::where(s > 1e-12, s, torch::ones_like(s));
}

}  // namespace

GaussProcessHandlerOptions gauss_process_options_from(Args& args) {
  GaussProcessHandlerOptions o;
  const std::string regr = args.get("regr", "constant");
  if (regr != "constant") {
    args.fail("regr", "\"" + regr +
                          "\" is not implemented; razor's GaussProcessHandler has a "
                          "constant regression (\"constant\"): a linear trend has more terms than "
                          "the handful of training subnets a search fits");
  }
  const std::string corr = args.get("corr", "gauss");
  if (corr != "gauss") {
    args.fail("corr", "\"" + corr +
                          "\" is not implemented; razor's GaussProcessHandler has the "
                          "Gaussian correlation (\"gauss\")");
  }
  o.theta = args.get<double>("theta", o.theta);
  if (!(o.theta > 0)) args.fail("theta", "must be > 0, got " + format_number(o.theta, 6));
  if (args.has("theta_bounds")) {
    const auto b = args.get<std::vector<double>>("theta_bounds", {});
    if (b.size() != 2 || !(b[0] > 0) || !(b[1] >= b[0])) {
      args.fail("theta_bounds", "must be [min, max] with 0 < min <= max");
    }
    o.theta_bounds = {b[0], b[1]};
  }
  o.nugget = args.get<double>("nugget", o.nugget);
  if (!(o.nugget >= 0) || o.nugget > kMaxNugget) {
    args.fail("nugget", "must be in [0, 0.01], got " + format_number(o.nugget, 6));
  }
  o.optimize = args.get<bool>("optimize", o.optimize);
  o.normalize = args.get<bool>("normalize", o.normalize);
  o.grid_points = args.get<int64_t>("grid_points", o.grid_points);
  if (o.grid_points < 2) args.fail("grid_points", "must be >= 2");
  return o;
}

GaussProcessHandler::GaussProcessHandler(GaussProcessHandlerOptions options)
    : options_(std::move(options)), theta_(options_.theta), nugget_(options_.nugget) {
  RAZOR_CHECK(options_.theta > 0, "GaussProcessHandler: theta must be > 0");
  RAZOR_CHECK(options_.theta_bounds.first > 0 &&
                  options_.theta_bounds.second >= options_.theta_bounds.first,
              "GaussProcessHandler: theta_bounds must be [min, max] with 0 < min <= max");
  RAZOR_CHECK(options_.nugget >= 0 && options_.nugget <= kMaxNugget,
              "GaussProcessHandler: nugget must be in [0, 0.01]");
  RAZOR_CHECK(options_.grid_points >= 2, "GaussProcessHandler: grid_points must be >= 2");
}

torch::Tensor GaussProcessHandler::correlation(const torch::Tensor& a, const torch::Tensor& b,
                                               double theta) const {
  // Differences, not |a|² + |b|² - 2ab: the distance of a point to itself is exactly 0.
  const torch::Tensor d2 = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1);
  return torch::exp(-theta * d2);
}

torch::Tensor GaussProcessHandler::factor(double theta, double& nugget) const {
  const int64_t n = train_x_.size(0);
  const torch::Tensor r = correlation(train_x_, train_x_, theta);
  const torch::Tensor eye = torch::eye(n, r.options());
  for (double jitter = nugget;; jitter = jitter > 0 ? jitter * 10 : 1e-12) {
    auto [l, info] =
        torch::linalg_cholesky_ex(r + jitter * eye, /*upper=*/false, /*check_errors=*/false);
    if (info.item<int64_t>() == 0) {
      nugget = jitter;
      return l;
    }
    RAZOR_RUNTIME_CHECK(jitter * 10 <= kMaxNugget,
                        "GaussProcessHandler: the correlation matrix of the training subnets is "
                        "not positive definite even with a nugget of ",
                        jitter, " (theta ", theta,
                        "); are there duplicate subnets with different scores?");
  }
}

namespace {
/// Whitened generalised least squares of the constant mean, given the Cholesky factor L.
struct Solve {
  double beta, sigma2, log_det;
  torch::Tensor rho;  // L⁻¹ (y - β)
};

Solve solve_constant_mean(const torch::Tensor& l, const torch::Tensor& y) {
  const int64_t n = y.size(0);
  const torch::Tensor ones = torch::ones({n, 1}, y.options());
  const torch::Tensor ft =
      torch::linalg::solve_triangular(l, ones, /*upper=*/false, /*left=*/true, false);
  const torch::Tensor yt = torch::linalg::solve_triangular(l, y.unsqueeze(1), false, true, false);
  Solve s;
  s.beta = (ft * yt).sum().item<double>() / (ft * ft).sum().item<double>();
  s.rho = yt - ft * s.beta;
  s.sigma2 = (s.rho * s.rho).sum().item<double>() / static_cast<double>(n);
  s.log_det = 2.0 * torch::log(torch::diagonal(l)).sum().item<double>();
  return s;
}

double log_likelihood(const Solve& s, int64_t n) {
  if (!(s.sigma2 > 0)) return -std::numeric_limits<double>::infinity();
  const double nd = static_cast<double>(n);
  return -0.5 * nd * std::log(kTwoPi * s.sigma2) - 0.5 * s.log_det - 0.5 * nd;
}
}  // namespace

double GaussProcessHandler::log_marginal_likelihood(double theta) const {
  RAZOR_ASSERT(train_x_.defined());
  double nugget = options_.nugget;
  const torch::Tensor l = factor(theta, nugget);
  return log_likelihood(solve_constant_mean(l, train_y_), train_y_.size(0));
}

void GaussProcessHandler::fit(const torch::Tensor& inputs, const torch::Tensor& targets, uint64_t) {
  RAZOR_ASSERT(inputs.dim() == 2 && targets.dim() == 1 && inputs.size(0) == targets.size(0));
  RAZOR_CHECK(inputs.size(0) >= 1, "GaussProcessHandler: no training samples");
  const torch::Tensor x = inputs.to(torch::kCPU, torch::kDouble).contiguous();
  const torch::Tensor y = targets.to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t n = x.size(0);
  if (options_.normalize) {
    x_mean_ = x.mean(0);
    x_scale_ = column_scale(x);
    y_mean_ = y.mean().item<double>();
    y_scale_ = 1.0;
    if (n >= 2) {
      const double s = y.std(/*unbiased=*/true).item<double>();
      if (s > 1e-12) y_scale_ = s;
    }
  } else {
    x_mean_ = torch::zeros({x.size(1)}, x.options());
    x_scale_ = torch::ones({x.size(1)}, x.options());
    y_mean_ = 0.0;
    y_scale_ = 1.0;
  }
  train_x_ = (x - x_mean_) / x_scale_;
  train_y_ = (y - y_mean_) / y_scale_;

  theta_ = options_.theta;
  if (options_.optimize) {
    const double lo = std::log(options_.theta_bounds.first),
                 hi = std::log(options_.theta_bounds.second);
    auto objective = [&](double log_theta) { return log_marginal_likelihood(std::exp(log_theta)); };
    double best_log = std::log(options_.theta), best = objective(best_log);
    const int64_t g = options_.grid_points;
    std::vector<double> grid(static_cast<size_t>(g)), values(static_cast<size_t>(g));
    int64_t arg = -1;
    double grid_best = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < g; ++i) {
      grid[i] = lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(g - 1);
      values[i] = objective(grid[i]);
      if (values[i] > grid_best) {
        grid_best = values[i];
        arg = i;
      }
    }
    if (arg >= 0) {
      if (grid_best > best) {
        best = grid_best;
        best_log = grid[arg];
      }
      // Golden-section search in the grid cell on either side of the best grid point.
      double a = grid[std::max<int64_t>(arg - 1, 0)], b = grid[std::min<int64_t>(arg + 1, g - 1)];
      const double ratio = 0.6180339887498949;
      double c = b - ratio * (b - a), d = a + ratio * (b - a);
      double fc = objective(c), fd = objective(d);
      for (int it = 0; it < 60 && b - a > 1e-7; ++it) {
        if (fc > fd) {
          b = d;
          d = c;
          fd = fc;
          c = b - ratio * (b - a);
          fc = objective(c);
        } else {
          a = c;
          c = d;
          fc = fd;
          d = a + ratio * (b - a);
          fd = objective(d);
        }
      }
      const double mid = 0.5 * (a + b), fm = objective(mid);
      if (fm > best) {
        best = fm;
        best_log = mid;
      }
    }
    theta_ = std::exp(best_log);
  }

  nugget_ = options_.nugget;
  const torch::Tensor l = factor(theta_, nugget_);
  const Solve s = solve_constant_mean(l, train_y_);
  beta_ = s.beta;
  sigma2_ = s.sigma2;
  alpha_ = torch::linalg::solve_triangular(l.transpose(0, 1), s.rho, /*upper=*/true, true, false)
               .squeeze(1);
}

torch::Tensor GaussProcessHandler::predict(const torch::Tensor& inputs) const {
  RAZOR_CHECK(fitted(), "GaussProcessHandler: predict() before fit() or load_state()");
  const torch::Tensor x = inputs.to(torch::kCPU, torch::kDouble);
  RAZOR_CHECK(x.dim() == 2 && x.size(1) == train_x_.size(1), "GaussProcessHandler: inputs have ",
              x.dim() == 2 ? x.size(1) : -1, " features; it was fitted on ", train_x_.size(1));
  const torch::Tensor k = correlation((x - x_mean_) / x_scale_, train_x_, theta_);
  return y_mean_ + y_scale_ * (beta_ + torch::mv(k, alpha_));
}

Json GaussProcessHandler::state() const {
  RAZOR_CHECK(fitted(), "GaussProcessHandler: state() before fit()");
  return Json{{"type", type()},
              {"regr", "constant"},
              {"corr", "gauss"},
              {"theta", theta_},
              {"nugget", nugget_},
              {"beta", beta_},
              {"sigma2", sigma2_},
              {"normalize", options_.normalize},
              {"x_mean", detail::tensor_to_json(x_mean_)},
              {"x_scale", detail::tensor_to_json(x_scale_)},
              {"y_mean", y_mean_},
              {"y_scale", y_scale_},
              {"train_x", detail::tensor_to_json(train_x_)},
              {"train_y", detail::tensor_to_json(train_y_)},
              {"alpha", detail::tensor_to_json(alpha_)}};
}

void GaussProcessHandler::load_state(const Json& state, const std::string& origin) {
  RAZOR_CHECK(state.is_object() && state.value("type", "") == type(), origin,
              ": not a GaussProcessHandler state (type ",
              state.is_object() ? state.value("type", Json()).dump() : state.dump(), ")");
  auto field = [&](const char* key) -> const Json& {
    RAZOR_CHECK(state.contains(key), origin, ": GaussProcessHandler state has no \"", key, "\"");
    return state.at(key);
  };
  auto number = [&](const char* key) {
    const Json& v = field(key);
    RAZOR_CHECK(v.is_number(), origin, ": GaussProcessHandler state: \"", key,
                "\" must be a number");
    return v.get<double>();
  };
  theta_ = number("theta");
  nugget_ = number("nugget");
  beta_ = number("beta");
  sigma2_ = number("sigma2");
  y_mean_ = number("y_mean");
  y_scale_ = number("y_scale");
  x_mean_ = detail::tensor_from_json(field("x_mean"), origin + ": x_mean");
  x_scale_ = detail::tensor_from_json(field("x_scale"), origin + ": x_scale");
  train_x_ = detail::tensor_from_json(field("train_x"), origin + ": train_x");
  train_y_ = detail::tensor_from_json(field("train_y"), origin + ": train_y");
  alpha_ = detail::tensor_from_json(field("alpha"), origin + ": alpha");
  RAZOR_CHECK(train_x_.dim() == 2 && train_y_.dim() == 1 && alpha_.dim() == 1 &&
                  train_x_.size(0) == alpha_.size(0) && train_y_.size(0) == alpha_.size(0) &&
                  x_mean_.numel() == train_x_.size(1) && x_scale_.numel() == train_x_.size(1),
              origin, ": GaussProcessHandler state has inconsistent shapes");
}

}  // namespace razor
