// Fake quantisers against closed forms computed here: the forward round/clamp, the
// straight-through gradient, LSQ/LSQ+ gradients for scale and zero point with gradient
// scaling (Esser et al. 2020; Bhalgat et al. 2020), the enable flags, and their round trip
// through torch::save / torch::load and razor's checkpoint state dicts.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <vector>

#include "components/quant/quant.h"
#include "engine/checkpoint.h"

using namespace razor;
using namespace razor::quant;

namespace {

constexpr float kEps = std::numeric_limits<float>::epsilon();

// ATen's fake quantisation of one value: q = round(x / s) + z (x * (1 / s) in float, ties to
// even), y = (clamp(q, qmin, qmax) - z) * s; `inside` says qmin <= q <= qmax.
struct Quantised {
  float y;
  bool inside;
  double q;
};
Quantised fake_quant(float x, float s, int64_t z, int64_t qmin, int64_t qmax) {
  const float inv = 1.0f / s;
  const double q = std::nearbyint(x * inv) + static_cast<double>(z);
  const double clamped = std::min<double>(std::max<double>(q, qmin), qmax);
  return {static_cast<float>((clamped - z) * s), q >= qmin && q <= qmax, q};
}

std::vector<float> to_vector(const torch::Tensor& t) {
  const auto c = t.detach().contiguous().to(torch::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("razor_quant_" + name)).string();
}

void save_module(torch::nn::Module& module, const std::string& path) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  archive.save_to(path);
}

void load_module(torch::nn::Module& module, const std::string& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  module.load(archive);
}

}  // namespace

TEST_CASE("FakeQuantize forward is round/clamp with the observer's qparams", "[quant]") {
  auto observer = std::make_shared<MinMaxObserver>(ObserverOptions().with_range(0, 15));
  FakeQuantize fq(observer);
  CHECK(fq.observer_enabled());
  CHECK(fq.fake_quant_enabled());
  CHECK(fq.scale().sizes() == torch::IntArrayRef({1}));
  CHECK(fq.zero_point().scalar_type() == torch::kInt);
  const auto x = torch::tensor({-1.3f, -0.2f, 0.0f, 0.41f, 0.77f, 1.9f, 2.6f});
  const auto y = fq(x);
  // The observer saw x: min -1.3, max 2.6, 4-bit affine quint8.
  const float scale = (2.6f + 1.3f) / 15.0f;
  const int64_t zp = -static_cast<int64_t>(std::nearbyint(-1.3f / scale));
  CHECK(fq.scale().item<float>() == Approx(scale).epsilon(1e-6));
  CHECK(fq.zero_point().item<int>() == zp);
  const auto xs = to_vector(x), ys = to_vector(y);
  for (size_t i = 0; i < xs.size(); ++i) {
    INFO("x = " << xs[i]);
    CHECK(ys[i] == Approx(fake_quant(xs[i], fq.scale().item<float>(), zp, 0, 15).y).margin(1e-6));
  }
  const auto qp = fq.calculate_qparams();
  CHECK(qp.scale.item<float>() == fq.scale().item<float>());
}

TEST_CASE("FakeQuantize backward is the straight-through estimator", "[quant]") {
  FakeQuantize fq(std::make_shared<MinMaxObserver>(ObserverOptions()));
  fq.disable_observer();
  {
    torch::NoGradGuard no_grad;
    fq.scale().fill_(0.1);
    fq.zero_point().fill_(10);  // representable range [-1.0, 24.5]
  }
  const auto x = torch::tensor({-3.0f, -1.04f, -0.96f, 0.33f, 12.0f, 24.47f, 24.6f, 40.0f})
                     .requires_grad_(true);
  const auto w = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f});
  const auto y = fq(x);
  (y * w).sum().backward();
  const auto xs = to_vector(x), ys = to_vector(y), grads = to_vector(x.grad()), ws = to_vector(w);
  for (size_t i = 0; i < xs.size(); ++i) {
    INFO("x = " << xs[i]);
    const auto ref = fake_quant(xs[i], 0.1f, 10, 0, 255);
    CHECK(ys[i] == Approx(ref.y).margin(1e-6));
    CHECK(grads[i] == (ref.inside ? ws[i] : 0.0f));
  }
  CHECK(grads[0] == 0.0f);  // below the range
  CHECK(grads[3] == 4.0f);  // inside
  CHECK(grads[7] == 0.0f);  // above
}

