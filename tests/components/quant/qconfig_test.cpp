// The qconfig parser (MMRazor's QConfigHandler / QSchemeHandler) and the registries it builds
// from: ranges and schemes as MMRazor derives them, the shipped configs, and every rejection
// naming the key at fault.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "components/quant/quant.h"
#include "engine/config.h"
#include "engine/error.h"
#include "tests/components/quant/shipped_qconfig.h"

using namespace razor;
using namespace razor::quant;
using razor::test::shipped_qconfig;

namespace {

Json with(Json table, const std::string& side, const std::string& key, const Json& value) {
  table[side][key] = value;
  return table;
}

}  // namespace

TEST_CASE("QConfig reads MMRazor's shipped qconfig", "[quant]") {
  const QConfig q = QConfig::parse(shipped_qconfig(), "global_qconfig");
  CHECK(q.w_observer_type() == "PerChannelMinMaxObserver");
  CHECK(q.w_qscheme().is_per_channel);
  CHECK_FALSE(q.a_qscheme().is_per_channel);
  CHECK(q.w_qscheme().quant_min() == -127);
  CHECK(q.w_qscheme().quant_max() == 127);
  CHECK(q.w_qscheme().torch_qscheme() == QScheme::PerChannelSymmetric);
  CHECK(q.a_qscheme().torch_qscheme() == QScheme::PerTensorSymmetric);

  const auto w = q.build_weight_fake_quant();
  REQUIRE(dynamic_cast<FakeQuantize*>(w.get()));
  CHECK(dynamic_cast<PerChannelMinMaxObserver*>(&w->observer()));
  CHECK(w->per_channel());
  CHECK(w->ch_axis() == 0);
  CHECK(w->dtype() == QDType::QInt8);
  CHECK((w->quant_min() == -127 && w->quant_max() == 127));

  const auto a = q.build_activation_fake_quant();
  auto* observer = dynamic_cast<MovingAverageMinMaxObserver*>(&a->observer());
  REQUIRE(observer);
  CHECK(observer->averaging_constant() == 0.1);
  CHECK(a->ch_axis() == -1);
  CHECK((a->quant_min() == 0 && a->quant_max() == 255));
  // An explicit range: symmetric quint8 puts the zero point at (0 + 255) // 2 = 127.
  (*a)(torch::tensor({-1.0f, 2.0f}));
  CHECK(a->zero_point().item<int>() == 127);
  CHECK(a->scale().item<float>() == Approx(2.0f / 127.5f).epsilon(1e-6));

  // Per-channel weights with a known channel count get their final shapes at once.
  const auto w16 = q.build_weight_fake_quant(16);
  CHECK(w16->scale().sizes() == torch::IntArrayRef({16}));
  CHECK(q.weight_fake_quant_table(16)["num_channels"] == 16);
  CHECK(q.activation_fake_quant_table()["observer"]["type"] == "MovingAverageMinMaxObserver");
}

