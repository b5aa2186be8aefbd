// Every distillation loss against its closed form (section 3 of MMRAZOR_SEMANTICS.md),
// written here from the formulas with plain LibTorch operations, in double precision.
#include <catch2/catch.hpp>

#include <cmath>

#include <torch/torch.h>

#include "components/distill/distill_loss.h"
#include "components/distill/losses/crd_loss.h"
#include "engine/args.h"
#include "engine/error.h"

using namespace razor;

namespace {

const auto kDouble = torch::TensorOptions().dtype(torch::kDouble);

std::shared_ptr<DistillLoss> build(const Json& table) {
  register_distill_losses();
  Args args = Args::of(table, "model.distiller.distill_losses.loss_kd");
  return distill_loss_registry().build(args);
}

Json with(Json table, const std::string& key, const Json& value) {
  table[key] = value;
  return table;
}

torch::Tensor randn(std::vector<int64_t> shape) { return torch::randn(shape, kDouble); }

double value(const Json& table, const LossInputs& inputs) {
  return build(table)->forward(inputs).item<double>();
}

void check_close(double actual, double expected) {
  INFO("actual " << actual << ", expected " << expected);
  CHECK(std::abs(actual - expected) <= 1e-5 * std::abs(expected) + 1e-12);
}

// Softmax of each row (dimension 1), written out.
torch::Tensor softmax_rows(const torch::Tensor& x) {
  auto e = (x - std::get<0>(x.max(1, true))).exp();
  return e / e.sum(1, true);
}

// The value at loss_weight = 3 is three times the value at loss_weight = 1.
void check_weight_scales(const Json& table, const LossInputs& inputs) {
  const double one = value(with(table, "loss_weight", 1.0), inputs);
  const double three = value(with(table, "loss_weight", 3.0), inputs);
  check_close(three, 3.0 * one);
}

// Backward through the loss: every student input gets a non-zero gradient, every input in
// `detached` none (undefined or zero).
void check_gradients(const Json& table, LossInputs inputs, const std::vector<std::string>& student,
                     const std::vector<std::string>& detached) {
  for (const auto& key : student) inputs[key] = inputs[key].clone().requires_grad_(true);
  for (const auto& key : detached) inputs[key] = inputs[key].clone().requires_grad_(true);
  build(table)->forward(inputs).backward();
  for (const auto& key : student) {
    INFO("student input " << key);
    REQUIRE(inputs[key].grad().defined());
    CHECK(inputs[key].grad().abs().sum().item<double>() > 0);
  }
  for (const auto& key : detached) {
    INFO("detached input " << key);
    const auto grad = inputs[key].grad();
    CHECK((!grad.defined() || grad.abs().sum().item<double>() == 0));
  }
}

// Torch-free smooth L1 (beta 1), mean.
torch::Tensor smooth_l1_mean(const torch::Tensor& a, const torch::Tensor& b) {
  auto d = (a - b).abs();
  return torch::where(d < 1, 0.5 * d * d, d - 0.5).mean();
}

}  // namespace

TEST_CASE("distill losses: every MMRazor loss is registered", "[distill_losses]") {
  register_distill_losses();
  const std::vector<std::string> expected = {
      "ABLoss",        "AngleWiseRKD",     "ATLoss",          "ChannelWiseDivergence",
      "CRDLoss",       "CrossEntropyLoss", "DISTLoss",        "DistanceWiseRKD",
      "DKDLoss",       "FTLoss",           "InformationEntropyLoss", "KDSoftCELoss",
      "KLDivergence",  "L1Loss",           "L2Loss",          "MGDLoss",
      "OFDLoss",       "OnehotLikeLoss",   "PKDLoss",         "WSLD",
      "ActivationLoss"};
  for (const auto& name : expected) {
    INFO(name);
    CHECK(distill_loss_registry().contains(name));
  }
  CHECK(build({{"type", "KLDivergence"}})->arguments().size() == 2);
  CHECK(build({{"type", "DKDLoss"}})->arguments()[2].name == "gt_labels");
  CHECK(build({{"type", "WSLD"}})->arguments()[0].name == "student");
  CHECK(build({{"type", "DISTLoss"}})->arguments()[1].name == "logits_T");
  CHECK(build({{"type", "ActivationLoss"}})->arguments()[0].name == "feat_T");
  CHECK(build({{"type", "DistanceWiseRKD"}})->loss_weight() == 25.0);
  CHECK(build({{"type", "AngleWiseRKD"}})->loss_weight() == 50.0);
  CHECK(build({{"type", "KLDivergence"}})->loss_weight() == 1.0);
}

