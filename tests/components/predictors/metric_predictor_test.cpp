// MetricPredictor and its handlers: encodings against hand-written vectors, the Gaussian
// process against a closed-form solve and known functions, the MLP on a linear function,
// exact JSON round-trips, and config errors naming the key.
#include "components/predictors/metric_predictor.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "components/predictors/gauss_process_handler.h"
#include "components/predictors/mlp_handler.h"
#include "tests/components/architectures/build.h"

using namespace razor;
using razor::test::error_of;

namespace {

/// `groups` groups of `choices` choices each, keyed g0, g1, ...; choices are "c0", "c1", ...
std::vector<EncodedGroup> space(int groups, int choices) {
  std::vector<EncodedGroup> out;
  for (int g = 0; g < groups; ++g) {
    EncodedGroup group{"g" + std::to_string(g), {}};
    for (int c = 0; c < choices; ++c) group.choices.push_back("c" + std::to_string(c));
    out.push_back(group);
  }
  return out;
}

/// Every subnet of a space, as choices and as the index of each group's choice.
std::vector<std::pair<Json, std::vector<int>>> every_subnet(int groups, int choices) {
  std::vector<std::pair<Json, std::vector<int>>> out;
  std::vector<int> index(static_cast<size_t>(groups), 0);
  while (true) {
    Json c = Json::object();
    for (int g = 0; g < groups; ++g) c["g" + std::to_string(g)] = "c" + std::to_string(index[g]);
    out.emplace_back(c, index);
    int g = 0;
    while (g < groups && ++index[g] == choices) index[g++] = 0;
    if (g == groups) break;
  }
  return out;
}

std::unique_ptr<MetricPredictor> predictor(std::shared_ptr<PredictorHandler> handler,
                                           const std::string& encoding, int groups, int choices) {
  auto p = std::make_unique<MetricPredictor>(MetricPredictorOptions().with_encoding_type(encoding),
                                             std::move(handler));
  p->set_search_space(space(groups, choices));
  return p;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

double rmse(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("razor_predictor_test_" + name)).string();
}

}  // namespace

TEST_CASE("MetricPredictor encodes choices one-hot or by index over the groups in order",
          "[predictors]") {
  std::vector<EncodedGroup> groups = {
      {"module_0", {"shuffle_3x3", "shuffle_5x5", "shuffle_7x7"}},
      {"value_1", {3, 5}},
      {"module_2", {Json::array({"edge_0", "edge_1"}), Json::array({"edge_1"})}}};
  const Json choices = {
      {"module_2", Json::array({"edge_1"})}, {"value_1", 5}, {"module_0", "shuffle_7x7"}};
  MetricPredictor onehot(MetricPredictorOptions().with_encoding_type("onehot"),
                         std::make_shared<GaussProcessHandler>());
  onehot.set_search_space(groups);
  CHECK(onehot.num_features() == 7);
  CHECK(to_vector(onehot.encode(choices)) == std::vector<double>{0, 0, 1, 0, 1, 0, 1});
  CHECK(to_vector(onehot.encode(Json{{"module_0", "shuffle_3x3"},
                                     {"value_1", 3},
                                     {"module_2", Json::array({"edge_0", "edge_1"})}})) ==
        std::vector<double>{1, 0, 0, 1, 0, 1, 0});

  for (const std::string name : {"normal", "index"}) {
    MetricPredictor index(MetricPredictorOptions().with_encoding_type(name),
                          std::make_shared<GaussProcessHandler>());
    index.set_search_space(groups);
    CHECK(index.options().encoding_type == "normal");
    CHECK(index.num_features() == 3);
    CHECK(to_vector(index.encode(choices)) == std::vector<double>{2, 1, 1});
  }
  CHECK(onehot.encode(std::vector<Json>{choices, choices}).sizes() == torch::IntArrayRef({2, 7}));
  CHECK_THAT(
      error_of([&] {
        onehot.encode(Json{
            {"module_0", "shuffle_9x9"}, {"value_1", 3}, {"module_2", Json::array({"edge_1"})}});
      }),
      Catch::Contains("search group \"module_0\": \"shuffle_9x9\" is not one of its choices"));
  CHECK_THAT(error_of([&] {
               onehot.encode(Json{{"module_0", "shuffle_3x3"}});
             }),
             Catch::Contains("no choice for search group \"value_1\""));
}

