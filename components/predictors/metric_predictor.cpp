#include "components/predictors/metric_predictor.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "components/mutators/nas_mutator.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/strings.h"
#include "engine/text_file.h"

namespace razor {

namespace {

constexpr const char* kPredictorFormat = "razor-predictor";

std::string canonical_encoding(const std::string& name) {
  return name == "index" ? "normal" : name;
}

Json space_to_json(const std::vector<EncodedGroup>& space) {
  Json out = Json::array();
  for (const auto& g : space) out.push_back({{"key", g.key}, {"choices", g.choices}});
  return out;
}

}  // namespace

std::vector<EncodedGroup> search_space_of(const NasMutator& mutator) {
  std::vector<EncodedGroup> out;
  for (const auto& g : mutator.search_groups()) out.push_back({g.key, g.front().choices()});
  return out;
}

MetricPredictor::MetricPredictor(MetricPredictorOptions options,
                                 std::shared_ptr<PredictorHandler> handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  RAZOR_ASSERT(handler_);
  options_.encoding_type = canonical_encoding(options_.encoding_type);
  RAZOR_CHECK(options_.encoding_type == "onehot" || options_.encoding_type == "normal",
              "MetricPredictor: encoding_type must be \"onehot\" or \"normal\", got \"",
              options_.encoding_type, "\"");
  RAZOR_CHECK(options_.train_samples >= 1, "MetricPredictor: train_samples must be >= 1, got ",
              options_.train_samples);
}

void MetricPredictor::set_search_space(std::vector<EncodedGroup> space) {
  RAZOR_CHECK(!space.empty(), "MetricPredictor: the search space has no groups");
  for (const auto& g : space) {
    RAZOR_CHECK(!g.choices.empty(), "MetricPredictor: search group \"", g.key, "\" has no choices");
  }
  space_ = std::move(space);
}

int64_t MetricPredictor::num_features() const {
  if (options_.encoding_type == "normal") return static_cast<int64_t>(space_.size());
  int64_t n = 0;
  for (const auto& g : space_) n += static_cast<int64_t>(g.choices.size());
  return n;
}

torch::Tensor MetricPredictor::encode(const Json& choices) const {
  RAZOR_ASSERT(!space_.empty());
  RAZOR_CHECK(choices.is_object(), "predictor: choices must be a table {group: choice}, got ",
              choices.dump());
  torch::Tensor out = torch::zeros({num_features()}, torch::kDouble);
  auto* data = out.data_ptr<double>();
  int64_t offset = 0;
  for (const auto& g : space_) {
    auto it = choices.find(g.key);
    RAZOR_CHECK(it != choices.end(), "predictor: no choice for search group \"", g.key, "\" in ",
                choices.dump());
    const auto pos = std::find(g.choices.begin(), g.choices.end(), *it);
    RAZOR_CHECK(pos != g.choices.end(), "predictor: search group \"", g.key, "\": ", it->dump(),
                " is not one of its choices (", describe_choices(g.choices), ")");
    const int64_t index = pos - g.choices.begin();
    if (options_.encoding_type == "onehot") {
      data[offset + index] = 1.0;
      offset += static_cast<int64_t>(g.choices.size());
    } else {
      data[offset++] = static_cast<double>(index);
    }
  }
  return out;
}

torch::Tensor MetricPredictor::encode(const std::vector<Json>& choices) const {
  std::vector<torch::Tensor> rows;
  rows.reserve(choices.size());
  for (const auto& c : choices) rows.push_back(encode(c));
  if (rows.empty()) return torch::zeros({0, num_features()}, torch::kDouble);
  return torch::stack(rows);
}

void MetricPredictor::fit(const std::vector<PredictorSample>& samples, uint64_t seed) {
  RAZOR_CHECK(!samples.empty(), "predictor: no samples to fit");
  std::map<std::string, size_t> index;
  std::vector<PredictorSample> merged;
  std::vector<int64_t> counts;
  for (const auto& s : samples) {
    encode(s.choices);  // a clear error for a sample from another search space
    const std::string key = s.choices.dump();
    auto it = index.find(key);
    if (it == index.end()) {
      index[key] = merged.size();
      merged.push_back(s);
      counts.push_back(1);
    } else {
      merged[it->second].score += s.score;
      ++counts[it->second];
    }
  }
  for (size_t i = 0; i < merged.size(); ++i) merged[i].score /= static_cast<double>(counts[i]);
  std::vector<Json> inputs;
  std::vector<double> targets;
  for (const auto& s : merged) {
    inputs.push_back(s.choices);
    targets.push_back(s.score);
  }
  handler_->fit(encode(inputs), torch::tensor(targets, torch::kDouble), seed);
  samples_ = std::move(merged);
}

double MetricPredictor::predict(const Json& choices) const {
  return predict(std::vector<Json>{choices}).front();
}

std::vector<double> MetricPredictor::predict(const std::vector<Json>& choices) const {
  RAZOR_CHECK(fitted(), "predictor: predict() before it was fitted or loaded");
  if (choices.empty()) return {};
  const torch::Tensor out = handler_->predict(encode(choices)).to(torch::kDouble).contiguous();
  return std::vector<double>(out.data_ptr<double>(), out.data_ptr<double>() + out.numel());
}

Json MetricPredictor::state() const {
  RAZOR_CHECK(fitted(), "predictor: state() before it was fitted or loaded");
  Json samples = Json::array();
  for (const auto& s : samples_) samples.push_back({{"choices", s.choices}, {"score", s.score}});
  return Json{{"format", kPredictorFormat},
              {"version", 1},
              {"type", "MetricPredictor"},
              {"encoding_type", options_.encoding_type},
              {"score_key", options_.score_key},
              {"search_space", space_to_json(space_)},
              {"samples", samples},
              {"handler", handler_->state()}};
}

void MetricPredictor::load_state(const Json& state, const std::string& origin) {
  RAZOR_CHECK(is_predictor_state(state), origin, ": not a razor predictor state (predictor.json)");
  RAZOR_ASSERT(!space_.empty());
  const std::string encoding = state.value("encoding_type", "");
  RAZOR_CHECK(encoding == options_.encoding_type, origin,
              ": the predictor was fitted with encoding_type \"", encoding,
              "\", but predictor_cfg.encoding_type is \"", options_.encoding_type, "\"");
  RAZOR_CHECK(state.contains("handler") && state["handler"].is_object(), origin,
              ": no handler state");
  const std::string type = state["handler"].value("type", "");
  RAZOR_CHECK(type == handler_->type(), origin, ": the predictor's handler is \"", type,
              "\", but predictor_cfg.handler_cfg.type is \"", handler_->type(), "\"");
  const Json here = space_to_json(space_);
  const Json& there = state.contains("search_space") ? state["search_space"] : Json::array();
  if (there != here) {
    std::string what = "a different number of search groups (" + std::to_string(there.size()) +
                       " vs " + std::to_string(here.size()) + " here)";
    for (size_t i = 0; i < std::min(there.size(), here.size()); ++i) {
      if (there[i] != here[i]) {
        what = "search group " + std::to_string(i) + " " + there[i].dump() + " (here " +
               here[i].dump() + ")";
        break;
      }
    }
    throw config_error(origin, ": the predictor was fitted on another search space: ", what);
  }
  std::vector<PredictorSample> samples;
  if (state.contains("samples") && state["samples"].is_array()) {
    for (const auto& s : state["samples"]) {
      RAZOR_CHECK(
          s.is_object() && s.contains("choices") && s.contains("score") && s["score"].is_number(),
          origin, ": samples must be {choices, score} tables");
      samples.push_back({s["choices"], s["score"].get<double>()});
    }
  }
  handler_->load_state(state["handler"], origin);
  samples_ = std::move(samples);
}

void MetricPredictor::save(const std::string& path) const {
  write_file_atomically(path, state().dump(1) + "\n");
}

void MetricPredictor::load(const std::string& path) {
  const Json document = read_pretrained_predictor(path);
  RAZOR_CHECK(is_predictor_state(document), path, ": holds samples, not a predictor state");
  load_state(document, path);
}

bool is_predictor_state(const Json& document) {
  return document.is_object() && document.value("format", "") == kPredictorFormat;
}

Json read_pretrained_predictor(const std::string& path) {
  RAZOR_CHECK(std::ifstream(path).good(), path, ": predictor file not found");
  const std::string text = read_text_file(path, "predictor file");
  Json document;
  try {
    document = Json::parse(text);
  } catch (const std::exception&) {
    // JSON lines (search_history.jsonl).
    document = Json::array();
    std::istringstream lines(text);
    int64_t number = 0;
    for (std::string line; std::getline(lines, line);) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        document.push_back(Json::parse(line));
      } catch (const std::exception& e) {
        throw config_error(path, ":", number, ": neither a JSON document nor JSON lines (",
                           e.what(), ")");
      }
    }
  }
  if (is_predictor_state(document)) return document;
  if (document.is_object() && document.contains("samples")) document = document["samples"];
  RAZOR_CHECK(document.is_array(), path,
              ": expected a predictor state (predictor.json) or a list of {choices or subnet, "
              "score} samples");
  Json samples = Json::array();
  for (size_t i = 0; i < document.size(); ++i) {
    const Json& s = document[i];
    RAZOR_CHECK(s.is_object() && s.contains("score") && s["score"].is_number() &&
                    (s.contains("choices") || s.contains("subnet")),
                path, ": sample ", i, " needs a numeric \"score\" and \"choices\" or \"subnet\"");
    if (s.value("source", "measured") == "predicted") continue;
    samples.push_back(s);
  }
  RAZOR_CHECK(!samples.empty(), path, ": no measured samples");
  return samples;
}

