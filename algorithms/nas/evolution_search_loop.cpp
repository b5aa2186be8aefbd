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
#include "engine/text_file.h"

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
              {"scored", c.scored},
              {"predicted", c.predicted}};
}

SearchCandidate from_json(const Json& j) {
  SearchCandidate c;
  c.choices = j.at("choices");
  c.score = j.at("score").get<double>();
  c.resources.flops = j.at("flops").get<double>();
  c.resources.params = j.at("params").get<double>();
  c.resources.latency = j.at("latency").get<double>();
  c.scored = j.at("scored").get<bool>();
  c.predicted = j.value("predicted", false);
  return c;
}

std::string key_of(const Json& choices) { return choices.dump(); }

}  // namespace

EvolutionSearchLoop::EvolutionSearchLoop(Runner& runner, EvolutionSearchOptions options,
                                         std::unique_ptr<MetricPredictor> predictor)
    : TrainLoop(runner), options_(std::move(options)), predictor_(std::move(predictor)) {
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

std::vector<SearchCandidate> EvolutionSearchLoop::draw_random(int64_t wanted,
                                                              std::set<std::string>& present,
                                                              size_t already) {
  NasMutator& mutator = algorithm().mutator();
  std::vector<SearchCandidate> out;
  const int64_t max_tries = std::max<int64_t>(wanted, 1) * options_.max_sample_tries;
  int64_t tries = 0;
  double min_seen = 1e300, max_seen = -1e300;
  while (static_cast<int64_t>(out.size()) < wanted && tries < max_tries) {
    ++tries;
    SearchCandidate c;
    c.choices = mutator.sample_choices("random");
    const bool ok = meets_constraints(c);
    min_seen = std::min(min_seen, c.resources.flops);
    max_seen = std::max(max_seen, c.resources.flops);
    if (!ok || !present.insert(key_of(c.choices)).second) continue;
    out.push_back(std::move(c));
  }
  RAZOR_RUNTIME_CHECK(already + out.size() > 0, "no subnet meets the constraints (",
                      describe_constraints(), ") after ", tries,
                      " random samples; their FLOPs ranged from ", min_seen, " to ", max_seen, " (",
                      estimator_->options().units,
                      "). Widen train_cfg.constraints_range or check estimator_cfg.input_shape.");
  if (static_cast<int64_t>(out.size()) < wanted) {
    spdlog::warn(
        "search: only {} distinct subnets meet the constraints ({}) after {} samples; "
        "searching with them",
        already + out.size(), describe_constraints(), tries);
  }
  return out;
}

void EvolutionSearchLoop::sample_candidates() {
  std::set<std::string> present;
  for (const auto& c : candidates_) present.insert(key_of(c.choices));
  const int64_t wanted = options_.num_candidates - static_cast<int64_t>(candidates_.size());
  for (auto& c : draw_random(wanted, present, candidates_.size()))
    candidates_.push_back(std::move(c));
}

void EvolutionSearchLoop::read_batches() {
  batches_read_ = true;
  if (options_.cache_batches_mb <= 0) return;
  const int64_t budget = options_.cache_batches_mb << 20;
  int64_t bytes = 0;
  auto keep = [&](std::vector<Batch>& into, const Batch& batch) {
    into.push_back(runner_.to_device(batch));
    bytes += batch.inputs.numel() * static_cast<int64_t>(batch.inputs.element_size());
    return bytes <= budget;
  };
  // The loaders run at epoch 0 every time (augmentation is seeded by seed, epoch and index),
  // so the cached batches are exactly those a fresh read would give.
  bool fits = true;
  if (options_.calibrate_sample_num > 0) {
    DataLoader& loader = runner_.whole_dataloader("train_dataloader");
    loader.set_epoch(0);
    loader.start();
    int64_t seen = 0;
    while (fits && seen < options_.calibrate_sample_num) {
      auto batch = loader.next();
      if (!batch) break;
      const int64_t n = std::min<int64_t>(batch->size(), options_.calibrate_sample_num - seen);
      fits = keep(calibration_batches_, n < batch->size() ? first_samples(*batch, n) : *batch);
      seen += n;
    }
  }
  DataLoader& loader = runner_.whole_dataloader("val_dataloader");
  loader.set_epoch(0);
  loader.start();
  while (fits) {
    auto batch = loader.next();
    if (!batch) break;
    fits = keep(val_batches_, *batch);
  }
  batches_cached_ = fits;
  if (!fits) {
    calibration_batches_.clear();
    val_batches_.clear();
    return;
  }
  if (options_.prefix_cache_mb > 0) {
    stages_ = SubnetPrefixCache::stages_of(runner_.model());
    if (!stages_.empty()) prefix_cache_ = std::make_unique<SubnetPrefixCache>(options_.prefix_cache_mb << 20);
  }
}

std::vector<size_t> EvolutionSearchLoop::sharing_order(const std::vector<Json>& choices) {
  std::vector<size_t> order(choices.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (!batches_read_) read_batches();
  if (!prefix_cache_) return order;
  std::vector<std::vector<std::string>> keys;
  for (const Json& c : choices) {
    algorithm().mutator().set_choices(c);
    keys.push_back(SubnetPrefixCache::stage_keys(stages_));
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  return order;
}

std::vector<double> EvolutionSearchLoop::score(const std::vector<Json>& choices) {
  std::vector<double> scores(choices.size());
  for (size_t i : sharing_order(choices)) scores[i] = evaluate(choices[i]);
  return scores;
}

double EvolutionSearchLoop::evaluate(const Json& choices) {
  NasAlgorithm& nas = algorithm();
  nas.mutator().set_choices(choices);
  Model& model = runner_.model();
  if (!batches_read_) read_batches();
  auto to_device = [this](const Batch& b) { return runner_.to_device(b); };
  if (prefix_cache_) {
    std::vector<torch::Tensor> calibration, eval;
    if (options_.calibrate_sample_num > 0) {
      for (const Batch& b : calibration_batches_) calibration.push_back(b.inputs);
    }
    for (const Batch& b : val_batches_) eval.push_back(b.inputs);
    const std::vector<torch::Tensor> scores = prefix_cache_->predict(model, stages_, calibration, eval);
    Evaluator& evaluator = runner_.val_evaluator();
    evaluator.reset();
    for (size_t i = 0; i < val_batches_.size(); ++i) evaluator.process(scores[i], val_batches_[i]);
    return score_of(evaluator.compute(/*across_ranks=*/false));
  }
  if (options_.calibrate_sample_num > 0) {
    if (batches_cached_) {
      calibrate_bn_statistics(model, calibration_batches_, options_.calibrate_sample_num);
    } else {
      calibrate_bn_statistics(model, runner_.whole_dataloader("train_dataloader"),
                              options_.calibrate_sample_num, to_device);
    }
  }
  const bool was_training = model.is_training();
  model.eval();
  Evaluator& evaluator = runner_.val_evaluator();
  evaluator.reset();
  {
    torch::NoGradGuard no_grad;
    if (batches_cached_) {
      for (const Batch& b : val_batches_) evaluator.process(model.predict(b), b);
    } else {
      DataLoader& loader = runner_.whole_dataloader("val_dataloader");
      loader.set_epoch(0);
      loader.start();
      while (auto batch = loader.next()) {
        const Batch b = to_device(*batch);
        evaluator.process(model.predict(b), b);
      }
    }
  }
  model.train(was_training);
  return score_of(evaluator.compute(/*across_ranks=*/false));
}

double EvolutionSearchLoop::score_of(const Metrics& metrics) const {
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

std::vector<double> EvolutionSearchLoop::score_split(const std::vector<Json>& choices,
                                                     bool predict) {
  const int world = dist::world_size(), rank = dist::rank();
  Json mine = Json::object();
  // Every rank orders alike, then takes every world-th: neighbours still share stages.
  const std::vector<size_t> order = predict ? std::vector<size_t>() : sharing_order(choices);
  for (size_t k = static_cast<size_t>(rank); k < choices.size(); k += static_cast<size_t>(world)) {
    const size_t j = predict ? k : order[k];
    mine[std::to_string(j)] = predict ? predictor_->predict(choices[j]) : evaluate(choices[j]);
  }
  std::vector<double> scores(choices.size(), 0.0);
  std::vector<bool> seen(choices.size(), false);
  for (const Json& part : dist::all_gather_json(mine)) {
    for (const auto& item : part.items()) {
      const size_t j = std::stoul(item.key());
      scores[j] = item.value().get<double>();
      seen[j] = true;
    }
  }
  RAZOR_ASSERT(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
  return scores;
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
  std::vector<Json> choices;
  for (size_t i : pending) choices.push_back(candidates_[i].choices);
  const int64_t reused_before = prefix_cache_ ? prefix_cache_->reused_stages() : 0;
  const int64_t computed_before = prefix_cache_ ? prefix_cache_->computed_stages() : 0;
  const std::vector<double> scores = score_split(choices, predicting_);
  for (size_t j = 0; j < pending.size(); ++j) {
    SearchCandidate& c = candidates_[pending[j]];
    c.score = scores[j];
    c.scored = true;
    c.predicted = predicting_;
    scored_[key_of(c.choices)] = c;
    history_.push_back({epoch_, "search", c});
  }
  const int world = dist::world_size();
  std::string reuse;
  if (prefix_cache_ && !predicting_) {
    const int64_t reused = prefix_cache_->reused_stages() - reused_before;
    const int64_t total = reused + prefix_cache_->computed_stages() - computed_before;
    if (total > 0) reuse = "; " + std::to_string(100 * reused / total) + " % of the stages reused";
  }
  spdlog::info("search epoch {}/{}: {} {} new candidates ({} known){}{}", epoch_ + 1,
               options_.max_epochs, predicting_ ? "predicted" : "scored", pending.size(),
               candidates_.size() - pending.size(),
               world > 1 && !predicting_ ? " on " + std::to_string(world) + " ranks" : "", reuse);
}

void EvolutionSearchLoop::init_predictor() {
  NasMutator& mutator = algorithm().mutator();
  const MetricPredictorOptions& o = predictor_->options();
  // Drawn on every rank alike, so that the generators stay in step whoever fits.
  const auto seed = static_cast<uint64_t>(sample_index(mutator.generator(), int64_t{1} << 62));
  std::vector<PredictorSample> samples;
  bool loaded = false;
  if (!o.pretrained.empty()) {
    const Json document = read_pretrained_predictor(o.pretrained);
    if (is_predictor_state(document)) {
      predictor_->load_state(document, o.pretrained);
      loaded = true;
      spdlog::info("search: predictor loaded from {} ({} on {} samples)", o.pretrained,
                   predictor_->handler().type(), predictor_->samples().size());
    } else {
      for (const auto& s : document) {
        const Json choices = s.contains("choices")
                                 ? s["choices"]
                                 : mutator.choices_from_subnet(s["subnet"], o.pretrained);
        predictor_->encode(choices);  // a clear error for a subnet of another space
        samples.push_back({choices, s["score"].get<double>()});
      }
      spdlog::info("search: fitting the predictor ({}) on {} evaluated samples from {}",
                   predictor_->handler().type(), samples.size(), o.pretrained);
    }
  } else {
    spdlog::info("search: evaluating {} random subnets for real to fit the predictor ({})",
                 o.train_samples, predictor_->handler().type());
    std::set<std::string> present;
    std::vector<SearchCandidate> picks = draw_random(o.train_samples, present, 0);
    // Every rank drew the same subnets; rank 0's list is the one that counts.
    Json list = Json::array();
    for (const auto& c : picks) list.push_back(to_json(c));
    list = dist::broadcast_json(list);
    picks.clear();
    std::vector<Json> choices;
    for (const auto& j : list) {
      picks.push_back(from_json(j));
      choices.push_back(picks.back().choices);
    }
    const std::vector<double> scores = score_split(choices, /*predict=*/false);
    for (size_t j = 0; j < picks.size(); ++j) {
      picks[j].score = scores[j];
      picks[j].scored = true;
      history_.push_back({-1, "predictor_samples", picks[j]});
      samples.push_back({picks[j].choices, scores[j]});
    }
  }
  if (!loaded) {
    // Rank 0 fits; the others take its state, so every rank predicts the same to the bit.
    Json state;
    if (dist::is_main()) {
      predictor_->fit(samples, seed);
      state = predictor_->state();
    }
    state = dist::broadcast_json(state);
    if (!dist::is_main()) predictor_->load_state(state, "the predictor of rank 0");
    std::vector<double> scores;
    for (const auto& s : predictor_->samples()) scores.push_back(s.score);
    const auto [lo, hi] = std::minmax_element(scores.begin(), scores.end());
    spdlog::info("search: predictor ({}, {} encoding) fitted on {} subnets scoring {} to {}",
                 predictor_->handler().type(), o.encoding_type, scores.size(),
                 format_number(*lo, 2), format_number(*hi, 2));
  }
  predicting_ = true;
  if (runner_.write_files()) {
    const std::string path = (fs::path(runner_.work_dir()) / "predictor.json").string();
    predictor_->save(path);
    spdlog::info("search: predictor written to {}; candidates are scored by prediction from now on",
                 path);
  }
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
  for (const auto& h : history_) {
    history.push_back(
        {{"epoch", h.epoch}, {"stage", h.stage}, {"candidate", to_json(h.candidate)}});
  }
  state["history"] = history;
  if (predicting_) state["predictor"] = predictor_->state();
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
  RAZOR_CHECK(std::ifstream(path).good(), "search checkpoint not found: ", path);
  Json state;
  try {
    state = Json::parse(read_text_file(path, "search checkpoint"));
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
    const std::string stage = h.value("stage", "search");
    history_.push_back({h.at("epoch").get<int64_t>(), stage, c});
    if (stage == "search") scored_[key_of(c.choices)] = c;
  }
  // The predictor as it was: predictions continue bit for bit.
  const bool has_predictor = state.contains("predictor");
  RAZOR_CHECK(has_predictor == (predictor_ != nullptr), path,
              ": the search checkpoint was written ", has_predictor ? "with" : "without",
              " a predictor, but train_cfg ", predictor_ ? "has" : "has no",
              " predictor_cfg; resume with the config it was written with");
  if (has_predictor) {
    predictor_->load_state(state.at("predictor"), path);
    predicting_ = true;
  }
  algorithm().mutator().set_generator_state(state.at("generator").get<std::string>());
  // The population must fit this model's search groups.
  for (const auto& c : candidates_) algorithm().mutator().set_choices(c.choices);
  spdlog::info("search: resumed from {} after epoch {} of {}", path, epoch_, options_.max_epochs);
}

void EvolutionSearchLoop::write_history() {
  const NasMutator& mutator = algorithm().mutator();
  std::string text;
  for (const auto& h : history_) {
    Json line = to_json(h.candidate);
    line.erase("scored");
    line.erase("predicted");
    line["epoch"] = h.epoch + 1;
    line["source"] = h.candidate.predicted ? "predicted" : "measured";
    line["stage"] = h.stage;
    line["subnet"] = mutator.subnet_of(h.candidate.choices);
    text += line.dump() + "\n";
  }
  write_file_atomically((fs::path(runner_.work_dir()) / "search_history.jsonl").string(), text);
}

void EvolutionSearchLoop::write_best() {
  RAZOR_ASSERT(!top_k_.empty());
  SearchCandidate best = top_k_.front();
  NasAlgorithm& nas = algorithm();
  const double predicted_score = best.score;
  if (predicting_) {
    // The truth about the subnet the predictor chose: one real evaluation (on every rank, as
    // it also re-estimates the BN statistics that are saved below; rank 0's score counts).
    const double measured = dist::broadcast_json(evaluate(best.choices)).get<double>();
    spdlog::info("search: best subnet: predicted {} {}, measured {} (error {})", options_.score_key,
                 format_number(predicted_score, 2), format_number(measured, 2),
                 format_number(predicted_score - measured, 2));
    best.score = measured;
    best.predicted = false;
    history_.push_back({epoch_ - 1, "final", best});
    if (runner_.write_files()) write_history();
  }
  nas.mutator().set_choices(best.choices);
  if (options_.calibrate_sample_num > 0 && !predicting_) {
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
  if (predicting_) contents.meta["predicted_score"] = predicted_score;
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
    RAZOR_CHECK(std::ifstream(options_.init_candidates).good(), "train_cfg.init_candidates: file not found: ",
                options_.init_candidates);
    const std::string text = read_text_file(options_.init_candidates, "train_cfg.init_candidates file");
    Json list;
    try {
      list = Json::parse(text);
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
  if (predictor_) predictor_->set_search_space(search_space_of(algorithm().mutator()));
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
  if (predictor_ && !predicting_) init_predictor();
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
    o.cache_batches_mb = args.get<int64_t>("cache_batches_mb", o.cache_batches_mb);
    if (o.cache_batches_mb < 0) args.fail("cache_batches_mb", "must be >= 0 (0: no cache)");
    o.prefix_cache_mb = args.get<int64_t>("prefix_cache_mb", o.prefix_cache_mb);
    if (o.prefix_cache_mb < 0) args.fail("prefix_cache_mb", "must be >= 0 (0: no cache)");
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
    std::unique_ptr<MetricPredictor> predictor;
    if (args.has("predictor_cfg") && !args.table().at("predictor_cfg").is_null()) {
      Args predictor_args = args.sub("predictor_cfg");
      // MMRazor sets the predictor's score_key to the search's; one given must agree.
      if (predictor_args.has("score_key") &&
          predictor_args.table().at("score_key") != Json(o.score_key)) {
        predictor_args.fail("score_key", "must equal train_cfg.score_key (\"" + o.score_key +
                                             "\"), got " +
                                             predictor_args.table().at("score_key").dump());
      }
      predictor = build_metric_predictor(predictor_args, ctx, o.score_key);
    } else {
      args.accept("predictor_cfg");
    }
    return std::make_shared<EvolutionSearchLoop>(*ctx.runner, o, std::move(predictor));
  });
}

}  // namespace razor