TEST_CASE("GaussProcessHandler's posterior mean is the closed-form kriging solve", "[predictors]") {
  // Three points, θ fixed, raw inputs and targets, no nugget: everything by hand.
  const double theta = 0.7;
  GaussProcessHandler gp(GaussProcessHandlerOptions()
                             .with_theta(theta)
                             .with_optimize(false)
                             .with_normalize(false)
                             .with_nugget(0));
  const torch::Tensor x = torch::tensor({0.0, 1.0, 3.0}, torch::kDouble).reshape({3, 1});
  const torch::Tensor y = torch::tensor({1.0, 2.0, 0.5}, torch::kDouble);
  gp.fit(x, y, 0);

  const torch::Tensor r = torch::exp(-theta * (x - x.t()).pow(2));
  const torch::Tensor r_inv = torch::inverse(r);
  const torch::Tensor ones = torch::ones({3}, torch::kDouble);
  const double beta =
      (ones.dot(torch::mv(r_inv, y)) / ones.dot(torch::mv(r_inv, ones))).item<double>();
  const torch::Tensor resid = y - beta;
  const double sigma2 = resid.dot(torch::mv(r_inv, resid)).item<double>() / 3.0;
  const double lml =
      -1.5 * std::log(2 * M_PI * sigma2) - 0.5 * std::log(torch::det(r).item<double>()) - 1.5;
  CHECK(gp.beta() == Approx(beta).epsilon(1e-12));
  CHECK(gp.sigma2() == Approx(sigma2).epsilon(1e-12));
  CHECK(gp.log_marginal_likelihood(theta) == Approx(lml).epsilon(1e-12));

  const torch::Tensor queries =
      torch::tensor({2.0, 0.5, -1.0, 1.0}, torch::kDouble).reshape({4, 1});
  const torch::Tensor k = torch::exp(-theta * (queries - x.t()).pow(2));  // 4 x 3
  const torch::Tensor expected = beta + torch::mv(k, torch::mv(r_inv, resid));
  const auto got = to_vector(gp.predict(queries));
  const auto want = to_vector(expected);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-10));
  CHECK(got[3] == Approx(2.0).epsilon(1e-10));  // a training point: interpolated
}

TEST_CASE(
    "GaussProcessHandler interpolates, predicts a smooth function, and fits θ by maximum "
    "likelihood",
    "[predictors]") {
  // f(x) = sin(3 x0) + cos(2 x1) on [0, 1]², 30 training points, 200 held out.
  torch::manual_seed(3);
  auto f = [](const torch::Tensor& x) {
    return torch::sin(3 * x.select(1, 0)) + torch::cos(2 * x.select(1, 1));
  };
  const torch::Tensor train = torch::rand({30, 2}, torch::kDouble);
  const torch::Tensor test = torch::rand({200, 2}, torch::kDouble);
  GaussProcessHandler gp;
  gp.fit(train, f(train), 0);

  // Near-zero noise: the training targets come back (to 1e-4, as a long length scale makes
  // R ill-conditioned and the 1e-10 nugget then shows).
  CHECK(gp.nugget() == 1e-10);
  CHECK((gp.predict(train) - f(train)).abs().max().item<double>() < 1e-4);
  // Held out: RMSE below 1 % of f's range (about 1.9 over the square).
  const double error = rmse(to_vector(gp.predict(test)), to_vector(f(test)));
  INFO("held-out RMSE " << error << ", theta " << gp.theta());
  CHECK(error < 0.02);

  // The fitted θ raises the marginal likelihood over the initial θ = 1, and is a local
  // maximum within the bounds.
  CHECK(gp.theta() != 1.0);
  CHECK(gp.theta() >= 1e-5);
  CHECK(gp.theta() <= 100);
  const double best = gp.log_marginal_likelihood(gp.theta());
  CHECK(best > gp.log_marginal_likelihood(1.0) + 1.0);
  CHECK(best >= gp.log_marginal_likelihood(gp.theta() * 1.05));
  CHECK(best >= gp.log_marginal_likelihood(gp.theta() / 1.05));
  CHECK(best > gp.log_marginal_likelihood(gp.theta() * 3));
  CHECK(best > gp.log_marginal_likelihood(gp.theta() / 3));
}