TEST_CASE("FakeQuantize per channel quantises each channel with its own qparams", "[quant]") {
  auto observer =
      std::make_shared<PerChannelMinMaxObserver>(ObserverOptions()
                                                     .with_dtype(QDType::QInt8)
                                                     .with_qscheme(QScheme::PerChannelSymmetric)
                                                     .with_range(-127, 127));
  FakeQuantize fq(observer);
  torch::manual_seed(1);
  const auto w =
      torch::randn({3, 2, 2, 2}) * torch::tensor({0.1f, 1.0f, 5.0f}).reshape({3, 1, 1, 1});
  const auto y = fq(w);
  REQUIRE(fq.scale().sizes() == torch::IntArrayRef({3}));
  for (int64_t c = 0; c < 3; ++c) {
    const float m = w[c].abs().max().item<float>();
    const float scale = m / 127.0f;
    CHECK(fq.scale()[c].item<float>() == Approx(scale).epsilon(1e-6));
    CHECK(fq.zero_point()[c].item<int>() == 0);
    const auto xs = to_vector(w[c]), ys = to_vector(y[c]);
    for (size_t i = 0; i < xs.size(); ++i) {
      CHECK(ys[i] ==
            Approx(fake_quant(xs[i], fq.scale()[c].item<float>(), 0, -127, 127).y).margin(1e-6));
    }
  }
}

TEST_CASE("Enable flags switch behaviour and survive torch::save / torch::load", "[quant]") {
  FakeQuantize fq(std::make_shared<MovingAverageMinMaxObserver>(ObserverOptions(), 0.5));
  const auto x = torch::tensor({-1.0f, 0.3f, 2.0f});
  fq(x);
  const auto& observer = dynamic_cast<const MovingAverageMinMaxObserver&>(fq.observer());
  CHECK(observer.max_val().item<float>() == 2.0f);
  const float scale = fq.scale().item<float>();
  const int zp = fq.zero_point().item<int>();

  fq.disable_observer();
  const auto big = fq(x * 10);  // not observed: statistics and qparams stay
  CHECK(observer.max_val().item<float>() == 2.0f);
  CHECK(fq.scale().item<float>() == scale);
  CHECK(big[2].item<float>() == Approx(fake_quant(20.0f, scale, zp, 0, 255).y));  // clamped
  CHECK(fq.named_buffers()["observer_enabled"].item<int>() == 0);

  fq.disable_fake_quant();
  const auto y = torch::tensor({0.123f, 7.77f});
  CHECK(torch::equal(fq(y), y));  // identity
  CHECK(fq.named_buffers()["fake_quant_enabled"].item<int>() == 0);

  // The flags, qparams and observer statistics are buffers: they round-trip.
  const std::string path = temp_file("flags.pt");
  save_module(fq, path);
  FakeQuantize loaded(std::make_shared<MovingAverageMinMaxObserver>(ObserverOptions(), 0.5));
  CHECK(loaded.observer_enabled());  // read (and cached) before the load
  CHECK(loaded.fake_quant_enabled());
  load_module(loaded, path);
  std::filesystem::remove(path);
  CHECK_FALSE(loaded.observer_enabled());
  CHECK_FALSE(loaded.fake_quant_enabled());
  CHECK(loaded.scale().item<float>() == scale);
  CHECK(loaded.zero_point().item<int>() == zp);
  CHECK(
      dynamic_cast<const MovingAverageMinMaxObserver&>(loaded.observer()).max_val().item<float>() ==
      2.0f);
  CHECK(torch::equal(loaded(y), y));
  loaded.enable_fake_quant();
  const auto xs = to_vector(x), ys = to_vector(loaded(x));
  for (size_t i = 0; i < xs.size(); ++i) {
    CHECK(ys[i] == Approx(fake_quant(xs[i], scale, zp, 0, 255).y).margin(1e-6));
  }

  // State dict keys as torch's FakeQuantize.
  std::set<std::string> keys;
  for (const auto& item : fq.named_buffers()) keys.insert(item.key());
  CHECK(keys == std::set<std::string>{"fake_quant_enabled", "observer_enabled", "scale",
                                      "zero_point", "activation_post_process.eps",
                                      "activation_post_process.min_val",
                                      "activation_post_process.max_val"});
}

