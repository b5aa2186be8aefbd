#include "algorithms/nas/evolution_search_loop.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "algorithms/nas/nas_algorithm.h"
#include "components/mutables/choice_route.h"
#include "components/mutables/mutable_op.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/bn_calibration.h"
#include "engine/checkpoint.h"
#include "engine/dist.h"
#include "engine/runner.h"
#include "engine/strings.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSearchFormat = "razor-search";

Json to_json(const SearchCandidate& c) {
  return Json{{"choices", c.choices},
              {"score", c.score},
              {"flops", c.resources.flops},
              {"params", c.resources.params},
              {"latency", c.resources.latency},
              {"scored", c.scored}};
}

SearchCandidate from_json(const Json& j) {
  SearchCandidate c;
  c.choices = j.at("choices");
  c.score = j.at("score").get<double>();
  c.resources.flops = j.at("flops").get<double>();
  c.resources.params = j.at("params").get<double>();
  c.resources.latency = j.at("latency").get<double>();
  c.scored = j.at("scored").get<bool>();
  return c;
}

std::string key_of(const Json& choices) { return choices.dump(); }

}  // namespace

EvolutionSearchLoop::EvolutionSearchLoop(Runner& runner, EvolutionSearchOptions options)
    : TrainLoop(runner), options_(std::move(options)) {
  estimator_ = std::make_unique<ResourceEstimator>(options_.estimator);
}

NasAlgorithm& EvolutionSearchLoop::algorithm() {
  if (nas_) return *nas_;
  auto* nas = dynamic_cast<NasAlgorithm*>(&runner_.model());
  RAZOR_CHECK(nas, runner_.config().file,
              ": train_cfg EvolutionSearchLoop searches a NAS algorithm with a mutator (model.type "
              "= \"SPOS\", ...), not a plain model");
  RAZOR_CHECK(!nas->mutator().search_groups().empty(), runner_.config().file,
              ": the model has nothing left to search (every mutable is fixed)");
  nas_ = nas;
  return *nas;
}

std::string EvolutionSearchLoop::describe_constraints() const {
  std::vector<std::string> parts;
  for (const auto& [name, range] : options_.constraints_range) {
    std::ostringstream s;
    s << name << " in [" << range.first << ", " << range.second << "]";
    parts.push_back(s.str());
  }
  return parts.empty() ? "no constraints" : join(parts, ", ");
}

bool EvolutionSearchLoop::meets_constraints(SearchCandidate& candidate) {
  algorithm().mutator().set_choices(candidate.choices);
  candidate.resources = estimator_->estimate(runner_.model());
  for (const auto& [name, range] : options_.constraints_range) {
    const double value = name == "flops"    ? candidate.resources.flops
                         : name == "params" ? candidate.resources.params
                                            : candidate.resources.latency;
    if (value < range.first || value > range.second) return false;
  }
  return true;
}

Json EvolutionSearchLoop::crossover(const Json& a, const Json& b, double prob) {
  at::Generator& generator = algorithm().mutator().generator();
  Json out = a;
  for (const auto& item : b.items()) {
    if (sample_uniform(generator) < prob) out[item.key()] = item.value();
  }
  return out;
}

void EvolutionSearchLoop::sample_candidates() {
  NasMutator& mutator = algorithm().mutator();
  std::set<std::string> present;
  for (const auto& c : candidates_) present.insert(key_of(c.choices));
  const int64_t wanted = options_.num_candidates - static_cast<int64_t>(candidates_.size());
  const int64_t max_tries = std::max<int64_t>(wanted, 1) * options_.max_sample_tries;
  int64_t tries = 0;
  double min_seen = 1e300, max_seen = -1e300;
  while (static_cast<int64_t>(candidates_.size()) < options_.num_candidates && tries < max_tries) {
    ++tries;
    SearchCandidate c;
    c.choices = mutator.sample_choices("random");
    const bool ok = meets_constraints(c);
    min_seen = std::min(min_seen, c.resources.flops);
    max_seen = std::max(max_seen, c.resources.flops);
    if (!ok || !present.insert(key_of(c.choices)).second) continue;
    candidates_.push_back(std::move(c));
  }
  RAZOR_RUNTIME_CHECK(!candidates_.empty(), "no subnet meets the constraints (",
                      describe_constraints(), ") after ", tries,
                      " random samples; their FLOPs ranged from ", min_seen, " to ", max_seen,
                      " (", estimator_->options().units,
                      "). Widen train_cfg.constraints_range or check estimator_cfg.input_shape.");
  if (static_cast<int64_t>(candidates_.size()) < options_.num_candidates) {
    spdlog::warn("search: only {} distinct subnets meet the constraints ({}) after {} samples; "
                 "searching with them",
                 candidates_.size(), describe_constraints(), tries);
  }
}

