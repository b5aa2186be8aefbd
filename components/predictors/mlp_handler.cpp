#include "components/predictors/mlp_handler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

MLPHandlerOptions mlp_options_from(Args& args) {
  MLPHandlerOptions o;
  if (args.has("model_cfg")) {
    Args model = args.sub("model_cfg");
    o.hidden_features = model.get<int64_t>("hidden_features", o.hidden_features);
    if (o.hidden_features < 1) model.fail("hidden_features", "must be >= 1");
    o.num_hidden_layers = model.get<int64_t>("num_hidden_layers", o.num_hidden_layers);
    if (o.num_hidden_layers < 0) model.fail("num_hidden_layers", "must be >= 0");
    // MMRazor resizes the first layer to the encoding (check_dimentions); one output.
    model.get<int64_t>("in_features", 0);
    if (model.get<int64_t>("out_features", 1) != 1)
      model.fail("out_features", "must be 1 (one score)");
    model.finish();
  }
  o.lr = args.get<double>("lr", o.lr);
  if (!(o.lr > 0)) args.fail("lr", "must be > 0");
  o.loss = args.get("loss", o.loss.c_str());
  if (o.loss != "mse" && o.loss != "smooth_l1") {
    args.fail("loss", "must be \"mse\" or \"smooth_l1\", got \"" + o.loss + "\"");
  }
  return o;
}

MLPHandler::MLPHandler(MLPHandlerOptions options) : options_(std::move(options)) {
  RAZOR_CHECK(options_.hidden_features >= 1, "MLPHandler: hidden_features must be >= 1");
  RAZOR_CHECK(options_.num_hidden_layers >= 0, "MLPHandler: num_hidden_layers must be >= 0");
  RAZOR_CHECK(options_.lr > 0, "MLPHandler: lr must be > 0");
  RAZOR_CHECK(options_.loss == "mse" || options_.loss == "smooth_l1",
              "MLPHandler: loss must be \"mse\" or \"smooth_l1\"");
  RAZOR_CHECK(options_.epoch >= 1, "MLPHandler: epoch must be >= 1");
  RAZOR_CHECK(options_.data_split > 0 && options_.data_split <= 1,
              "MLPHandler: data_split must be in (0, 1]");
}

void MLPHandler::read_fit_cfg(Args& fit_cfg) {
  options_.epoch = fit_cfg.get<int64_t>("epoch", options_.epoch);
  if (options_.epoch < 1) fit_cfg.fail("epoch", "must be >= 1");
  options_.data_split = fit_cfg.get<double>("data_split", options_.data_split);
  if (!(options_.data_split > 0 && options_.data_split <= 1)) {
    fit_cfg.fail("data_split", "must be in (0, 1], got " + format_number(options_.data_split, 3));
  }
}

torch::Tensor MLPHandler::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights,
                                  const std::vector<torch::Tensor>& biases) const {
  torch::Tensor h = x;
  for (size_t i = 0; i < weights.size(); ++i) {
    h = torch::addmm(biases[i], h, weights[i].t());
    if (i + 1 < weights.size()) h = torch::relu(h);
  }
  return h.squeeze(1);
}

torch::Tensor MLPHandler::loss(const torch::Tensor& prediction, const torch::Tensor& target) const {
  if (options_.loss == "mse") return torch::mse_loss(prediction, target);
  return torch::smooth_l1_loss(prediction, target, at::Reduction::Mean, /*beta=*/1.0);
}

