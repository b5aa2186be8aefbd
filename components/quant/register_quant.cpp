#include "components/quant/register_quant.h"

#include <functional>
#include <set>
#include <string>

#include "components/quant/histogram_observer.h"
#include "components/quant/learnable_fake_quantize.h"
#include "components/quant/lsq_observers.h"
#include "components/quant/minmax_observers.h"
#include "components/quant/mse_observer.h"
#include "components/quant/percentile_observer.h"
#include "engine/strings.h"

namespace razor::quant {

Registry<Observer>& observer_registry() {
  static Registry<Observer> registry("observers");
  return registry;
}

Registry<FakeQuantizer>& fake_quant_registry() {
  static Registry<FakeQuantizer> registry("fake_quants");
  return registry;
}

ObserverOptions read_observer_options(Args& args, bool per_channel) {
  ObserverOptions options;
  const std::string dtype = args.get("dtype", "quint8");
  const auto parsed_dtype = parse_qdtype(dtype);
  if (!parsed_dtype) args.fail("dtype", "must be \"quint8\" or \"qint8\", got \"" + dtype + "\"");
  options.dtype = *parsed_dtype;
  if (auto qscheme = args.optional<std::string>("qscheme")) {
    const auto parsed = parse_qscheme(*qscheme);
    if (!parsed) {
      args.fail("qscheme",
                "must be one of per_tensor_affine, per_tensor_symmetric, "
                "per_channel_affine, per_channel_symmetric; got \"" +
                    *qscheme + "\"");
    }
    options.qscheme = *parsed;
  }
  options.reduce_range = args.get<bool>("reduce_range", false);
  options.quant_min = args.optional<int64_t>("quant_min");
  options.quant_max = args.optional<int64_t>("quant_max");
  options.eps = args.get<double>("eps", options.eps);
  if (per_channel) {
    options.ch_axis = args.get<int64_t>("ch_axis", 0);
    options.num_channels = args.get<int64_t>("num_channels", -1);
  }
  return options;
}

namespace {

using ObserverPtr = std::shared_ptr<Observer>;
using FakeQuantPtr = std::shared_ptr<FakeQuantizer>;

// The observer of a fake-quant table: its `observer` table plus every key of the fake-quant
// table that is not the fake quantiser's own (torch's **observer_kwargs). `complete` may add
// defaults to the merged table.
ObserverPtr build_observer_of(Args& args, const BuildContext& context,
                              const std::set<std::string>& own_keys,
                              const std::function<void(Json&)>& complete = nullptr) {
  Json table = Json::object();
  if (args.has("observer")) {
    const Json& raw = args.raw("observer");
    if (!raw.is_object()) args.fail("observer", "expected a table with a type, got " + raw.dump());
    table = raw;
  } else {
    table["type"] = "MovingAverageMinMaxObserver";
  }
  for (const auto& item : args.table().items()) {
    const std::string& key = item.key();
    if (key == "type" || key == "observer" || own_keys.count(key)) continue;
    if (table.contains(key)) args.fail(key, "is set both here and in the observer table");
    table[key] = item.value();
    args.accept(key);
  }
  if (complete) complete(table);
  Args observer_args(table, join_key(args.path(), "observer"), args.config());
  return observer_registry().build(observer_args, context);
}

void register_observers() {
  auto& registry = observer_registry();
  registry.add("MinMaxObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    return std::make_shared<MinMaxObserver>(read_observer_options(args, false));
  });
  registry.add("MovingAverageMinMaxObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    auto options = read_observer_options(args, false);
    return std::make_shared<MovingAverageMinMaxObserver>(
        options, args.get<double>("averaging_constant", 0.01));
  });
  registry.add("PerChannelMinMaxObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    return std::make_shared<PerChannelMinMaxObserver>(read_observer_options(args, true));
  });
  registry.add("MovingAveragePerChannelMinMaxObserver",
               [](Args& args, const BuildContext&) -> ObserverPtr {
                 auto options = read_observer_options(args, true);
                 return std::make_shared<MovingAveragePerChannelMinMaxObserver>(
                     options, args.get<double>("averaging_constant", 0.01));
               });
  registry.add("HistogramObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    auto options = read_observer_options(args, false);
    HistogramOptions histogram;
    histogram.bins = args.get<int64_t>("bins", histogram.bins);
    histogram.upsample_rate = args.get<int64_t>("upsample_rate", histogram.upsample_rate);
    return std::make_shared<HistogramObserver>(options, histogram);
  });
  registry.add("PercentileObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    auto options = read_observer_options(args, false);
    PercentileOptions percentile;
    percentile.percentile = args.get<double>("percentile", percentile.percentile);
    percentile.averaging_constant =
        args.get<double>("averaging_constant", percentile.averaging_constant);
    return std::make_shared<PercentileObserver>(options, percentile);
  });
  registry.add("MSEObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    auto options = read_observer_options(args, false);
    MSEOptions mse;
    mse.p = args.get<double>("p", mse.p);
    mse.num_candidates = args.get<int64_t>("num_candidates", mse.num_candidates);
    return std::make_shared<MSEObserver>(options, mse);
  });
  registry.add("LSQObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    return std::make_shared<LSQObserver>(read_observer_options(args, false));
  });
  registry.add("LSQPerChannelObserver", [](Args& args, const BuildContext&) -> ObserverPtr {
    return std::make_shared<LSQPerChannelObserver>(read_observer_options(args, true));
  });
}

void register_fake_quants() {
  auto& registry = fake_quant_registry();
  registry.add("FakeQuantize", [](Args& args, const BuildContext& context) -> FakeQuantPtr {
    return std::make_shared<FakeQuantize>(build_observer_of(args, context, {}));
  });
  registry.add(
      "LearnableFakeQuantize", [](Args& args, const BuildContext& context) -> FakeQuantPtr {
        LearnableFakeQuantizeOptions options;
        options.scale = args.get<double>("scale", options.scale);
        options.zero_point = args.get<double>("zero_point", options.zero_point);
        options.use_grad_scaling = args.get<bool>("use_grad_scaling", options.use_grad_scaling);
        options.zero_point_trainable =
            args.get<bool>("zero_point_trainable", options.zero_point_trainable);
        const std::set<std::string> own = {"scale", "zero_point", "use_grad_scaling",
                                           "zero_point_trainable"};
        auto observer = build_observer_of(args, context, own, [](Json& table) {
          if (table.contains("quant_min") || table.contains("quant_max")) return;
          const bool qint8 = table.value("dtype", Json("quint8")) == Json("qint8");
          table["quant_min"] = qint8 ? -128 : 0;
          table["quant_max"] = qint8 ? 127 : 255;
        });
        return std::make_shared<LearnableFakeQuantize>(observer, options);
      });
}

}  // namespace

void register_quant() {
  static bool done = false;
  if (done) return;
  done = true;
  register_observers();
  register_fake_quants();
}

}  // namespace razor::quant