double EvolutionSearchLoop::evaluate(const Json& choices) {
  NasAlgorithm& nas = algorithm();
  nas.mutator().set_choices(choices);
  Model& model = runner_.model();
  auto to_device = [this](const Batch& b) { return runner_.to_device(b); };
  if (options_.calibrate_sample_num > 0) {
    calibrate_bn_statistics(model, runner_.whole_dataloader("train_dataloader"),
                            options_.calibrate_sample_num, to_device);
  }
  const bool was_training = model.is_training();
  model.eval();
  Evaluator& evaluator = runner_.val_evaluator();
  evaluator.reset();
  DataLoader& loader = runner_.whole_dataloader("val_dataloader");
  {
    torch::NoGradGuard no_grad;
    loader.set_epoch(0);
    loader.start();
    while (auto batch = loader.next()) {
      const Batch b = to_device(*batch);
      evaluator.process(model.predict(b), b);
    }
  }
  model.train(was_training);
  const Metrics metrics = evaluator.compute(/*across_ranks=*/false);
  auto it = metrics.find(options_.score_key);
  if (it == metrics.end()) {
    std::vector<std::string> keys;
    for (const auto& m : metrics) keys.push_back(m.first);
    throw config_error(runner_.config().file, ": train_cfg.score_key \"", options_.score_key,
                       "\" is not a metric of val_evaluator", did_you_mean(options_.score_key, keys),
                       " (metrics: ", join(keys, ", "), ")");
  }
  return it->second;
}

void EvolutionSearchLoop::score_candidates() {
  std::vector<size_t> pending;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    auto it = scored_.find(key_of(candidates_[i].choices));
    if (it != scored_.end()) {
      candidates_[i] = it->second;
    } else {
      pending.push_back(i);
    }
  }
  // Rank r scores pending[r], pending[r + world], ... on the whole evaluation set.
  const int world = dist::world_size(), rank = dist::rank();
  Json mine = Json::object();
  for (size_t j = static_cast<size_t>(rank); j < pending.size(); j += static_cast<size_t>(world)) {
    mine[std::to_string(pending[j])] = evaluate(candidates_[pending[j]].choices);
  }
  for (const Json& part : dist::all_gather_json(mine)) {
    for (const auto& item : part.items()) {
      SearchCandidate& c = candidates_[std::stoul(item.key())];
      c.score = item.value().get<double>();
      c.scored = true;
    }
  }
  for (size_t i : pending) {
    RAZOR_ASSERT(candidates_[i].scored);
    scored_[key_of(candidates_[i].choices)] = candidates_[i];
    history_.emplace_back(epoch_, candidates_[i]);
  }
  spdlog::info("search epoch {}/{}: scored {} new candidates ({} known){}", epoch_ + 1,
               options_.max_epochs, pending.size(), candidates_.size() - pending.size(),
               world > 1 ? " on " + std::to_string(world) + " ranks" : "");
}

void EvolutionSearchLoop::update_top_k() {
  std::vector<SearchCandidate> pool = top_k_;
  std::set<std::string> seen;
  for (const auto& c : pool) seen.insert(key_of(c.choices));
  for (const auto& c : candidates_) {
    if (seen.insert(key_of(c.choices)).second) pool.push_back(c);
  }
  std::stable_sort(pool.begin(), pool.end(), [](const SearchCandidate& a, const SearchCandidate& b) {
    return a.score > b.score;
  });
  if (static_cast<int64_t>(pool.size()) > options_.top_k) pool.resize(static_cast<size_t>(options_.top_k));
  top_k_ = std::move(pool);
  std::vector<std::string> scores;
  for (const auto& c : top_k_) scores.push_back(format_number(c.score, 2));
  spdlog::info("search epoch {}/{}: top-{} scores {}; best {} at {} FLOPs, {} params ({})",
               epoch_ + 1, options_.max_epochs, top_k_.size(), join(scores, " "),
               format_number(top_k_.front().score, 2), format_number(top_k_.front().resources.flops, 3),
               format_number(top_k_.front().resources.params, 3), estimator_->options().units);
}