TEST_CASE("MetricPredictor with a Gaussian process predicts a smooth function of the encoding",
          "[predictors]") {
  // Index encoding of 3 groups x 6 choices (216 subnets); the score is smooth in the indices.
  auto score = [](const std::vector<int>& i) {
    return 70 + 3 * std::sin(0.5 * i[0]) + 2 * std::cos(0.4 * i[1]) + 0.3 * i[2] -
           0.05 * i[0] * i[2];
  };
  auto all = every_subnet(3, 6);
  // 60 random subnets for training, the other 156 held out.
  at::Generator generator = at::detail::createCPUGenerator(11);
  const torch::Tensor order =
      torch::randperm(static_cast<int64_t>(all.size()), generator, torch::kLong);
  std::vector<PredictorSample> samples;
  std::vector<Json> held_out;
  std::vector<double> truth;
  for (int64_t j = 0; j < order.numel(); ++j) {
    const auto& [choices, index] = all[static_cast<size_t>(order[j].item<int64_t>())];
    if (j < 60) {
      samples.push_back({choices, score(index)});
    } else {
      held_out.push_back(choices);
      truth.push_back(score(index));
    }
  }
  auto p = predictor(std::make_shared<GaussProcessHandler>(), "normal", 3, 6);
  p->fit(samples, 0);
  for (const auto& s : samples) CHECK(p->predict(s.choices) == Approx(s.score).margin(1e-4));
  const double error = rmse(p->predict(held_out), truth);
  INFO("held-out RMSE " << error);
  CHECK(error < 0.1);  // scores span about 10 points

  // The same subnets one-hot encoded: an additive score is learnt as well.
  auto additive = [](const std::vector<int>& i) {
    return 70 + 1.5 * i[0] - 0.7 * i[1] + (i[2] % 2 ? 1.0 : -0.5);
  };
  for (auto& s : samples) {
    std::vector<int> index;
    for (int g = 0; g < 3; ++g)
      index.push_back(std::stoi(s.choices["g" + std::to_string(g)].get<std::string>().substr(1)));
    s.score = additive(index);
  }
  std::vector<double> additive_truth;
  for (const auto& c : held_out) {
    std::vector<int> index;
    for (int g = 0; g < 3; ++g)
      index.push_back(std::stoi(c["g" + std::to_string(g)].get<std::string>().substr(1)));
    additive_truth.push_back(additive(index));
  }
  auto q = predictor(std::make_shared<GaussProcessHandler>(), "onehot", 3, 6);
  q->fit(samples, 0);
  const double onehot_error = rmse(q->predict(held_out), additive_truth);
  INFO("one-hot held-out RMSE " << onehot_error);
  CHECK(onehot_error < 0.5);  // scores span about 12 points
}

TEST_CASE("MLPHandler fits a linear function of the one-hot encoding, deterministically",
          "[predictors]") {
  // 4 groups x 3 choices (81 subnets); the score is linear in the one-hot encoding.
  const std::vector<double> w = {0.0, 1.0, 2.5, -1.0, 0.0, 1.5, 0.5, -0.5, 2.0, 1.0, 0.0, -2.0};
  auto all = every_subnet(4, 3);
  std::vector<PredictorSample> samples;
  std::vector<Json> held_out;
  std::vector<double> truth;
  for (size_t j = 0; j < all.size(); ++j) {
    double s = 60;
    for (int g = 0; g < 4; ++g) s += w[static_cast<size_t>(3 * g + all[j].second[g])];
    if (j % 3 != 1) {
      samples.push_back({all[j].first, s});
    } else {
      held_out.push_back(all[j].first);
      truth.push_back(s);
    }
  }
  // One hidden layer of MMRazor's width; no held-out split: the step with the lowest training
  // loss is kept.
  auto make = [] {
    return std::make_shared<MLPHandler>(MLPHandlerOptions()
                                            .with_hidden_features(300)
                                            .with_num_hidden_layers(0)
                                            .with_lr(1e-3)
                                            .with_epoch(300)
                                            .with_data_split(1.0));
  };
  auto p = predictor(make(), "onehot", 4, 3);
  p->fit(samples, 5);
  std::vector<Json> seen;
  std::vector<double> seen_truth;
  for (const auto& s : samples) {
    seen.push_back(s.choices);
    seen_truth.push_back(s.score);
  }
  const double train_error = rmse(p->predict(seen), seen_truth);
  const double test_error = rmse(p->predict(held_out), truth);
  INFO("train RMSE " << train_error << ", held-out RMSE " << test_error);
  CHECK(train_error < 0.1);  // scores have a standard deviation of about 2.3
  CHECK(test_error < 0.35);  // 27 subnets it never saw: R² above 0.97

  // The seed decides everything: the same seed gives the same weights, another differs.
  auto again = predictor(make(), "onehot", 4, 3);
  again->fit(samples, 5);
  CHECK(again->predict(held_out) == p->predict(held_out));
  auto other = predictor(make(), "onehot", 4, 3);
  other->fit(samples, 6);
  CHECK(other->predict(held_out) != p->predict(held_out));

  // MMRazor's split: 80 % trains, the rest chooses the best step.
  auto split = predictor(std::make_shared<MLPHandler>(MLPHandlerOptions()
                                                          .with_hidden_features(300)
                                                          .with_num_hidden_layers(0)
                                                          .with_lr(1e-3)
                                                          .with_epoch(300)),
                         "onehot", 4, 3);
  split->fit(samples, 5);
  const double split_error = rmse(split->predict(held_out), truth);
  INFO("with a held-out fifth: RMSE " << split_error);
  CHECK(split_error < 0.6);
}

