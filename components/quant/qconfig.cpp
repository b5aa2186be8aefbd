#include "components/quant/qconfig.h"

#include <set>
#include <utility>

#include "components/quant/register_quant.h"
#include "engine/strings.h"

namespace razor::quant {

namespace {

// MMRazor's check_qconfig keys, in the order errors report a missing one.
const char* const kRequired[] = {"w_observer",   "a_observer", "w_fake_quant",
                                 "a_fake_quant", "w_qscheme",  "a_qscheme"};
// Keys of the qscheme tables themselves.
const std::set<std::string> kQSchemeKeys = {
    "qdtype", "bit", "is_symmetry", "is_symmetric_range", "is_per_channel", "reduce_range"};
// Observer arguments the qscheme decides; nobody may set them elsewhere.
const std::set<std::string> kDerived = {"dtype",        "qscheme", "quant_min",   "quant_max",
                                        "reduce_range", "ch_axis", "num_channels"};

std::string strip_scope(const std::string& type) {
  const std::string scope = "mmrazor.";
  return type.rfind(scope, 0) == 0 ? type.substr(scope.size()) : type;
}

// The `type` of the table at `key` (checked against `registry`) and its other keys.
template <class T>
std::pair<std::string, Json> read_component(Args& args, const std::string& key,
                                            const Registry<T>& registry,
                                            const std::string& qscheme_key) {
  Args table = args.sub(key);
  const std::string type = strip_scope(table.require<std::string>("type"));
  if (!registry.contains(type)) {
    table.fail("type", "unknown " + registry.name() + " type \"" + type + "\"" +
                           did_you_mean(type, registry.names()) +
                           " (registered: " + join(registry.names(), ", ") + ")");
  }
  Json rest = Json::object();
  for (const auto& item : table.table().items()) {
    if (item.key() == "type") continue;
    if (kDerived.count(item.key())) {
      table.fail(item.key(), "is derived from " + qscheme_key +
                                 " (qdtype, bit, is_symmetry, is_symmetric_range, reduce_range) "
                                 "or set by the quantizer; do not set it here");
    }
    rest[item.key()] = item.value();
  }
  return {type, rest};
}

QSchemeConfig read_qscheme(Args& args, bool weight, const std::string& observer_type) {
  const std::string side = weight ? "w" : "a";
  Args table = args.sub(side + "_qscheme");
  QSchemeConfig scheme;
  const std::string qdtype = table.get("qdtype", "quint8");
  const auto dtype = parse_qdtype(qdtype);
  if (!dtype) table.fail("qdtype", "must be \"quint8\" or \"qint8\", got \"" + qdtype + "\"");
  scheme.qdtype = *dtype;
  scheme.bit = table.get<int64_t>("bit", 8);
  const bool bit_ok = (scheme.bit >= 2 && scheme.bit <= 8) || (!weight && scheme.bit == 16);
  if (!bit_ok) {
    table.fail("bit", std::string(weight ? "must be between 2 and 8 for weights"
                                         : "must be between 2 and 8, or 16, for activations") +
                          ", got " + std::to_string(scheme.bit));
  }
  scheme.is_symmetry = table.get<bool>("is_symmetry", true);
  scheme.is_symmetric_range = table.get<bool>("is_symmetric_range", false);
  scheme.reduce_range = table.get<bool>("reduce_range", false);

  // MMRazor: per channel iff the observer's class name says "PerChannel".
  const bool typed_per_channel = observer_type.find("PerChannel") != std::string::npos;
  const auto given = table.optional<bool>("is_per_channel");
  if (!weight && (typed_per_channel || given.value_or(false))) {
    const std::string message =
        "per-channel activation quantisation is not supported (activations are quantised "
        "per tensor: use a per-tensor observer such as MovingAverageMinMaxObserver)";
    if (typed_per_channel)
      args.sub("a_observer").fail("type", "\"" + observer_type + "\": " + message);
    table.fail("is_per_channel", message);
  }
  if (given && *given != typed_per_channel) {
    table.fail("is_per_channel", *given ? "is true, but " + side + "_observer " + observer_type +
                                              " is a per-tensor observer (use a PerChannel one)"
                                        : "is false, but " + side + "_observer " + observer_type +
                                              " is a per-channel observer");
  }
  scheme.is_per_channel = typed_per_channel;

  for (const auto& item : table.table().items()) {
    if (kQSchemeKeys.count(item.key())) continue;
    if (kDerived.count(item.key())) {
      table.fail(item.key(),
                 "is derived from qdtype, bit, is_symmetry and is_symmetric_range; "
                 "do not set it here");
    }
    scheme.extra[item.key()] = item.value();
    table.accept(item.key());
  }
  return scheme;
}

}  // namespace

QScheme QSchemeConfig::torch_qscheme() const {
  if (is_per_channel) return is_symmetry ? QScheme::PerChannelSymmetric : QScheme::PerChannelAffine;
  return is_symmetry ? QScheme::PerTensorSymmetric : QScheme::PerTensorAffine;
}

Json QSchemeConfig::observer_params() const {
  Json params = extra;
  params["dtype"] = to_string(qdtype);
  params["qscheme"] = to_string(torch_qscheme());
  params["quant_min"] = quant_min();
  params["quant_max"] = quant_max();
  params["reduce_range"] = reduce_range;
  if (is_per_channel) params["ch_axis"] = 0;
  return params;
}

QConfig QConfig::parse(Args& args) {
  register_quant();
  QConfig q;
  q.path_ = args.path();
  q.config_ = args.config();
  for (const char* key : kRequired) {
    if (!args.has(key)) args.fail_missing(key);
  }
  std::tie(q.w_observer_type_, q.w_observer_args_) =
      read_component(args, "w_observer", observer_registry(), "w_qscheme");
  std::tie(q.a_observer_type_, q.a_observer_args_) =
      read_component(args, "a_observer", observer_registry(), "a_qscheme");
  std::tie(q.w_fake_quant_type_, q.w_fake_quant_args_) =
      read_component(args, "w_fake_quant", fake_quant_registry(), "w_qscheme");
  std::tie(q.a_fake_quant_type_, q.a_fake_quant_args_) =
      read_component(args, "a_fake_quant", fake_quant_registry(), "a_qscheme");
  q.w_qscheme_ = read_qscheme(args, true, q.w_observer_type_);
  q.a_qscheme_ = read_qscheme(args, false, q.a_observer_type_);
  args.finish();

  // A key set twice (in the qscheme and in the observer or fake-quant table) is ambiguous.
  for (const bool weight : {true, false}) {
    const std::string side = weight ? "w" : "a";
    const QSchemeConfig& scheme = weight ? q.w_qscheme_ : q.a_qscheme_;
    const Json& observer = weight ? q.w_observer_args_ : q.a_observer_args_;
    const Json& fake_quant = weight ? q.w_fake_quant_args_ : q.a_fake_quant_args_;
    for (const auto& item : scheme.extra.items()) {
      for (const auto& [other, table] :
           {std::pair<std::string, const Json*>{"_observer", &observer},
            {"_fake_quant", &fake_quant}}) {
        if (table->contains(item.key())) {
          args.fail(side + "_qscheme." + item.key(), "is also set in " + side + other);
        }
      }
    }
    for (const auto& item : fake_quant.items()) {
      if (observer.contains(item.key())) {
        args.fail(side + "_fake_quant." + item.key(), "is also set in " + side + "_observer");
      }
    }
  }
  // Build both once: every argument is checked now, not when a model is being prepared.
  q.build(true, -1, {});
  q.build(false, -1, {});
  return q;
}

QConfig QConfig::parse(const Json& table, const std::string& path) {
  Args args = Args::of(table, path);
  return parse(args);
}

Json QConfig::fake_quant_table(bool weight, int64_t num_channels) const {
  const QSchemeConfig& scheme = weight ? w_qscheme_ : a_qscheme_;
  Json table = {{"type", weight ? w_fake_quant_type_ : a_fake_quant_type_}};
  table.update(weight ? w_fake_quant_args_ : a_fake_quant_args_);
  // Passed on to the observer by the fake quantiser (unless it takes them itself).
  table.update(scheme.observer_params());
  if (scheme.is_per_channel && num_channels > 0) table["num_channels"] = num_channels;
  Json observer = {{"type", weight ? w_observer_type_ : a_observer_type_}};
  observer.update(weight ? w_observer_args_ : a_observer_args_);
  table["observer"] = std::move(observer);
  return table;
}

QConfig QConfig::with_weight_bit(int64_t bit) const {
  RAZOR_CHECK(bit >= 2 && bit <= 8, path_, ": weight bit widths are 2..8, got ", bit);
  QConfig q = *this;
  q.w_qscheme_.bit = bit;
  return q;
}

Json QConfig::weight_fake_quant_table(int64_t num_channels) const {
  return fake_quant_table(true, num_channels);
}

Json QConfig::activation_fake_quant_table() const { return fake_quant_table(false, -1); }

std::shared_ptr<FakeQuantizer> QConfig::build(bool weight, int64_t num_channels,
                                              const BuildContext& context) const {
  const std::string side = weight ? "w" : "a";
  const Json table = fake_quant_table(weight, num_channels);
  const std::string fake_quant_path = join_key(path_, side + "_fake_quant");
  Args args(table, fake_quant_path, config_);
  try {
    return fake_quant_registry().build(args, context);
  } catch (const Error& e) {
    // The built table merges three of the user's tables; say which one a bad key is in.
    static const Json empty = Json::object();
    const Args user(empty, path_, config_);
    const std::string message = e.what();
    const std::string observer_path = fake_quant_path + ".observer";
    const std::string& fq_type = weight ? w_fake_quant_type_ : a_fake_quant_type_;
    const std::string& obs_type = weight ? w_observer_type_ : a_observer_type_;
    const auto unknown = [&](const std::string& key) {
      return message.find(observer_path + "." + key + ": unknown key") != std::string::npos;
    };
    const QSchemeConfig& scheme = weight ? w_qscheme_ : a_qscheme_;
    for (const auto& item : scheme.extra.items()) {
      if (unknown(item.key())) {
        user.fail(side + "_qscheme." + item.key(),
                  "unknown key: neither " + fq_type + " nor " + obs_type + " takes it");
      }
    }
    for (const auto& item : (weight ? w_fake_quant_args_ : a_fake_quant_args_).items()) {
      if (unknown(item.key())) {
        user.fail(side + "_fake_quant." + item.key(),
                  "unknown key: neither " + fq_type + " nor " + obs_type + " takes it");
      }
    }
    for (const auto& item : (weight ? w_observer_args_ : a_observer_args_).items()) {
      if (unknown(item.key())) {
        user.fail(side + "_observer." + item.key(),
                  "unknown key: " + obs_type + " does not take it");
      }
    }
    // Anything else about the observer: name the user's observer table.
    std::string renamed = message;
    const std::string user_observer = join_key(path_, side + "_observer");
    for (size_t at = renamed.find(observer_path); at != std::string::npos;
         at = renamed.find(observer_path, at + user_observer.size())) {
      renamed.replace(at, observer_path.size(), user_observer);
    }
    throw Error(e.kind(), renamed);
  }
}

std::shared_ptr<FakeQuantizer> QConfig::build_weight_fake_quant(int64_t num_channels,
                                                                const BuildContext& context) const {
  return build(true, num_channels, context);
}

std::shared_ptr<FakeQuantizer> QConfig::build_activation_fake_quant(
    const BuildContext& context) const {
  return build(false, -1, context);
}

}  // namespace razor::quant