TEST_CASE("Per-channel state loads into a fresh quantiser built with num_channels", "[quant]") {
  const auto make = [](int64_t num_channels) {
    return std::make_shared<FakeQuantize>(
        std::make_shared<PerChannelMinMaxObserver>(ObserverOptions()
                                                       .with_qscheme(QScheme::PerChannelSymmetric)
                                                       .with_dtype(QDType::QInt8)
                                                       .with_num_channels(num_channels)));
  };
  auto trained = make(-1);
  torch::manual_seed(2);
  const auto w = torch::randn({4, 3});
  const auto expected = (*trained)(w);
  const StateDict state = razor::state_dict(*trained);

  // razor's checkpoint loader checks shapes: the fresh quantiser must know its channels.
  auto fresh = make(4);
  CHECK(fresh->scale().sizes() == torch::IntArrayRef({4}));
  load_state_dict(*fresh, state, /*strict=*/true, "test");
  fresh->disable_observer();
  CHECK(torch::equal((*fresh)(w), expected));
  auto lazy = make(-1);
  CHECK_THROWS_WITH(load_state_dict(*lazy, state, true, "test"),
                    Catch::Contains("do not fit the model's shapes"));
  // torch::load resizes (as PyTorch's per-channel load hooks do).
  const std::string path = temp_file("per_channel.pt");
  save_module(*trained, path);
  load_module(*lazy, path);
  std::filesystem::remove(path);
  lazy->disable_observer();
  CHECK(torch::equal((*lazy)(w), expected));
}

TEST_CASE("reset_statistics empties the observer and resets the qparams", "[quant]") {
  FakeQuantize fq(std::make_shared<MinMaxObserver>());
  fq(torch::tensor({-1.0f, 3.0f}));
  fq.reset_statistics();
  CHECK(fq.scale().item<float>() == 1.0f);
  CHECK(fq.zero_point().item<int>() == 0);
  CHECK(std::isinf(dynamic_cast<const MinMaxObserver&>(fq.observer()).min_val().item<float>()));
}

// ---------------------------------------------------------------------------------------------
// LearnableFakeQuantize