TEST_CASE("MetricPredictor state round-trips through JSON with identical predictions",
          "[predictors]") {
  auto all = every_subnet(3, 4);
  std::vector<PredictorSample> samples;
  std::vector<Json> queries;
  for (size_t j = 0; j < all.size(); ++j) {
    const auto& i = all[j].second;
    if (j % 4 == 0)
      samples.push_back({all[j].first, 50 + i[0] * i[1] - 0.5 * i[2] + std::sin(double(j))});
    queries.push_back(all[j].first);
  }
  // A duplicate subnet is merged into one sample with the mean score.
  samples.push_back({samples.front().choices, samples.front().score + 2.0});

  std::vector<std::pair<std::string, std::function<std::shared_ptr<PredictorHandler>()>>> handlers =
      {{"GaussProcessHandler", [] { return std::make_shared<GaussProcessHandler>(); }},
       {"MLPHandler", [] {
          return std::make_shared<MLPHandler>(
              MLPHandlerOptions().with_hidden_features(16).with_epoch(100));
        }}};
  for (const auto& [name, make] : handlers) {
    INFO(name);
    for (const std::string encoding : {"onehot", "normal"}) {
      INFO(encoding);
      auto p = predictor(make(), encoding, 3, 4);
      p->fit(samples, 1);
      CHECK(p->samples().size() == samples.size() - 1);
      CHECK(p->samples().front().score == Approx(samples.front().score + 1.0));
      const std::string path = temp_file(name + "_" + encoding + ".json");
      p->save(path);
      auto loaded = predictor(make(), encoding, 3, 4);
      loaded->load(path);
      CHECK(loaded->predict(queries) == p->predict(queries));  // bit for bit
      CHECK(loaded->state() == p->state());
      CHECK(loaded->samples().size() == p->samples().size());

      // Another search space, encoding or handler is refused with what differs.
      auto wider = predictor(make(), encoding, 3, 5);
      CHECK_THAT(error_of([&] { wider->load(path); }),
                 Catch::Contains("fitted on another search space: search group 0"));
      auto recoded = predictor(make(), encoding == "onehot" ? "normal" : "onehot", 3, 4);
      CHECK_THAT(error_of([&] { recoded->load(path); }),
                 Catch::Contains("was fitted with encoding_type"));
      std::shared_ptr<PredictorHandler> other;
      if (name == "MLPHandler")
        other = std::make_shared<GaussProcessHandler>();
      else
        other = std::make_shared<MLPHandler>();
      auto swapped = predictor(other, encoding, 3, 4);
      CHECK_THAT(
          error_of([&] { swapped->load(path); }),
          Catch::Contains("but predictor_cfg.handler_cfg.type is \"" + other->type() + "\""));
      std::filesystem::remove(path);
    }
  }
}