void EvolutionSearchLoop::breed() {
  NasMutator& mutator = algorithm().mutator();
  at::Generator& generator = mutator.generator();
  auto parent = [&]() -> const Json& {
    return top_k_[static_cast<size_t>(sample_index(generator, static_cast<int64_t>(top_k_.size())))].choices;
  };
  std::vector<SearchCandidate> next;
  std::set<std::string> present;
  auto breed_some = [&](int64_t wanted, const std::function<Json()>& make) {
    int64_t added = 0;
    for (int64_t tries = 0; added < wanted && tries < wanted * 10; ++tries) {
      SearchCandidate child;
      child.choices = make();
      if (!meets_constraints(child) || !present.insert(key_of(child.choices)).second) continue;
      next.push_back(std::move(child));
      ++added;
    }
    return added;
  };
  const int64_t mutants = breed_some(options_.num_mutation, [&] {
    const Json& p = parent();
    return crossover(p, mutator.sample_choices("random"), options_.mutate_prob);
  });
  const int64_t children = breed_some(options_.num_crossover, [&] {
    const Json& a = parent();
    const Json& b = parent();
    return crossover(a, b, options_.crossover_prob);
  });
  spdlog::info("search epoch {}/{}: bred {} mutants and {} crossovers", epoch_ + 1,
               options_.max_epochs, mutants, children);
  candidates_ = std::move(next);
}

void EvolutionSearchLoop::run_epoch() {
  sample_candidates();
  // Every rank drew the same candidates from the shared generator; rank 0's list is the
  // one that counts, should a rank ever disagree.
  Json population = Json::array();
  for (const auto& c : candidates_) population.push_back(to_json(c));
  population = dist::broadcast_json(population);
  candidates_.clear();
  for (const auto& j : population) candidates_.push_back(from_json(j));
  score_candidates();
  update_top_k();
  breed();
}

void EvolutionSearchLoop::save_checkpoint() {
  Json state = {{"format", kSearchFormat}, {"version", 1}, {"razor_version", kVersion},
                {"epoch", epoch_}, {"max_epochs", options_.max_epochs}};
  for (const auto& [name, list] : {std::pair{"candidates", &candidates_}, std::pair{"top_k", &top_k_}}) {
    Json items = Json::array();
    for (const auto& c : *list) items.push_back(to_json(c));
    state[name] = items;
  }
  Json history = Json::array();
  for (const auto& [e, c] : history_) history.push_back({{"epoch", e}, {"candidate", to_json(c)}});
  state["history"] = history;
  state["generator"] = algorithm().mutator().generator_state();
  if (!runner_.write_files()) return;
  const fs::path dir = runner_.work_dir();
  write_file_atomically((dir / ("search_epoch_" + std::to_string(epoch_) + ".json")).string(),
                        state.dump() + "\n");
  const int64_t stale = epoch_ - options_.max_keep_ckpts;
  if (options_.max_keep_ckpts > 0 && stale >= 1) {
    std::error_code ignored;
    fs::remove(dir / ("search_epoch_" + std::to_string(stale) + ".json"), ignored);
  }
  write_history();
}

void EvolutionSearchLoop::resume(const std::string& path) {
  std::ifstream in(path);
  RAZOR_CHECK(in.good(), "search checkpoint not found: ", path);
  Json state;
  try {
    state = Json::parse(in);
  } catch (const std::exception& e) {
    throw runtime_error(path, ": not a readable search checkpoint (", e.what(), ")");
  }
  RAZOR_CHECK(state.value("format", "") == kSearchFormat, path,
              ": not a razor search checkpoint (written by razor search)");
  epoch_ = state.at("epoch").get<int64_t>();
  iter_ = epoch_;
  candidates_.clear();
  top_k_.clear();
  for (const auto& j : state.at("candidates")) candidates_.push_back(from_json(j));
  for (const auto& j : state.at("top_k")) top_k_.push_back(from_json(j));
  history_.clear();
  scored_.clear();
  for (const auto& h : state.at("history")) {
    SearchCandidate c = from_json(h.at("candidate"));
    history_.emplace_back(h.at("epoch").get<int64_t>(), c);
    scored_[key_of(c.choices)] = c;
  }
  algorithm().mutator().set_generator_state(state.at("generator").get<std::string>());
  // The population must fit this model's search groups.
  for (const auto& c : candidates_) algorithm().mutator().set_choices(c.choices);
  spdlog::info("search: resumed from {} after epoch {} of {}", path, epoch_, options_.max_epochs);
}