TEST_CASE("QConfig derives ranges as MMRazor's QSchemeHandler", "[quant]") {
  struct Case {
    std::string qdtype;
    int bit;
    bool symmetric_range;
    int64_t qmin, qmax;
  };
  const std::vector<Case> cases = {
      {"quint8", 8, false, 0, 255}, {"qint8", 8, false, -128, 127}, {"qint8", 8, true, -127, 127},
      {"quint8", 4, false, 0, 15},  {"qint8", 4, false, -8, 7},     {"qint8", 4, true, -7, 7},
      {"quint8", 2, false, 0, 3},   {"qint8", 2, false, -2, 1},
  };
  for (const auto& c : cases) {
    INFO(c.qdtype << " " << c.bit << (c.symmetric_range ? " symmetric range" : ""));
    Json table = shipped_qconfig();
    for (const char* side : {"w_qscheme", "a_qscheme"}) {
      table[side] = {{"qdtype", c.qdtype},
                     {"bit", c.bit},
                     {"is_symmetry", false},
                     {"is_symmetric_range", c.symmetric_range}};
    }
    const QConfig q = QConfig::parse(table);
    for (const auto& fq : {q.build_weight_fake_quant(), q.build_activation_fake_quant()}) {
      CHECK(fq->quant_min() == c.qmin);
      CHECK(fq->quant_max() == c.qmax);
      CHECK(fq->observer().range().customized);
      CHECK(fq->dtype() == (c.qdtype == "qint8" ? QDType::QInt8 : QDType::QUInt8));
    }
  }
  // 16-bit activations; reduce_range halves a range as torch's.
  Json table = with(shipped_qconfig(), "a_qscheme", "bit", 16);
  table["a_qscheme"]["is_symmetry"] = false;
  CHECK(QConfig::parse(table).build_activation_fake_quant()->quant_max() == 65535);
  table = with(shipped_qconfig(), "w_qscheme", "reduce_range", true);
  const auto reduced = QConfig::parse(table).build_weight_fake_quant();
  CHECK((reduced->quant_min() == -64 && reduced->quant_max() == 63));
  // An explicit is_per_channel that agrees with the observer is fine.
  table = with(shipped_qconfig(), "w_qscheme", "is_per_channel", true);
  CHECK(QConfig::parse(table).w_qscheme().is_per_channel);
  table = with(shipped_qconfig(), "a_qscheme", "is_per_channel", false);
  CHECK_FALSE(QConfig::parse(table).a_qscheme().is_per_channel);
}

TEST_CASE("QConfig builds LSQ quantisers, qscheme extras go to whoever takes them", "[quant]") {
  Json table = Json::parse(R"({
    "w_observer": {"type": "LSQPerChannelObserver"},
    "a_observer": {"type": "LSQObserver"},
    "w_fake_quant": {"type": "LearnableFakeQuantize"},
    "a_fake_quant": {"type": "LearnableFakeQuantize", "use_grad_scaling": false},
    "w_qscheme": {"qdtype": "qint8", "bit": 4, "is_symmetry": true, "is_symmetric_range": true},
    "a_qscheme": {"qdtype": "quint8", "bit": 4, "is_symmetry": false, "zero_point_trainable": true}
  })");
  const QConfig q = QConfig::parse(table, "lsq");
  const auto w = q.build_weight_fake_quant(8);
  auto* lw = dynamic_cast<LearnableFakeQuantize*>(w.get());
  REQUIRE(lw);
  CHECK(dynamic_cast<LSQPerChannelObserver*>(&w->observer()));
  CHECK((w->quant_min() == -7 && w->quant_max() == 7));
  CHECK(lw->scale().sizes() == torch::IntArrayRef({8}));
  CHECK_FALSE(lw->options().zero_point_trainable);
  const auto a = q.build_activation_fake_quant();
  auto* la = dynamic_cast<LearnableFakeQuantize*>(a.get());
  REQUIRE(la);
  CHECK(la->options().zero_point_trainable);    // from a_qscheme, taken by the fake quantiser
  CHECK_FALSE(la->options().use_grad_scaling);  // from a_fake_quant's own table
  CHECK(la->grad_factor(100) == 1.0);
  CHECK((a->quant_min() == 0 && a->quant_max() == 15));
}

