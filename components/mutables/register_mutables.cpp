#include "components/mutables/register_mutables.h"

#include <memory>
#include <string>

#include "components/mutables/choice_route.h"
#include "components/mutables/mutable_op.h"
#include "components/mutables/mutable_value.h"
#include "engine/model.h"

namespace razor {

namespace {

using ModulePtr = std::shared_ptr<torch::nn::Module>;

/// Builds each entry of `candidates`, with `module_kwargs` merged into its table.
Candidates build_candidates(Args& args, const BuildContext& context, const std::string& key) {
  const Json kwargs = args.has("module_kwargs") ? args.raw("module_kwargs") : Json::object();
  Args table = args.sub(key);
  RAZOR_CHECK(!table.table().empty(), table.where(), ": needs at least one candidate");
  Candidates out;
  for (const auto& item : table.table().items()) {
    table.accept(item.key());
    RAZOR_CHECK(item.value().is_object(), table.where(item.key()),
                ": a candidate is a table with a type, got ", item.value().dump());
    Json merged = item.value();
    for (const auto& kw : kwargs.items()) {
      if (!merged.contains(kw.key())) merged[kw.key()] = kw.value();
    }
    Args candidate(merged, table.path() + "." + item.key(), args.config());
    out.emplace_back(item.key(), build_model_as<nn::Module>(candidate, context, "a candidate op"));
  }
  table.finish();
  return out;
}

std::vector<Choice> value_list(Args& args) {
  const Json& raw = args.raw("value_list");
  RAZOR_CHECK(raw.is_array() && !raw.empty(), args.where("value_list"),
              ": must be a non-empty array, got ", raw.dump());
  return std::vector<Choice>(raw.begin(), raw.end());
}

}  // namespace

void register_mutables() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = model_registry();
  registry.add("OneShotMutableOP", [](Args& args, const BuildContext& ctx) -> ModulePtr {
    return std::make_shared<OneShotMutableOP>(build_candidates(args, ctx, "candidates"),
                                              args.get("alias", ""));
  });
  registry.add("OneShotProbMutableOP", [](Args& args, const BuildContext& ctx) -> ModulePtr {
    auto candidates = build_candidates(args, ctx, "candidates");
    auto probs = args.require<std::vector<double>>("choice_probs");
    if (probs.size() != candidates.size()) {
      args.fail("choice_probs", "has " + std::to_string(probs.size()) + " values for " +
                                    std::to_string(candidates.size()) + " candidates");
    }
    return std::make_shared<OneShotProbMutableOP>(std::move(candidates), probs,
                                                  args.get("alias", ""));
  });
  registry.add("DiffMutableOP", [](Args& args, const BuildContext& ctx) -> ModulePtr {
    return std::make_shared<DiffMutableOP>(build_candidates(args, ctx, "candidates"),
                                           args.get("alias", ""));
  });
  registry.add("OneHotMutableOP", [](Args& args, const BuildContext& ctx) -> ModulePtr {
    const double threshold = args.get<double>("fix_threshold", 1.0);
    if (threshold <= 0 || threshold > 1) args.fail("fix_threshold", "must be in (0, 1]");
    return std::make_shared<OneHotMutableOP>(build_candidates(args, ctx, "candidates"), threshold,
                                             args.get("alias", ""));
  });
  registry.add("DiffChoiceRoute", [](Args& args, const BuildContext& ctx) -> ModulePtr {
    return std::make_shared<DiffChoiceRoute>(build_candidates(args, ctx, "edges"),
                                             args.get<bool>("with_arch_param", true),
                                             args.get<int64_t>("num_chosen", 2),
                                             args.get("alias", ""));
  });
  registry.add("GumbelChoiceRoute", [](Args& args, const BuildContext& ctx) -> ModulePtr {
    return std::make_shared<GumbelChoiceRoute>(
        build_candidates(args, ctx, "edges"), args.get<double>("tau", 1.0),
        args.get<bool>("hard", true), args.get<bool>("with_arch_param", true),
        args.get<int64_t>("num_chosen", 2), args.get("alias", ""));
  });
  registry.add("MutableValue", [](Args& args, const BuildContext&) -> ModulePtr {
    return std::make_shared<MutableValue>(value_list(args), args.get("alias", ""));
  });
  registry.add("OneShotMutableValue", [](Args& args, const BuildContext&) -> ModulePtr {
    return std::make_shared<OneShotMutableValue>(value_list(args), args.get("alias", ""));
  });
}

}  // namespace razor