TEST_CASE("distill losses: KLDivergence", "[distill_losses]") {
  torch::manual_seed(1);
  auto s = randn({6, 10}), t = randn({6, 10});
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}};
  for (double tau : {1.0, 4.0}) {
    auto p_t = softmax_rows(t / tau);
    auto p_s = softmax_rows(s / tau);
    auto pointwise = p_t * (p_t.log() - p_s.log());
    Json table = {{"type", "KLDivergence"}, {"tau", tau}, {"loss_weight", 0.5}};
    check_close(value(table, inputs), 0.5 * tau * tau * pointwise.sum().item<double>() / 6);
    check_close(value(with(table, "reduction", "sum"), inputs),
                0.5 * tau * tau * pointwise.sum().item<double>());
    check_close(value(with(table, "reduction", "mean"), inputs),
                0.5 * tau * tau * pointwise.sum().item<double>() / 60);
    auto none = build(with(table, "reduction", "none"))->forward(inputs);
    CHECK(none.sizes() == s.sizes());
    CHECK(torch::allclose(none, 0.5 * tau * tau * pointwise, 1e-5, 1e-12));
  }
  // (N, C, H, W): the softmax runs over channels.
  auto s4 = randn({2, 5, 3, 3}), t4 = randn({2, 5, 3, 3});
  auto p_t4 = torch::softmax(t4, 1), log_p_s4 = torch::log_softmax(s4, 1);
  check_close(value({{"type", "KLDivergence"}}, {{"preds_S", s4}, {"preds_T", t4}}),
              (p_t4 * (p_t4.log() - log_p_s4)).sum().item<double>() / 2);
  // Identical logits: 0.
  CHECK(value({{"type", "KLDivergence"}, {"tau", 3.0}}, {{"preds_S", s}, {"preds_T", s}}) ==
        Approx(0.0).margin(1e-12));
  check_weight_scales({{"type", "KLDivergence"}, {"tau", 2.0}}, inputs);
  check_gradients({{"type", "KLDivergence"}}, inputs, {"preds_S"}, {"preds_T"});
  check_gradients({{"type", "KLDivergence"}, {"teacher_detach", false}}, inputs,
                  {"preds_S", "preds_T"}, {});
}

TEST_CASE("distill losses: a bad option is a config error naming the key", "[distill_losses]") {
  CHECK_THROWS_WITH(build({{"type", "KLDivergence"}, {"reduction", "avg"}}),
                    Catch::Contains("model.distiller.distill_losses.loss_kd.reduction") &&
                        Catch::Contains("batchmean"));
  CHECK_THROWS_AS(build({{"type", "KLDivergence"}, {"reduction", "avg"}}), Error);
  CHECK_THROWS_WITH(build({{"type", "DKDLoss"}, {"reduction", "none"}}),
                    Catch::Contains("loss_kd.reduction"));
  CHECK_THROWS_WITH(build({{"type", "L1Loss"}, {"reduction", "batchmean"}}),
                    Catch::Contains("loss_kd.reduction"));
  CHECK_THROWS_WITH(build({{"type", "KDSoftCELoss"}, {"reduction", "batchmean"}}),
                    Catch::Contains("loss_kd.reduction"));
  CHECK_THROWS_WITH(build({{"type", "ActivationLoss"}, {"norm_type", "l2"}}),
                    Catch::Contains("loss_kd.norm_type"));
  CHECK_THROWS_WITH(build({{"type", "KLDivergence"}, {"tua", 2.0}}), Catch::Contains("tua"));
  CHECK_THROWS_WITH(build({{"type", "KLDivergence"}, {"tau", "two"}}), Catch::Contains("loss_kd.tau"));
  CHECK_THROWS_WITH(build({{"type", "CRDLoss"}, {"sample_n", 0}}), Catch::Contains("sample_n"));
  CHECK_THROWS_WITH(build({{"type", "WSLD"}, {"num_classes", 0}}), Catch::Contains("num_classes"));
}