void MLPHandler::fit(const torch::Tensor& inputs, const torch::Tensor& targets, uint64_t seed) {
  RAZOR_ASSERT(inputs.dim() == 2 && targets.dim() == 1 && inputs.size(0) == targets.size(0));
  const int64_t n = inputs.size(0), d = inputs.size(1);
  RAZOR_CHECK(n >= 1, "MLPHandler: no training samples");
  const torch::Tensor y64 = targets.to(torch::kCPU, torch::kDouble);
  y_mean_ = y64.mean().item<double>();
  y_scale_ = 1.0;
  if (n >= 2) {
    const double s = y64.std(/*unbiased=*/true).item<double>();
    if (s > 1e-12) y_scale_ = s;
  }
  const torch::Tensor x = inputs.to(torch::kCPU, torch::kFloat).contiguous();
  const torch::Tensor y = ((y64 - y_mean_) / y_scale_).to(torch::kFloat);

  at::Generator generator = at::detail::createCPUGenerator(seed);
  const torch::Tensor perm = torch::randperm(n, generator, torch::kLong);
  const int64_t n_train =
      std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n) * options_.data_split));
  const torch::Tensor train_index = perm.narrow(0, 0, n_train);
  const bool held_out = n_train < n;
  const torch::Tensor valid_index = held_out ? perm.narrow(0, n_train, n - n_train) : train_index;
  const torch::Tensor train_x = x.index_select(0, train_index),
                      train_y = y.index_select(0, train_index);
  const torch::Tensor valid_x = x.index_select(0, valid_index),
                      valid_y = y.index_select(0, valid_index);

  std::vector<int64_t> sizes = {d};
  for (int64_t i = 0; i <= options_.num_hidden_layers; ++i)
    sizes.push_back(options_.hidden_features);
  sizes.push_back(1);
  std::vector<torch::Tensor> weights, biases;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(sizes[i]));
    torch::Tensor w =
        (torch::rand({sizes[i + 1], sizes[i]}, generator, torch::kFloat) * 2 - 1) * bound;
    weights.push_back(w.set_requires_grad(true));
    biases.push_back(torch::zeros({sizes[i + 1]}, torch::kFloat).set_requires_grad(true));
  }
  std::vector<torch::Tensor> params = weights;
  params.insert(params.end(), biases.begin(), biases.end());
  torch::optim::Adam adam(params, torch::optim::AdamOptions(options_.lr));
  auto& group_options = static_cast<torch::optim::AdamOptions&>(adam.param_groups()[0].options());

  double best = std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> best_w, best_b;
  const double pi = 3.141592653589793;
  for (int64_t step = 0; step < options_.epoch; ++step) {
    // MMEngine's CosineAnnealingLR(T_max = epoch, eta_min = 0), stepped after each update.
    group_options.lr(
        options_.lr * 0.5 *
        (1.0 + std::cos(pi * static_cast<double>(step) / static_cast<double>(options_.epoch))));
    adam.zero_grad();
    loss(forward(train_x, weights, biases), train_y).backward();
    adam.step();
    torch::NoGradGuard no_grad;
    const double valid = loss(forward(valid_x, weights, biases), valid_y).item<double>();
    if (valid < best || best_w.empty()) {
      best = valid;
      best_w.clear();
      best_b.clear();
      for (const auto& w : weights) best_w.push_back(w.detach().clone());
      for (const auto& b : biases) best_b.push_back(b.detach().clone());
    }
  }
  weights_ = std::move(best_w);
  biases_ = std::move(best_b);
  best_loss_ = best;
}

torch::Tensor MLPHandler::predict(const torch::Tensor& inputs) const {
  RAZOR_CHECK(fitted(), "MLPHandler: predict() before fit() or load_state()");
  RAZOR_CHECK(inputs.dim() == 2 && inputs.size(1) == weights_.front().size(1),
              "MLPHandler: inputs have ", inputs.dim() == 2 ? inputs.size(1) : -1,
              " features; it was fitted on ", weights_.front().size(1));
  torch::NoGradGuard no_grad;
  const torch::Tensor out = forward(inputs.to(torch::kCPU, torch::kFloat), weights_, biases_);
  return y_mean_ + y_scale_ * out.to(torch::kDouble);
}

Json MLPHandler::state() const {
  RAZOR_CHECK(fitted(), "MLPHandler: state() before fit()");
  Json layers = Json::array();
  for (size_t i = 0; i < weights_.size(); ++i) {
    layers.push_back({{"weight", detail::tensor_to_json(weights_[i].to(torch::kDouble))},
                      {"bias", detail::tensor_to_json(biases_[i].to(torch::kDouble))}});
  }
  return Json{{"type", type()},      {"loss", options_.loss},   {"y_mean", y_mean_},
              {"y_scale", y_scale_}, {"best_loss", best_loss_}, {"layers", layers}};
}

void MLPHandler::load_state(const Json& state, const std::string& origin) {
  RAZOR_CHECK(state.is_object() && state.value("type", "") == type(), origin,
              ": not an MLPHandler state");
  for (const char* key : {"y_mean", "y_scale", "layers"}) {
    RAZOR_CHECK(state.contains(key), origin, ": MLPHandler state has no \"", key, "\"");
  }
  RAZOR_CHECK(state["y_mean"].is_number() && state["y_scale"].is_number() &&
                  state["layers"].is_array() && !state["layers"].empty(),
              origin, ": MLPHandler state: y_mean, y_scale must be numbers and layers a list");
  std::vector<torch::Tensor> weights, biases;
  for (size_t i = 0; i < state["layers"].size(); ++i) {
    const Json& layer = state["layers"][i];
    const std::string where = origin + ": layers[" + std::to_string(i) + "]";
    RAZOR_CHECK(layer.is_object() && layer.contains("weight") && layer.contains("bias"), where,
                ": needs weight and bias");
    torch::Tensor w =
        detail::tensor_from_json(layer["weight"], where + ".weight").to(torch::kFloat);
    torch::Tensor b = detail::tensor_from_json(layer["bias"], where + ".bias").to(torch::kFloat);
    RAZOR_CHECK(w.dim() == 2 && b.dim() == 1 && b.size(0) == w.size(0) &&
                    (weights.empty() || w.size(1) == weights.back().size(0)),
                where, ": shapes do not chain");
    weights.push_back(w);
    biases.push_back(b);
  }
  RAZOR_CHECK(weights.back().size(0) == 1, origin,
              ": MLPHandler state: the last layer must have one output");
  weights_ = std::move(weights);
  biases_ = std::move(biases);
  y_mean_ = state["y_mean"].get<double>();
  y_scale_ = state["y_scale"].get<double>();
  options_.loss = state.value("loss", options_.loss);
  best_loss_ = state.value("best_loss", 0.0);
}

}  // namespace razor