namespace {

struct LsqGrads {
  std::vector<float> dx;
  double dscale = 0, dzero_point = 0;
};

// The LSQ / LSQ+ gradients of sum(w * y) for y = (clamp(round(x / s + z)) - z) * s:
//   dy/dx = 1 inside the range, 0 outside;
//   dy/ds = round(x / s + z) - z - x / s inside, qmin - z below, qmax - z above;
//   dy/dz = 0 inside, -s outside;
// the qparams' gradients times g = 1 / sqrt(numel * qmax).
LsqGrads lsq_grads(const std::vector<float>& x, const std::vector<float>& w, float s, float z,
                   int64_t qmin, int64_t qmax, double g) {
  LsqGrads out;
  const float inv = 1.0f / s;
  for (size_t i = 0; i < x.size(); ++i) {
    const double q = std::nearbyint(z + x[i] * inv);
    if (q < qmin || q > qmax) {
      out.dx.push_back(0.0f);
      out.dscale += w[i] * ((q < qmin ? qmin : qmax) - z) * g;
      out.dzero_point += w[i] * -s * g;
    } else {
      out.dx.push_back(w[i]);
      const double y = (q - z) * s;
      out.dscale += w[i] * (y - x[i]) / s * g;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("LearnableFakeQuantize: LSQ scale gradient with gradient scaling", "[quant]") {
  // 4-bit symmetric qint8 [-8, 7], zero point 0 (a buffer), scale 0.25.
  auto observer = std::make_shared<MinMaxObserver>(ObserverOptions()
                                                       .with_dtype(QDType::QInt8)
                                                       .with_qscheme(QScheme::PerTensorSymmetric)
                                                       .with_range(-8, 7));
  LearnableFakeQuantize fq(observer, LearnableFakeQuantizeOptions().with_scale(0.25));
  fq.enable_param_learning();
  CHECK(fq.scale().requires_grad());
  CHECK_FALSE(fq.zero_point().requires_grad());
  const std::vector<float> xs = {-3.1f, -2.2f, -0.61f, 0.07f, 0.4f, 1.13f, 1.6f, 1.9f, 2.4f, 5.0f};
  const std::vector<float> ws = {0.5f, -1.0f, 2.0f, 1.5f, -0.25f, 1.0f, 3.0f, -2.0f, 0.75f, 1.0f};
  const auto x = torch::tensor(xs).reshape({2, 5}).requires_grad_(true);
  const auto w = torch::tensor(ws).reshape({2, 5});
  const auto y = fq(x);
  (y * w).sum().backward();
  const double g = 1.0 / std::sqrt(10.0 * 7.0);
  CHECK(fq.grad_factor(10) == Approx(g));
  const auto ref = lsq_grads(xs, ws, 0.25f, 0.0f, -8, 7, g);
  const auto ys = to_vector(y), dx = to_vector(x.grad());
  for (size_t i = 0; i < xs.size(); ++i) {
    INFO("x = " << xs[i]);
    CHECK(ys[i] == Approx(fake_quant(xs[i], 0.25f, 0, -8, 7).y).margin(1e-6));
    CHECK(dx[i] == ref.dx[i]);
  }
  REQUIRE(fq.scale().grad().defined());
  CHECK(fq.scale().grad().item<float>() == Approx(ref.dscale).epsilon(1e-5));

  // Without gradient scaling the factor is 1.
  LearnableFakeQuantize plain(
      std::make_shared<MinMaxObserver>(ObserverOptions()
                                           .with_dtype(QDType::QInt8)
                                           .with_qscheme(QScheme::PerTensorSymmetric)
                                           .with_range(-8, 7)),
      LearnableFakeQuantizeOptions().with_scale(0.25).with_use_grad_scaling(false));
  plain.enable_param_learning();
  const auto x2 = torch::tensor(xs).reshape({2, 5});
  (plain(x2) * w).sum().backward();
  CHECK(plain.scale().grad().item<float>() == Approx(ref.dscale / g).epsilon(1e-5));
}

TEST_CASE("LearnableFakeQuantize: LSQ+ zero point gradient", "[quant]") {
  // 4-bit affine quint8 [0, 15], learnable zero point 3, scale 0.2.
  LearnableFakeQuantize fq(
      std::make_shared<MinMaxObserver>(ObserverOptions().with_range(0, 15)),
      LearnableFakeQuantizeOptions().with_scale(0.2).with_zero_point(3.0).with_zero_point_trainable(
          true));
  fq.enable_param_learning();
  CHECK(fq.zero_point().requires_grad());
  const std::vector<float> xs = {-1.52f, -0.58f, -0.33f, 0.0f, 0.47f, 1.25f, 2.31f, 2.45f, 3.93f};
  const std::vector<float> ws = {1.0f, 2.0f, -1.0f, 0.5f, 1.5f, -0.5f, 2.5f, 1.0f, -3.0f};
  const auto x = torch::tensor(xs).requires_grad_(true);
  (fq(x) * torch::tensor(ws)).sum().backward();
  const double g = 1.0 / std::sqrt(9.0 * 15.0);
  const auto ref = lsq_grads(xs, ws, 0.2f, 3.0f, 0, 15, g);
  CHECK(ref.dzero_point != 0.0);  // some elements are clipped
  CHECK(fq.scale().grad().item<float>() == Approx(ref.dscale).epsilon(1e-5));
  CHECK(fq.zero_point().grad().item<float>() == Approx(ref.dzero_point).epsilon(1e-5));
  const auto dx = to_vector(x.grad());
  for (size_t i = 0; i < xs.size(); ++i) CHECK(dx[i] == ref.dx[i]);
}

TEST_CASE("LearnableFakeQuantize per channel: gradients per channel", "[quant]") {
  auto observer = std::make_shared<PerChannelMinMaxObserver>(
      ObserverOptions().with_range(0, 15).with_num_channels(2));
  LearnableFakeQuantize fq(observer,
                           LearnableFakeQuantizeOptions().with_zero_point_trainable(true));
  REQUIRE(fq.scale().sizes() == torch::IntArrayRef({2}));
  {
    torch::NoGradGuard no_grad;
    fq.scale().copy_(torch::tensor({0.1f, 0.5f}));
    fq.zero_point().copy_(torch::tensor({2.0f, 7.0f}));
  }
  fq.enable_param_learning();
  const std::vector<std::vector<float>> xs = {{-0.33f, -0.04f, 0.52f, 1.37f, 2.0f},
                                              {-4.2f, -1.1f, 0.3f, 2.6f, 4.9f}};
  const std::vector<std::vector<float>> ws = {{1.0f, -2.0f, 0.5f, 1.5f, 3.0f},
                                              {2.0f, 1.0f, -1.0f, 0.25f, -0.5f}};
  const auto x = torch::stack({torch::tensor(xs[0]), torch::tensor(xs[1])}).requires_grad_(true);
  const auto w = torch::stack({torch::tensor(ws[0]), torch::tensor(ws[1])});
  const auto y = fq(x);
  (y * w).sum().backward();
  const double g = 1.0 / std::sqrt(10.0 * 15.0);  // numel of the whole tensor, as MMRazor
  const std::vector<float> s = {0.1f, 0.5f}, z = {2.0f, 7.0f};
  for (int c = 0; c < 2; ++c) {
    INFO("channel " << c);
    const auto ref = lsq_grads(xs[c], ws[c], s[c], z[c], 0, 15, g);
    CHECK(fq.scale().grad()[c].item<float>() == Approx(ref.dscale).epsilon(1e-5));
    CHECK(fq.zero_point().grad()[c].item<float>() == Approx(ref.dzero_point).epsilon(1e-5));
    const auto ys = to_vector(y[c]), dx = to_vector(x.grad()[c]);
    for (size_t i = 0; i < xs[c].size(); ++i) {
      CHECK(ys[i] ==
            Approx(fake_quant(xs[c][i], s[c], static_cast<int64_t>(z[c]), 0, 15).y).margin(1e-6));
      CHECK(dx[i] == ref.dx[i]);
    }
  }
}

TEST_CASE("LearnableFakeQuantize modes", "[quant]") {
  auto observer = std::make_shared<LSQObserver>(
      ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric).with_range(0, 255));
  LearnableFakeQuantize fq(observer);
  // MMRazor's initial state: static estimate on, fake quant on, learning off; qparams (1, 0).
  CHECK(fq.observer_enabled());
  CHECK(fq.fake_quant_enabled());
  CHECK_FALSE(fq.learning_enabled());
  CHECK_FALSE(fq.scale().requires_grad());
  auto qp = fq.calculate_qparams();
  CHECK(qp.scale.item<float>() == 1.0f);
  CHECK(qp.zero_point.item<int64_t>() == 0);

  // Static estimate: the observer's LSQ scale is copied in at every forward.
  const auto x = torch::tensor({0.5f, -1.0f, 2.0f, 0.1f});
  fq.enable_static_estimate();
  const auto y = fq(x);
  const float scale = 2 * (0.5f + 1.0f + 2.0f + 0.1f) / 4 / std::sqrt(255.0f);
  CHECK(fq.scale().item<float>() == Approx(scale).epsilon(1e-6));
  CHECK(fq.zero_point().item<float>() == 127.0f);
  const auto xs = to_vector(x), ys = to_vector(y);
  for (size_t i = 0; i < xs.size(); ++i) {
    CHECK(ys[i] == Approx(fake_quant(xs[i], fq.scale().item<float>(), 127, 0, 255).y).margin(1e-6));
  }

  // Parameter learning: the observer is off, the scale learns.
  fq.enable_param_learning();
  CHECK(fq.learning_enabled());
  CHECK(fq.scale().requires_grad());
  fq(x * 3);
  CHECK(observer->tensor_norm().item<float>() == Approx((0.5f + 1.0f + 2.0f + 0.1f) / 4));

  // Validation: fake quant only; the scale stays.
  fq.enable_val();
  CHECK_FALSE(fq.scale().requires_grad());
  fq(x * 5);
  CHECK(fq.scale().item<float>() == Approx(scale).epsilon(1e-6));

  // Static observation: forward returns x, the observer still watches.
  fq.enable_static_observation();
  const auto z = torch::tensor({4.0f, -4.0f});
  CHECK(torch::equal(fq(z), z));
  CHECK(observer->tensor_norm().item<float>() == 4.0f);

  // The learning flag is a buffer: a load restores it and forward follows it.
  fq.enable_param_learning();
  const std::string path = temp_file("lsq.pt");
  save_module(fq, path);
  LearnableFakeQuantize loaded(std::make_shared<LSQObserver>(
      ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric).with_range(0, 255)));
  load_module(loaded, path);
  std::filesystem::remove(path);
  CHECK(loaded.learning_enabled());
  CHECK_FALSE(loaded.observer_enabled());
  loaded(x);
  CHECK(loaded.scale().requires_grad());
  CHECK(loaded.scale().item<float>() == fq.scale().item<float>());
  std::set<std::string> keys;
  for (const auto& item : loaded.named_parameters()) keys.insert(item.key());
  CHECK(keys == std::set<std::string>{"scale"});
}

TEST_CASE("LearnableFakeQuantize clamps a zero static scale to eps", "[quant]") {
  auto observer =
      std::make_shared<LSQPerChannelObserver>(ObserverOptions()
                                                  .with_dtype(QDType::QInt8)
                                                  .with_qscheme(QScheme::PerChannelSymmetric)
                                                  .with_range(-127, 127));
  LearnableFakeQuantize fq(observer);
  auto x = torch::ones({2, 10});
  x[0] -= 1;
  const auto y = fq(x);  // static estimate: scale [0, 2 / sqrt(127)] -> [eps, ...]
  REQUIRE(fq.scale().sizes() == torch::IntArrayRef({2}));
  CHECK(fq.scale()[0].item<float>() == kEps);
  CHECK(fq.scale()[1].item<float>() == Approx(2.0f / std::sqrt(127.0f)).epsilon(1e-6));
  CHECK(torch::isfinite(y).all().item<bool>());
  CHECK(torch::equal(y[0], torch::zeros({10})));
}

TEST_CASE("Mode switches apply to every quantiser of a module tree", "[quant]") {
  struct Block : torch::nn::Module {
    Block() {
      register_module("weight_quant",
                      std::make_shared<FakeQuantize>(std::make_shared<MinMaxObserver>()));
      register_module("input_quant",
                      std::make_shared<LearnableFakeQuantize>(
                          std::make_shared<LSQObserver>(ObserverOptions().with_range(0, 255))));
    }
  };
  struct Net : torch::nn::Module {
    Net() {
      register_module("a", std::make_shared<Block>());
      register_module("b", std::make_shared<Block>());
    }
  };
  Net net;
  const auto all = fake_quantizers(net);
  REQUIRE(all.size() == 4);
  enable_observer(net, false);
  enable_fake_quant(net, false);
  for (auto* fq : all) {
    CHECK_FALSE(fq->observer_enabled());
    CHECK_FALSE(fq->fake_quant_enabled());
  }
  enable_param_learning(net);  // LearnableFakeQuantize only
  for (auto* fq : all) {
    auto* learnable = dynamic_cast<LearnableFakeQuantize*>(fq);
    CHECK(fq->fake_quant_enabled() == (learnable != nullptr));
    if (learnable) CHECK(learnable->learning_enabled());
  }
  enable_static_estimate(net);
  enable_val(net);
  for (auto* fq : all) {
    if (auto* learnable = dynamic_cast<LearnableFakeQuantize*>(fq)) {
      CHECK_FALSE(learnable->learning_enabled());
      CHECK_FALSE(learnable->observer_enabled());
      CHECK(learnable->fake_quant_enabled());
    }
  }
  FakeQuantize single(std::make_shared<MinMaxObserver>());
  CHECK(fake_quantizers(single).size() == 1);  // the root itself
  reset_statistics(net);
}