TEST_CASE("distill losses: DKDLoss", "[distill_losses]") {
  torch::manual_seed(2);
  const int64_t n = 5, c = 7;
  auto s = randn({n, c}) * 2, t = randn({n, c}) * 2;
  auto labels = torch::tensor({0, 3, 6, 2, 3}, torch::kLong);
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}, {"gt_labels", labels}};
  const double tau = 2.0, alpha = 0.7, beta = 1.3;
  // Per sample: TCKD on [p_gt, 1 - p_gt], NCKD on the distribution over the other classes.
  double tckd = 0, nckd = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t gt = labels[i].item<int64_t>();
    auto ps = softmax_rows(s[i].unsqueeze(0) / tau)[0];
    auto pt = softmax_rows(t[i].unsqueeze(0) / tau)[0];
    const double bs = ps[gt].item<double>(), bt = pt[gt].item<double>();
    tckd += bt * std::log(bt / bs) + (1 - bt) * std::log((1 - bt) / (1 - bs));
    double zs = 0, zt = 0;
    for (int64_t j = 0; j < c; ++j) {
      if (j == gt) continue;
      zs += std::exp(s[i][j].item<double>() / tau);
      zt += std::exp(t[i][j].item<double>() / tau);
    }
    for (int64_t j = 0; j < c; ++j) {
      if (j == gt) continue;
      const double qs = std::exp(s[i][j].item<double>() / tau) / zs;
      const double qt = std::exp(t[i][j].item<double>() / tau) / zt;
      nckd += qt * std::log(qt / qs);
    }
  }
  Json table = {{"type", "DKDLoss"}, {"tau", tau}, {"alpha", alpha}, {"beta", beta}};
  const double t2 = tau * tau;
  check_close(value(table, inputs), t2 * (alpha * tckd + beta * nckd) / n);
  check_close(value(with(table, "reduction", "sum"), inputs), t2 * (alpha * tckd + beta * nckd));
  // 'mean' is the mean over each term's elements (MMRazor silently sums instead).
  check_close(value(with(table, "reduction", "mean"), inputs),
              t2 * (alpha * tckd / (2 * n) + beta * nckd / (n * c)));
  // Labels as N x 1 work too.
  LossInputs column = inputs;
  column["gt_labels"] = labels.unsqueeze(1);
  check_close(value(table, column), t2 * (alpha * tckd + beta * nckd) / n);
  check_weight_scales(table, inputs);
  check_gradients(table, inputs, {"preds_S"}, {});
}

TEST_CASE("distill losses: WSLD", "[distill_losses]") {
  torch::manual_seed(3);
  const int64_t n = 6, c = 5;
  auto s = randn({n, c}) * 2, t = randn({n, c}) * 2;
  auto labels = torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong);
  LossInputs inputs{{"student", s}, {"teacher", t}, {"gt_labels", labels}};
  const double tau = 2.0;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t gt = labels[i].item<int64_t>();
    auto ps_tau = softmax_rows(s[i].unsqueeze(0) / tau)[0];
    auto pt_tau = softmax_rows(t[i].unsqueeze(0) / tau)[0];
    const double ce = -(pt_tau * ps_tau.log()).sum().item<double>();
    const double ce_s = -std::log(softmax_rows(s[i].unsqueeze(0))[0][gt].item<double>());
    const double ce_t = -std::log(softmax_rows(t[i].unsqueeze(0))[0][gt].item<double>());
    const double w = 1 - std::exp(-std::max(ce_s / (ce_t + 1e-7), 0.0));
    total += w * ce;
  }
  Json table = {{"type", "WSLD"}, {"tau", tau}, {"num_classes", c}, {"loss_weight", 2.5}};
  check_close(value(table, inputs), 2.5 * tau * tau * total / n);
  check_weight_scales(table, inputs);
  check_gradients(table, inputs, {"student"}, {});
  // num_classes must match the logits.
  CHECK_THROWS_WITH(build(with(table, "num_classes", 1000))->forward(inputs),
                    Catch::Contains("num_classes"));
}