std::unique_ptr<MetricPredictor> build_metric_predictor(Args& args, const BuildContext& context,
                                                        const std::string& default_score_key) {
  const std::string type = args.get("type", "MetricPredictor");
  if (type != "MetricPredictor") {
    args.fail("type", "unknown predictor type \"" + type + "\"" +
                          did_you_mean(type, {"MetricPredictor"}) +
                          " (razor has \"MetricPredictor\")");
  }
  MetricPredictorOptions o;
  const std::string encoding = args.get("encoding_type", o.encoding_type.c_str());
  const std::vector<std::string> encodings = {"onehot", "normal", "index"};
  if (std::find(encodings.begin(), encodings.end(), encoding) == encodings.end()) {
    args.fail("encoding_type", "unknown encoding \"" + encoding + "\"" +
                                   did_you_mean(encoding, encodings) +
                                   " (\"onehot\", or \"normal\" = \"index\")");
  }
  o.encoding_type = canonical_encoding(encoding);
  if (args.has("train_samples") && args.table().at("train_samples").is_string()) {
    args.fail("train_samples",
              "must be a number of subnets; give a file of evaluated samples as "
              "\"pretrained\"");
  }
  o.train_samples = args.get<int64_t>("train_samples", o.train_samples);
  if (o.train_samples < 1)
    args.fail("train_samples", "must be >= 1, got " + std::to_string(o.train_samples));
  o.score_key = args.get("score_key", default_score_key.c_str());
  o.pretrained = args.get("pretrained", "");
  if (!o.pretrained.empty() && !std::filesystem::exists(o.pretrained)) {
    args.fail("pretrained", "file not found: " + o.pretrained);
  }
  Args handler_args = args.sub("handler_cfg");
  std::shared_ptr<PredictorHandler> handler =
      predictor_handler_registry().build(handler_args, context);
  if (args.has("fit_cfg")) {
    Args fit = args.sub("fit_cfg");
    handler->read_fit_cfg(fit);
    fit.finish();
  }
  for (const char* key : {"type", "encoding_type", "train_samples", "score_key", "pretrained",
                          "handler_cfg", "fit_cfg"}) {
    args.accept(key);
  }
  args.finish();
  return std::make_unique<MetricPredictor>(o, handler);
}

}  // namespace razor