void EvolutionSearchLoop::write_history() {
  const NasMutator& mutator = algorithm().mutator();
  std::string text;
  for (const auto& [e, c] : history_) {
    Json line = to_json(c);
    line.erase("scored");
    line["epoch"] = e + 1;
    line["subnet"] = mutator.subnet_of(c.choices);
    text += line.dump() + "\n";
  }
  write_file_atomically((fs::path(runner_.work_dir()) / "search_history.jsonl").string(), text);
}

void EvolutionSearchLoop::write_best() {
  RAZOR_ASSERT(!top_k_.empty());
  const SearchCandidate& best = top_k_.front();
  NasAlgorithm& nas = algorithm();
  nas.mutator().set_choices(best.choices);
  if (options_.calibrate_sample_num > 0) {
    calibrate_bn_statistics(runner_.model(), runner_.whole_dataloader("train_dataloader"),
                            options_.calibrate_sample_num,
                            [this](const Batch& b) { return runner_.to_device(b); });
  }
  const Json subnet = nas.mutator().current_subnet();
  // The weights of the chosen path only: drop unchosen candidates, edges and the mutator.
  std::vector<std::string> dropped = {"mutator."};
  for (const auto& item : nas.named_modules("", /*include_self=*/false)) {
    if (auto* op = dynamic_cast<MutableOP*>(item.value().get())) {
      for (const auto& name : op->candidate_names()) {
        if (Choice(name) != op->current_choice()) dropped.push_back(item.key() + "._candidates." + name + ".");
      }
    } else if (auto* route = dynamic_cast<DiffChoiceRoute*>(item.value().get())) {
      const Choice kept = route->current_choice();
      for (const auto& name : route->edge_names()) {
        if (std::find(kept.begin(), kept.end(), Choice(name)) == kept.end()) {
          dropped.push_back(item.key() + "._edges." + name + ".");
        }
      }
    }
  }
  CheckpointContents contents;
  for (auto& [name, tensor] : state_dict(nas)) {
    const bool drop = std::any_of(dropped.begin(), dropped.end(),
                                  [&](const std::string& p) { return name.rfind(p, 0) == 0; });
    if (!drop) contents.model.emplace_back(name, tensor);
  }
  contents.meta = {{"format", kCheckpointFormat},
                   {"razor_version", kVersion},
                   {"config", to_toml(runner_.config().tree)},
                   {"config_file", runner_.config().file},
                   {"subnet", subnet},
                   {"score", best.score},
                   {"epoch", 0},
                   {"iter", 0}};
  if (!runner_.write_files()) return;
  const fs::path dir = runner_.work_dir();
  write_subnet_file((dir / "best_fix_subnet.yaml").string(), subnet);
  write_checkpoint((dir / "best_subnet.pth").string(), contents, nullptr);
  spdlog::info("search: best subnet scores {} ({}) at {} FLOPs and {} params ({}); written to {} and {}",
               format_number(best.score, 2), options_.score_key, format_number(best.resources.flops, 3),
               format_number(best.resources.params, 3), estimator_->options().units,
               (dir / "best_fix_subnet.yaml").string(), (dir / "best_subnet.pth").string());
}

void EvolutionSearchLoop::run() {
  algorithm();  // a clear error before anything runs
  runner_.call_hooks([&](Hook& h) { h.before_train(runner_); });
  if (!options_.init_candidates.empty()) {
    std::ifstream in(options_.init_candidates);
    RAZOR_CHECK(in.good(), "train_cfg.init_candidates: file not found: ", options_.init_candidates);
    Json list;
    try {
      list = Json::parse(in);
    } catch (const std::exception& e) {
      throw config_error(options_.init_candidates, ": not valid JSON (", e.what(), ")");
    }
    RAZOR_CHECK(list.is_array(), options_.init_candidates, ": must hold a JSON list of subnets");
    for (const auto& subnet : list) {
      SearchCandidate c;
      c.choices = algorithm().mutator().choices_from_subnet(subnet, options_.init_candidates);
      if (meets_constraints(c)) candidates_.push_back(std::move(c));
    }
  }
  const std::string& resume_option = runner_.options().resume;
  if (!resume_option.empty()) {
    std::string path = resume_option;
    if (path == "auto") {
      path.clear();
      int64_t latest = -1;
      const std::regex pattern("search_epoch_([0-9]+)\\.json");
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(runner_.work_dir(), ec)) {
        std::smatch m;
        const std::string file = entry.path().filename().string();
        if (std::regex_match(file, m, pattern) && std::stoll(m[1]) > latest) {
          latest = std::stoll(m[1]);
          path = entry.path().string();
        }
      }
      if (path.empty()) spdlog::warn("search: --resume: no search_epoch_*.json in {}; starting afresh", runner_.work_dir());
    }
    if (!path.empty()) resume(path);
  }
  spdlog::info("search: {} epochs, {} candidates, top {}, {} mutations, {} crossovers, {}; {}",
               options_.max_epochs, options_.num_candidates, options_.top_k, options_.num_mutation,
               options_.num_crossover, describe_constraints(),
               options_.calibrate_sample_num > 0
                   ? "BN re-estimated on " + std::to_string(options_.calibrate_sample_num) + " images"
                   : std::string("no BN re-estimation"));
  while (epoch_ < options_.max_epochs) {
    run_epoch();
    ++epoch_;
    iter_ = epoch_;
    save_checkpoint();
  }
  write_best();
  runner_.call_hooks([&](Hook& h) { h.after_train(runner_); });
}