TEST_CASE("distill losses: DISTLoss", "[distill_losses]") {
  torch::manual_seed(4);
  auto s = randn({6, 8}), t = randn({6, 8});
  LossInputs inputs{{"logits_S", s}, {"logits_T", t}};
  const double tau = 3.0;
  auto ys = softmax_rows(s / tau), yt = softmax_rows(t / tau);
  auto pearson_rows = [](const torch::Tensor& a, const torch::Tensor& b) {
    double sum = 0;
    for (int64_t i = 0; i < a.size(0); ++i) {
      auto x = a[i] - a[i].mean(), y = b[i] - b[i].mean();
      sum += ((x * y).sum() / (x.pow(2).sum().sqrt() * y.pow(2).sum().sqrt() + 1e-8)).item<double>();
    }
    return sum / a.size(0);
  };
  const double inter = 1 - pearson_rows(ys, yt);
  const double intra = 1 - pearson_rows(ys.t().contiguous(), yt.t().contiguous());
  Json table = {{"type", "DISTLoss"}, {"tau", tau}, {"inter_loss_weight", 0.5},
                {"intra_loss_weight", 2.0}, {"loss_weight", 2.0}};
  check_close(value(table, inputs), 2.0 * tau * tau * (0.5 * inter + 2.0 * intra));
  check_weight_scales(table, inputs);
  check_gradients(table, inputs, {"logits_S"}, {"logits_T"});
}

TEST_CASE("distill losses: L2Loss", "[distill_losses]") {
  torch::manual_seed(5);
  auto s = randn({4, 3, 2, 2}), t = randn({4, 3, 2, 2});
  LossInputs inputs{{"s_feature", s}, {"t_feature", t}};
  auto normalized = [](const torch::Tensor& x, double mult) {
    auto flat = x.reshape({x.size(0), -1});
    return flat / flat.pow(2).sum(1, true).sqrt() * mult;
  };
  const double sq = (normalized(s, 2.0) - normalized(t, 2.0)).pow(2).sum().item<double>();
  Json table = {{"type", "L2Loss"}, {"mult", 2.0}, {"loss_weight", 10.0}};
  check_close(value(table, inputs), 10.0 * sq / 4);
  check_close(value(with(table, "div_element", true), inputs), 10.0 * sq / 48);
  check_close(value(with(table, "dist", true), inputs), 10.0 * std::sqrt(sq));
  const double raw = (s - t).pow(2).sum().item<double>();
  check_close(value({{"type", "L2Loss"}, {"normalize", false}}, inputs), raw / 4);
  // By hand: |(3, 4) - (0, 0)| = 5.
  LossInputs hand{{"s_feature", torch::tensor({{3.0, 4.0}}, kDouble)},
                  {"t_feature", torch::zeros({1, 2}, kDouble)}};
  CHECK(value({{"type", "L2Loss"}, {"normalize", false}, {"dist", true}}, hand) == Approx(5.0));
  CHECK(value({{"type", "L2Loss"}, {"normalize", false}}, hand) == Approx(25.0));
  CHECK(value({{"type", "L2Loss"}, {"normalize", false}, {"div_element", true}}, hand) ==
        Approx(12.5));
  check_weight_scales(table, inputs);
  check_gradients(table, inputs, {"s_feature"}, {});
}

TEST_CASE("distill losses: L1Loss", "[distill_losses]") {
  torch::manual_seed(6);
  auto s = randn({4, 6}), t = randn({4, 6});
  LossInputs inputs{{"s_feature", s}, {"t_feature", t}};
  auto diff = (s - t).abs();
  check_close(value({{"type", "L1Loss"}}, inputs), diff.sum().item<double>() / 24);
  check_close(value({{"type", "L1Loss"}, {"reduction", "sum"}}, inputs), diff.sum().item<double>());
  check_weight_scales({{"type", "L1Loss"}}, inputs);
  check_gradients({{"type", "L1Loss"}}, inputs, {"s_feature"}, {});
}

TEST_CASE("distill losses: ATLoss", "[distill_losses]") {
  torch::manual_seed(7);
  auto s = randn({3, 4, 5, 5}), t = randn({3, 8, 5, 5});
  LossInputs inputs{{"s_feature", s}, {"t_feature", t}};
  auto attention = [](const torch::Tensor& x) {
    auto a = (x * x).sum(1) / x.size(1);
    a = a.reshape({x.size(0), -1});
    return a / a.pow(2).sum(1, true).sqrt();
  };
  const double expected = (attention(s) - attention(t)).pow(2).sum().item<double>() / (3 * 25);
  check_close(value({{"type", "ATLoss"}}, inputs), expected);
  check_weight_scales({{"type", "ATLoss"}}, inputs);
  check_gradients({{"type", "ATLoss"}}, inputs, {"s_feature"}, {});
}