TEST_CASE("QConfig reads a TOML table and rejects bad qconfigs, naming the key", "[quant]") {
  const Config config = parse_config_text(R"(
[model.quantizer.global_qconfig]
w_observer = { type = "PerChannelMinMaxObserver" }
a_observer = { type = "HistogramObserver", bins = 256 }
w_fake_quant = { type = "FakeQuantize" }
a_fake_quant = { type = "FakeQuantize" }
w_qscheme = { qdtype = "qint8", bit = 8, is_symmetry = true }
a_qscheme = { qdtype = "quint8", bit = 8, is_symmetry = false }
)",
                                          "qat.toml");
  auto shared = std::make_shared<Config>(config);
  const Json& node = shared->tree["model"]["quantizer"]["global_qconfig"];
  Args args(node, "model.quantizer.global_qconfig", shared);
  const QConfig q = QConfig::parse(args);
  const auto a = q.build_activation_fake_quant();
  auto* histogram = dynamic_cast<HistogramObserver*>(&a->observer());
  REQUIRE(histogram);
  CHECK(histogram->histogram_options().bins == 256);

  const auto rejects = [](const Json& table, const std::string& key, const std::string& what) {
    INFO("expecting an error at " << key);
    CHECK_THROWS_WITH(QConfig::parse(table, "qc"),
                      Catch::Contains("qc." + key) && Catch::Contains(what));
  };
  for (const char* key :
       {"w_observer", "a_observer", "w_fake_quant", "a_fake_quant", "w_qscheme", "a_qscheme"}) {
    Json table = shipped_qconfig();
    table.erase(key);
    rejects(table, key, "missing required key");
  }
  rejects(with(shipped_qconfig(), "w_qscheme", "bit", 9), "w_qscheme.bit",
          "must be between 2 and 8 for weights, got 9");
  rejects(with(shipped_qconfig(), "a_qscheme", "bit", 1), "a_qscheme.bit", "got 1");
  rejects(with(shipped_qconfig(), "w_qscheme", "bit", 16), "w_qscheme.bit", "for weights");
  rejects(with(shipped_qconfig(), "a_qscheme", "bit", 12), "a_qscheme.bit", "or 16");
  rejects(with(shipped_qconfig(), "a_qscheme", "bit", "8"), "a_qscheme.bit", "expected an integer");
  rejects(with(shipped_qconfig(), "w_qscheme", "qdtype", "int8"), "w_qscheme.qdtype",
          "must be \"quint8\" or \"qint8\"");
  rejects(with(shipped_qconfig(), "a_observer", "type", "PerChannelMinMaxObserver"),
          "a_observer.type", "per-channel activation quantisation is not supported");
  rejects(with(shipped_qconfig(), "a_qscheme", "is_per_channel", true), "a_qscheme.is_per_channel",
          "per-channel activation quantisation is not supported");
  rejects(with(shipped_qconfig(), "w_qscheme", "is_per_channel", false), "w_qscheme.is_per_channel",
          "is a per-channel observer");
  rejects(with(with(shipped_qconfig(), "w_observer", "type", "MinMaxObserver"), "w_qscheme",
               "is_per_channel", true),
          "w_qscheme.is_per_channel", "is a per-tensor observer");
  rejects(with(shipped_qconfig(), "w_observer", "type", "PerChanelMinMaxObserver"),
          "w_observer.type", "did you mean \"PerChannelMinMaxObserver\"");
  rejects(with(shipped_qconfig(), "a_fake_quant", "type", "FakeQuantise"), "a_fake_quant.type",
          "unknown fake_quants type");
  rejects(with(shipped_qconfig(), "a_qscheme", "averaging_constnt", 0.1),
          "a_qscheme.averaging_constnt",
          "neither FakeQuantize nor MovingAverageMinMaxObserver takes it");
  rejects(with(shipped_qconfig(), "w_observer", "averaging_constant", 0.1),
          "w_observer.averaging_constant", "PerChannelMinMaxObserver does not take it");
  rejects(with(shipped_qconfig(), "w_observer", "quant_min", -3), "w_observer.quant_min",
          "is derived from w_qscheme");
  rejects(with(shipped_qconfig(), "a_qscheme", "quant_max", 100), "a_qscheme.quant_max",
          "is derived from");
  rejects(with(shipped_qconfig(), "a_observer", "averaging_constant", 0.2),
          "a_qscheme.averaging_constant", "is also set in a_observer");
  rejects(with(shipped_qconfig(), "a_qscheme", "averaging_constant", 3.0), "a_observer",
          "averaging_constant must be in [0, 1]");
  rejects(with(shipped_qconfig(), "w_qscheme", "is_symmetry", "yes"), "w_qscheme.is_symmetry",
          "expected true or false");
  Json extra = shipped_qconfig();
  extra["w_fakequant"] = Json::object();
  rejects(extra, "w_fakequant", "unknown key");
  Json not_table = shipped_qconfig();
  not_table["a_qscheme"] = 8;
  rejects(not_table, "a_qscheme", "expected a table");
}