TEST_CASE("A pretrained file is a predictor state or a list of measured samples", "[predictors]") {
  const std::string lines = temp_file("history.jsonl");
  {
    std::ofstream out(lines);
    out << R"({"choices": {"g0": "c0"}, "score": 1.5, "source": "measured"})"
        << "\n"
        << R"({"choices": {"g0": "c1"}, "score": 9.0, "source": "predicted"})"
        << "\n\n"
        << R"({"subnet": {"a": {"chosen": "c1"}}, "score": 2.5})"
        << "\n";
  }
  const Json samples = read_pretrained_predictor(lines);
  REQUIRE(samples.size() == 2);
  CHECK(samples[0]["score"] == 1.5);
  CHECK(samples[1].contains("subnet"));
  const std::string list = temp_file("list.json");
  std::ofstream(list) << R"({"samples": [{"choices": {"g0": "c0"}, "score": 3}]})";
  CHECK(read_pretrained_predictor(list).size() == 1);
  std::ofstream(list) << R"([{"choices": {"g0": "c0"}}])";
  CHECK_THAT(error_of([&] { read_pretrained_predictor(list); }),
             Catch::Contains("sample 0 needs a numeric \"score\""));
  std::filesystem::remove(lines);
  std::filesystem::remove(list);
}

TEST_CASE("predictor_cfg errors name the key", "[predictors]") {
  register_predictors();
  auto build = [](const Json& table) {
    Args args = Args::of(table, "train_cfg.predictor_cfg");
    return build_metric_predictor(args);
  };
  const Json ok = {{"type", "MetricPredictor"},
                   {"handler_cfg", {{"type", "GaussProcessHandler"}}},
                   {"encoding_type", "onehot"},
                   {"train_samples", 20},
                   {"score_key", "accuracy/top1"}};
  auto built = build(ok);
  CHECK(built->options().train_samples == 20);
  CHECK(built->handler().type() == "GaussProcessHandler");
  CHECK(
      build(Json{{"handler_cfg", {{"type", "MLPHandler"}, {"model_cfg", {{"hidden_features", 8}}}}},
                 {"fit_cfg", {{"epoch", 10}, {"data_split", 0.5}}}})
          ->handler()
          .type() == "MLPHandler");

  auto with = [&](const std::string& key, const Json& value) {
    Json t = ok;
    t[key] = value;
    return error_of([&] { build(t); });
  };
  CHECK_THAT(with("handler_cfg", {{"type", "GaussProcesHandler"}}),
             Catch::Contains("train_cfg.predictor_cfg.handler_cfg.type") &&
                 Catch::Contains("did you mean \"GaussProcessHandler\"") &&
                 Catch::Contains("registered: GaussProcessHandler, MLPHandler"));
  CHECK_THAT(with("train_samples", 0),
             Catch::Contains("train_cfg.predictor_cfg.train_samples: must be >= 1, got 0"));
  CHECK_THAT(with("train_samples", -3),
             Catch::Contains("train_cfg.predictor_cfg.train_samples: must be >= 1"));
  CHECK_THAT(
      with("encoding_type", "onehott"),
      Catch::Contains("train_cfg.predictor_cfg.encoding_type: unknown encoding \"onehott\"") &&
          Catch::Contains("did you mean \"onehot\""));
  CHECK_THAT(with("type", "MetricPredicter"),
             Catch::Contains("train_cfg.predictor_cfg.type: unknown predictor type"));
  CHECK_THAT(
      with("train_sample", 3),
      Catch::Contains(
          "train_cfg.predictor_cfg.train_sample: unknown key; did you mean \"train_samples\""));
  CHECK_THAT(with("pretrained", "/nonexistent/predictor.json"),
             Catch::Contains("train_cfg.predictor_cfg.pretrained: file not found"));
  CHECK_THAT(
      with("fit_cfg", {{"epoch", 5}}),
      Catch::Contains(
          "train_cfg.predictor_cfg.fit_cfg.epoch: fit_cfg is only supported for MLPHandler"));
  CHECK_THAT(
      with("handler_cfg", {{"type", "GaussProcessHandler"}, {"regr", "linear"}}),
      Catch::Contains("train_cfg.predictor_cfg.handler_cfg.regr: \"linear\" is not implemented"));
  CHECK_THAT(with("handler_cfg", {{"type", "GaussProcessHandler"}, {"thetta", 1}}),
             Catch::Contains("handler_cfg.thetta: unknown key; did you mean \"theta\""));
  CHECK_THAT(with("handler_cfg", {{"type", "MLPHandler"}, {"loss", "l3"}}),
             Catch::Contains("handler_cfg.loss: must be \"mse\" or \"smooth_l1\""));
  Json no_handler = ok;
  no_handler.erase("handler_cfg");
  CHECK_THAT(error_of([&] { build(no_handler); }),
             Catch::Contains("train_cfg.predictor_cfg.handler_cfg"));
}