TEST_CASE("distill losses: relational KD (distance and angle)", "[distill_losses]") {
  torch::manual_seed(8);
  const int64_t n = 5;
  auto s = randn({n, 6}), t = randn({n, 2, 2, 2});
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}};
  auto rows = [](const torch::Tensor& x) {
    auto flat = x.reshape({x.size(0), -1});
    return flat / flat.pow(2).sum(1, true).sqrt();
  };
  auto distances = [&](const torch::Tensor& x) {
    auto d = torch::zeros({n, n}, kDouble);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        if (i != j) d[i][j] = (x[i] - x[j]).pow(2).sum().sqrt();
    return d / (d.sum() / (n * n - n));
  };
  auto angles = [&](const torch::Tensor& x) {
    auto out = torch::zeros({n, n, n}, kDouble);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t k = 0; k < n; ++k) {
          if (j == i || k == i) continue;
          auto e1 = x[j] - x[i], e2 = x[k] - x[i];
          out[i][j][k] = (e1 * e2).sum() / (e1.norm() * e2.norm());
        }
    return out;
  };
  auto s_rows = rows(s), t_rows = rows(t);
  check_close(value({{"type", "DistanceWiseRKD"}}, inputs),
              25.0 * smooth_l1_mean(distances(s_rows), distances(t_rows)).item<double>());
  check_close(value({{"type", "AngleWiseRKD"}}, inputs),
              50.0 * smooth_l1_mean(angles(s_rows), angles(t_rows)).item<double>());
  auto s_raw = s.reshape({n, -1}), t_raw = t.reshape({n, -1});
  check_close(value({{"type", "DistanceWiseRKD"}, {"with_l2_norm", false}}, inputs),
              25.0 * smooth_l1_mean(distances(s_raw), distances(t_raw)).item<double>());
  check_close(value({{"type", "AngleWiseRKD"}, {"with_l2_norm", false}}, inputs),
              50.0 * smooth_l1_mean(angles(s_raw), angles(t_raw)).item<double>());
  check_weight_scales({{"type", "DistanceWiseRKD"}}, inputs);
  check_weight_scales({{"type", "AngleWiseRKD"}}, inputs);
  check_gradients({{"type", "DistanceWiseRKD"}}, inputs, {"preds_S"}, {});
  check_gradients({{"type", "AngleWiseRKD"}}, inputs, {"preds_S"}, {});
}

TEST_CASE("distill losses: ABLoss", "[distill_losses]") {
  torch::manual_seed(9);
  auto s = randn({3, 4, 3, 3}) * 2, t = randn({3, 4, 3, 3});
  LossInputs inputs{{"s_feature", s}, {"t_feature", t}};
  const double m = 0.5;
  double sum = 0;
  auto sf = s.reshape({-1}), tf = t.reshape({-1});
  for (int64_t i = 0; i < sf.numel(); ++i) {
    const double a = sf[i].item<double>(), b = tf[i].item<double>();
    if (a > -m && b <= 0) sum += (a + m) * (a + m);
    if (a <= m && b > 0) sum += (a - m) * (a - m);
  }
  Json table = {{"type", "ABLoss"}, {"margin", m}};
  check_close(value(table, inputs), sum / 3 / 1000 * 3);
  check_weight_scales(table, inputs);
  check_gradients(table, inputs, {"s_feature"}, {});
}

TEST_CASE("distill losses: OFDLoss", "[distill_losses]") {
  torch::manual_seed(10);
  auto s = randn({4, 3, 2, 2}), t = randn({4, 3, 2, 2});
  LossInputs inputs{{"s_feature", s}, {"t_feature", t}};
  auto mask = torch::logical_or(s > t, t > 0).to(torch::kDouble);
  const double sum = ((s - t) * (s - t) * mask).sum().item<double>();
  check_close(value({{"type", "OFDLoss"}}, inputs), sum / 4 / 1000);
  check_close(value({{"type", "OFDLoss"}, {"mul_factor", 10.0}}, inputs), sum / 4 / 10);
  check_weight_scales({{"type", "OFDLoss"}}, inputs);
  check_gradients({{"type", "OFDLoss"}}, inputs, {"s_feature"}, {});
}