TEST_CASE("The registries build observers and fake quantisers from tables", "[quant]") {
  register_quant();
  Json table = {{"type", "FakeQuantize"},
                {"observer", {{"type", "HistogramObserver"}, {"bins", 64}}},
                {"dtype", "qint8"},
                {"qscheme", "per_tensor_symmetric"}};
  Args args = Args::of(table, "fq");
  const auto fq = fake_quant_registry().build(args);
  auto* histogram = dynamic_cast<HistogramObserver*>(&fq->observer());
  REQUIRE(histogram);
  CHECK(histogram->histogram_options().bins == 64);
  CHECK(fq->dtype() == QDType::QInt8);
  CHECK(fq->qscheme() == QScheme::PerTensorSymmetric);
  CHECK_FALSE(histogram->range().customized);

  // The default observer is torch's: MovingAverageMinMaxObserver.
  Json plain = {{"type", "FakeQuantize"}, {"averaging_constant", 0.5}};
  Args plain_args = Args::of(plain, "fq");
  const auto fq2 = fake_quant_registry().build(plain_args);
  auto* moving = dynamic_cast<MovingAverageMinMaxObserver*>(&fq2->observer());
  REQUIRE(moving);
  CHECK(moving->averaging_constant() == 0.5);

  // LearnableFakeQuantize gives its observer an explicit 8-bit range (MMRazor's defaults);
  // with reduce_range the observer and the quantiser use [0, 127].
  Json lsq = {{"type", "LearnableFakeQuantize"},
              {"observer", {{"type", "LSQObserver"}}},
              {"reduce_range", true}};
  Args lsq_args = Args::of(lsq, "fq");
  const auto fq3 = fake_quant_registry().build(lsq_args);
  CHECK(fq3->observer().range().customized);
  CHECK(fq3->quant_max() == 127);
  const auto initial = fq3->calculate_qparams();
  CHECK(initial.scale.item<float>() == 1.0f);
  CHECK(initial.zero_point.item<int64_t>() == 0);

  for (const char* type :
       {"MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
        "MovingAveragePerChannelMinMaxObserver", "HistogramObserver", "PercentileObserver",
        "MSEObserver", "LSQObserver", "LSQPerChannelObserver"}) {
    INFO(type);
    Json t = {{"type", type}, {"dtype", "qint8"}};
    Args a = Args::of(t, "obs");
    const auto observer = observer_registry().build(a);
    CHECK(observer->type_name() == type);
    CHECK(observer->dtype() == QDType::QInt8);
    observer->observe(torch::randn({4, 6}));
    const auto qp = observer->calculate_qparams();
    CHECK(torch::isfinite(qp.scale).all().item<bool>());
    CHECK((qp.scale > 0).all().item<bool>());
  }
  Json bad = {{"type", "MinMaxObserver"}, {"ch_axis", 1}};
  Args bad_args = Args::of(bad, "obs");
  CHECK_THROWS_WITH(observer_registry().build(bad_args),
                    Catch::Contains("obs.ch_axis") && Catch::Contains("unknown key"));
  Json bad_scheme = {{"type", "MinMaxObserver"}, {"qscheme", "per_tensor"}};
  Args bad_scheme_args = Args::of(bad_scheme, "obs");
  CHECK_THROWS_WITH(observer_registry().build(bad_scheme_args),
                    Catch::Contains("obs.qscheme") && Catch::Contains("must be one of"));
  Json twice = {{"type", "FakeQuantize"},
                {"observer", {{"type", "MinMaxObserver"}, {"dtype", "qint8"}}},
                {"dtype", "qint8"}};
  Args twice_args = Args::of(twice, "fq");
  CHECK_THROWS_WITH(
      fake_quant_registry().build(twice_args),
      Catch::Contains("fq.dtype") && Catch::Contains("set both here and in the observer"));
}