void register_evolution_search_loop() {
  loop_registry().add("EvolutionSearchLoop", [](Args& args, const BuildContext& ctx) {
    RAZOR_ASSERT(ctx.runner);
    EvolutionSearchOptions o;
    auto positive = [&](const char* key, int64_t fallback) {
      const auto v = args.get<int64_t>(key, fallback);
      if (v < 1) args.fail(key, "must be >= 1, got " + std::to_string(v));
      return v;
    };
    auto probability = [&](const char* key, double fallback) {
      const auto v = args.get<double>(key, fallback);
      if (v < 0 || v > 1) args.fail(key, "must be in [0, 1], got " + format_number(v, 3));
      return v;
    };
    o.max_epochs = positive("max_epochs", o.max_epochs);
    o.num_candidates = positive("num_candidates", o.num_candidates);
    o.top_k = positive("top_k", o.top_k);
    o.num_mutation = args.get<int64_t>("num_mutation", o.num_mutation);
    o.num_crossover = args.get<int64_t>("num_crossover", o.num_crossover);
    if (o.num_mutation < 0) args.fail("num_mutation", "must be >= 0");
    if (o.num_crossover < 0) args.fail("num_crossover", "must be >= 0");
    if (o.num_mutation + o.num_crossover > o.num_candidates) {
      args.fail("num_mutation", "num_mutation + num_crossover (" +
                                    std::to_string(o.num_mutation + o.num_crossover) +
                                    ") must not exceed num_candidates (" +
                                    std::to_string(o.num_candidates) + ")");
    }
    if (o.top_k > o.num_candidates) args.fail("top_k", "must not exceed num_candidates");
    o.mutate_prob = probability("mutate_prob", o.mutate_prob);
    o.crossover_prob = probability("crossover_prob", o.crossover_prob);
    o.calibrate_sample_num = args.get<int64_t>("calibrate_sample_num", o.calibrate_sample_num);
    o.score_key = args.get("score_key", o.score_key.c_str());
    o.max_keep_ckpts = args.get<int64_t>("max_keep_ckpts", o.max_keep_ckpts);
    o.init_candidates = args.get("init_candidates", "");
    o.max_sample_tries = positive("max_sample_tries", o.max_sample_tries);
    if (args.has("constraints_range")) {
      o.constraints_range.clear();
      Args ranges = args.sub("constraints_range");
      for (const auto& item : ranges.table().items()) {
        const std::string& name = item.key();
        ranges.accept(name);
        if (name != "flops" && name != "params" && name != "latency") {
          ranges.fail(name, "unknown resource (flops, params or latency)");
        }
        const Json& v = item.value();
        std::pair<double, double> range;
        if (v.is_number()) {
          range = {0.0, v.get<double>()};
        } else if (v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number()) {
          range = {v[0].get<double>(), v[1].get<double>()};
        } else {
          ranges.fail(name, "must be a maximum or [min, max], got " + v.dump());
        }
        if (range.first > range.second) ranges.fail(name, "min exceeds max: " + v.dump());
        o.constraints_range.emplace_back(name, range);
      }
    }
    if (args.has("estimator_cfg")) {
      Args estimator = args.sub("estimator_cfg");
      o.estimator = estimator_options_from(estimator);
    }
    return std::make_shared<EvolutionSearchLoop>(*ctx.runner, o);
  });
}

}  // namespace razor