TEST_CASE("distill losses: FTLoss", "[distill_losses]") {
  torch::manual_seed(11);
  auto s = randn({4, 3, 2, 2}), t = randn({4, 3, 2, 2});
  LossInputs inputs{{"s_feature", s}, {"t_feature", t}};
  auto factor = [](const torch::Tensor& x) {
    auto flat = x.reshape({x.size(0), -1});
    return flat / flat.pow(2).sum(1, true).sqrt();
  };
  check_close(value({{"type", "FTLoss"}}, inputs),
              (factor(s) - factor(t)).abs().sum().item<double>() / 48);
  check_weight_scales({{"type", "FTLoss"}}, inputs);
  check_gradients({{"type", "FTLoss"}}, inputs, {"s_feature"}, {});
}

TEST_CASE("distill losses: CrossEntropyLoss against the teacher's argmax", "[distill_losses]") {
  torch::manual_seed(12);
  auto s = randn({6, 5}), t = randn({6, 5});
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}};
  double sum = 0;
  auto p = softmax_rows(s);
  for (int64_t i = 0; i < 6; ++i) sum -= std::log(p[i][t[i].argmax().item<int64_t>()].item<double>());
  check_close(value({{"type", "CrossEntropyLoss"}}, inputs), sum / 6);
  check_weight_scales({{"type", "CrossEntropyLoss"}}, inputs);
  check_gradients({{"type", "CrossEntropyLoss"}}, inputs, {"preds_S"}, {"preds_T"});
}

TEST_CASE("distill losses: KDSoftCELoss", "[distill_losses]") {
  torch::manual_seed(13);
  auto s = randn({6, 5}), t = randn({6, 5});
  auto weight = torch::rand({6}, kDouble);
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}};
  const double tau = 2.0;
  auto per_sample = -(softmax_rows(t / tau) * softmax_rows(s / tau).log()).sum(1);
  Json table = {{"type", "KDSoftCELoss"}, {"tau", tau}};
  check_close(value(table, inputs), tau * tau * per_sample.mean().item<double>());
  check_close(value(with(table, "reduction", "sum"), inputs), tau * tau * per_sample.sum().item<double>());
  check_close(value(with(table, "mult_tem_square", false), inputs), per_sample.mean().item<double>());
  LossInputs weighted = inputs;
  weighted["weight"] = weight;
  check_close(value(table, weighted), tau * tau * (per_sample * weight).mean().item<double>());
  check_weight_scales(table, inputs);
  check_gradients(table, inputs, {"preds_S"}, {});
}

TEST_CASE("distill losses: data-free losses", "[distill_losses]") {
  torch::manual_seed(14);
  auto t = randn({6, 5});
  LossInputs inputs{{"preds_T", t}};
  // OnehotLikeLoss: CE of the teacher against its own argmax.
  double ce = 0;
  auto p = softmax_rows(t);
  for (int64_t i = 0; i < 6; ++i) ce -= std::log(p[i][t[i].argmax().item<int64_t>()].item<double>());
  check_close(value({{"type", "OnehotLikeLoss"}}, inputs), ce / 6);
  check_weight_scales({{"type", "OnehotLikeLoss"}}, inputs);
  check_gradients({{"type", "OnehotLikeLoss"}}, inputs, {"preds_T"}, {});

  // InformationEntropyLoss: sum p log10 p of the batch-mean probabilities.
  auto mean_p = p.sum(0) / 6;
  check_close(value({{"type", "InformationEntropyLoss"}}, inputs),
              (mean_p * mean_p.log() / std::log(10.0)).sum().item<double>());
  // Uniform predictions: -log10(C).
  CHECK(value({{"type", "InformationEntropyLoss"}, {"gather", false}},
              {{"preds_T", torch::zeros({3, 100}, kDouble)}}) == Approx(-2.0));
  check_weight_scales({{"type", "InformationEntropyLoss"}}, inputs);
  check_gradients({{"type", "InformationEntropyLoss"}}, inputs, {"preds_T"}, {});

  // ActivationLoss: -mean |f| or -||f||.
  auto f = randn({3, 2, 4, 4});
  LossInputs features{{"feat_T", f}};
  check_close(value({{"type", "ActivationLoss"}}, features), -f.abs().sum().item<double>() / 96);
  check_close(value({{"type", "ActivationLoss"}, {"norm_type", "norm"}}, features),
              -std::sqrt((f * f).sum().item<double>()));
  check_weight_scales({{"type", "ActivationLoss"}}, features);
  check_gradients({{"type", "ActivationLoss"}}, features, {"feat_T"}, {});
}

TEST_CASE("distill losses: ChannelWiseDivergence", "[distill_losses]") {
  torch::manual_seed(15);
  auto s = randn({2, 3, 4, 4}), t = randn({2, 3, 4, 4});
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}};
  const double tau = 2.0;
  double sum = 0;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t c = 0; c < 3; ++c) {
      auto ps = softmax_rows(s[i][c].reshape({1, -1}) / tau)[0];
      auto pt = softmax_rows(t[i][c].reshape({1, -1}) / tau)[0];
      sum += (pt * (pt.log() - ps.log())).sum().item<double>();
    }
  Json table = {{"type", "ChannelWiseDivergence"}, {"tau", tau}, {"loss_weight", 5.0}};
  check_close(value(table, inputs), 5.0 * tau * tau * sum / 6);
  check_weight_scales(table, inputs);
  check_gradients(table, inputs, {"preds_S"}, {});
}

TEST_CASE("distill losses: MGDLoss", "[distill_losses]") {
  torch::manual_seed(16);
  auto s = randn({3, 4, 2, 2}), t = randn({3, 4, 2, 2});
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}};
  const double sq = ((s - t) * (s - t)).sum().item<double>();
  check_close(value({{"type", "MGDLoss"}}, inputs), 2e-5 * sq / 3);
  check_close(value({{"type", "MGDLoss"}, {"alpha_mgd", 0.5}}, inputs), 0.5 * sq / 3);
  check_weight_scales({{"type", "MGDLoss"}}, inputs);
  check_gradients({{"type", "MGDLoss"}}, inputs, {"preds_S"}, {});
}

TEST_CASE("distill losses: PKDLoss", "[distill_losses]") {
  torch::manual_seed(17);
  auto s = randn({2, 3, 4, 4}) * 3 + 1, t = randn({2, 3, 4, 4});
  LossInputs inputs{{"preds_S", s}, {"preds_T", t}};
  // Per channel over (N, H, W): (x - mean) / (unbiased std + 1e-6).
  auto standardize = [](const torch::Tensor& x) {
    auto out = torch::empty_like(x);
    for (int64_t c = 0; c < x.size(1); ++c) {
      auto v = x.select(1, c);
      const double count = static_cast<double>(v.numel());
      const double mean = v.sum().item<double>() / count;
      const double var = (v - mean).pow(2).sum().item<double>() / (count - 1);
      out.select(1, c).copy_((v - mean) / (std::sqrt(var) + 1e-6));
    }
    return out;
  };
  const double expected = (standardize(s) - standardize(t)).pow(2).sum().item<double>() / s.numel() / 2;
  check_close(value({{"type", "PKDLoss"}}, inputs), expected);
  // Different sizes: the student (or teacher) is resized bilinearly first.
  auto big = randn({2, 3, 8, 8});
  auto resized = torch::nn::functional::interpolate(
      big, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{4, 4})
               .mode(torch::kBilinear)
               .align_corners(false));
  const double resized_expected =
      (standardize(resized) - standardize(t)).pow(2).sum().item<double>() / t.numel() / 2;
  check_close(value({{"type", "PKDLoss"}}, {{"preds_S", big}, {"preds_T", t}}), resized_expected);
  check_close(value({{"type", "PKDLoss"}, {"resize_stu", false}}, {{"preds_S", t}, {"preds_T", big}}),
              resized_expected);
  check_weight_scales({{"type", "PKDLoss"}}, inputs);
  check_gradients({{"type", "PKDLoss"}}, inputs, {"preds_S"}, {});
}

TEST_CASE("distill losses: CRDLoss", "[distill_losses]") {
  torch::manual_seed(18);
  const int64_t n = 4, k = 5, bank = 20, dim = 6;
  const double temperature = 0.5, momentum = 0.5;
  Json table = {{"type", "CRDLoss"}, {"neg_num", k},      {"sample_n", bank},
                {"dim_out", dim},    {"temperature", temperature}, {"loss_weight", 0.8}};
  auto unit = [](const torch::Tensor& x) { return x / x.pow(2).sum(1, true).sqrt(); };
  auto s = unit(randn({n, dim})), t = unit(randn({n, dim}));
  auto idx = torch::tensor({3, 7, 11, 19}, torch::kLong);
  auto contrast = torch::randint(0, bank, {n, k + 1}, torch::kLong);
  contrast.select(1, 0).copy_(idx);
  LossInputs inputs{{"s_feats", s}, {"t_feats", t}, {"data_samples", idx},
                    {"contrast_sample_idxs", contrast}};

  auto loss = build(table);
  auto* crd = dynamic_cast<distill::CRDLoss*>(loss.get());
  REQUIRE(crd != nullptr);
  std::vector<std::string> buffers;
  for (const auto& item : loss->named_buffers()) buffers.push_back(item.key());
  CHECK(buffers == std::vector<std::string>{"memory_v1", "memory_v2", "normalizers", "sampler_state"});
  auto v1 = crd->memory_v1().to(torch::kDouble).clone(), v2 = crd->memory_v2().to(torch::kDouble).clone();
  // Memory initialised in [-stdv, stdv].
  CHECK(v1.abs().max().item<double>() <= 1.0 / std::sqrt(dim / 3.0) + 1e-6);

  // Scores: teacher embeddings against the student bank v1, and vice versa.
  auto scores = [&](const torch::Tensor& memory, const torch::Tensor& f) {
    auto out = torch::empty({n, k + 1}, kDouble);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= k; ++j)
        out[i][j] = std::exp((memory[contrast[i][j].item<int64_t>()] * f[i]).sum().item<double>() /
                             temperature);
    return out;
  };
  auto nce = [&](const torch::Tensor& p) {
    const double noise = double(k) / bank;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double pos = p[i][0].item<double>();
      sum += std::log(pos / (pos + noise + 1e-7));
      for (int64_t j = 1; j <= k; ++j) sum += std::log(noise / (p[i][j].item<double>() + noise + 1e-7));
    }
    return -sum / n;
  };
  auto out_s = scores(v2, s), out_t = scores(v1, t);
  const double z_s = out_s.mean().item<double>() * bank, z_t = out_t.mean().item<double>() * bank;
  const double expected = 0.8 * (nce(out_s / z_s) + nce(out_t / z_t));
  // The normalizers are float buffers: compare with the rounding they bring.
  auto first = loss->forward(inputs);
  CHECK(first.item<double>() == Approx(expected).epsilon(1e-5));
  CHECK(crd->normalizers()[0].item<double>() == Approx(z_s).epsilon(1e-6));
  CHECK(crd->normalizers()[1].item<double>() == Approx(z_t).epsilon(1e-6));

  // Memory rows of the batch moved towards the new embeddings, the others did not.
  auto updated_v1 = unit(v1.index_select(0, idx) * momentum + s * (1 - momentum));
  CHECK(torch::allclose(crd->memory_v1().to(torch::kDouble).index_select(0, idx), updated_v1, 1e-5, 1e-6));
  auto updated_v2 = unit(v2.index_select(0, idx) * momentum + t * (1 - momentum));
  CHECK(torch::allclose(crd->memory_v2().to(torch::kDouble).index_select(0, idx), updated_v2, 1e-5, 1e-6));
  CHECK(torch::allclose(crd->memory_v1().to(torch::kDouble)[0], v1[0]));

  // Z stays fixed after the first call.
  loss->forward(inputs);
  CHECK(crd->normalizers()[0].item<double>() == Approx(z_s).epsilon(1e-6));

  // loss_weight scales (a fresh loss each time: the state changes with every call).
  check_weight_scales(table, inputs);
  // Gradients reach both embeddings (both come through trainable connectors).
  check_gradients(table, inputs, {"s_feats", "t_feats"}, {});

  // Random negatives: deterministic for a seed, and the draw counter is kept in a buffer.
  LossInputs drawn{{"s_feats", s}, {"t_feats", t}, {"data_samples", idx}};
  auto a = build(table), b = build(table);
  const double va = a->forward(drawn).item<double>();
  CHECK(b->forward(drawn).item<double>() == va);
  auto* crd_a = dynamic_cast<distill::CRDLoss*>(a.get());
  REQUIRE(crd_a != nullptr);
  CHECK(a->named_buffers()["sampler_state"][1].item<int64_t>() == 1);
  CHECK(std::isfinite(a->forward(drawn).item<double>()));
  CHECK(a->named_buffers()["sampler_state"][1].item<int64_t>() == 2);

  CHECK_THROWS_WITH(build(table)->forward({{"s_feats", s}, {"t_feats", t},
                                           {"data_samples", torch::tensor({0, 1, 2, 20})}}),
                    Catch::Contains("sample_n"));
}
