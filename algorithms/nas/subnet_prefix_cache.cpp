#include "algorithms/nas/subnet_prefix_cache.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "algorithms/nas/nas_algorithm.h"
#include "components/mutables/mutable_op.h"
#include "components/nn/bn_calibration.h"

namespace razor {

namespace {

/// Whether `module` is a mutable whose forward depends on its current choice alone (a
/// differentiable one weighs its candidates by the mutator's α, and DSNAS's samples them
/// in training mode).
bool plain_op_choice(const Mutable& m) {
  return dynamic_cast<const MutableOP*>(&m) && !dynamic_cast<const DiffMutableOP*>(&m);
}

/// `root` and every module under it (modules(include_self) would need `root` held by a
/// shared_ptr).
std::vector<torch::nn::Module*> subtree(torch::nn::Module& root) {
  std::vector<torch::nn::Module*> out = {&root};
  for (const auto& module : root.modules(/*include_self=*/false)) out.push_back(module.get());
  return out;
}

int64_t parameter_version(const PredictStage& stage) {
  int64_t version = 0;
  for (nn::Module* module : stage.modules) {
    for (const auto& p : module->parameters()) version += static_cast<int64_t>(p._version());
  }
  return version;
}

int64_t bytes_of(const std::vector<torch::Tensor>& tensors) {
  int64_t bytes = 0;
  for (const auto& t : tensors) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  return bytes;
}

}  // namespace

std::vector<PredictStage> SubnetPrefixCache::stages_of(Model& model) {
  auto* classifier = dynamic_cast<ImageClassifier*>(&model);
  if (auto* nas = dynamic_cast<NasAlgorithm*>(&model)) {
    classifier = dynamic_cast<ImageClassifier*>(&nas->architecture());
  }
  if (!classifier) return {};
  std::vector<PredictStage> stages = classifier->predict_stages();
  if (stages.empty()) return {};
  std::set<const Mutable*> in_stages;
  for (const auto& stage : stages) {
    for (nn::Module* root : stage.modules) {
      for (torch::nn::Module* module : subtree(*root)) {
        if (auto* m = dynamic_cast<const Mutable*>(module)) in_stages.insert(m);
      }
    }
  }
  for (torch::nn::Module* module : subtree(model)) {
    auto* razor_module = dynamic_cast<const nn::Module*>(module);
    if (razor_module && razor_module->num_hooks() > 0) return {};
    auto* m = dynamic_cast<const Mutable*>(module);
    if (m && (!plain_op_choice(*m) || !in_stages.count(m))) return {};
  }
  return stages;
}

std::vector<std::string> SubnetPrefixCache::stage_keys(const std::vector<PredictStage>& stages) {
  std::vector<std::string> keys;
  std::string key;
  for (const auto& stage : stages) {
    for (nn::Module* root : stage.modules) {
      for (torch::nn::Module* module : subtree(*root)) {
        if (auto* m = dynamic_cast<const Mutable*>(module)) {
          key += m->path() + "=" + m->current_choice().dump() + ";";
        }
      }
    }
    key += "|";
    keys.push_back(key);
  }
  return keys;
}

bool SubnetPrefixCache::holds(const Entry& entry, const PredictStage& stage, const std::string& key) {
  return entry.key == key && entry.first_module == stage.modules.front() &&
         entry.parameter_version == parameter_version(stage);
}

std::vector<torch::Tensor> SubnetPrefixCache::predict(Model& model,
                                                      const std::vector<PredictStage>& stages,
                                                      const std::vector<torch::Tensor>& calibration,
                                                      const std::vector<torch::Tensor>& eval) {
  RAZOR_ASSERT(!stages.empty());
  // The entries hold for the very tensors they were computed on, unchanged (they are held,
  // so no other tensor can take their place).
  std::vector<torch::Tensor> inputs = calibration;
  inputs.insert(inputs.end(), eval.begin(), eval.end());
  std::vector<int64_t> versions;
  for (const auto& t : inputs) versions.push_back(static_cast<int64_t>(t._version()));
  const bool same_inputs =
      inputs.size() == inputs_.size() && versions == input_versions_ &&
      std::equal(inputs.begin(), inputs.end(), inputs_.begin(),
                 [](const torch::Tensor& a, const torch::Tensor& b) { return a.is_same(b); });
  if (!same_inputs) {
    entries_.clear();
    inputs_ = std::move(inputs);
    input_versions_ = std::move(versions);
  }
  const std::vector<std::string> keys = stage_keys(stages);
  size_t reused = 0;
  while (reused < entries_.size() && holds(entries_[reused], stages[reused], keys[reused])) ++reused;
  entries_.resize(reused);

  torch::NoGradGuard no_grad;
  // A reused stage leaves its BatchNorms as calibrating it would have: the statistics it
  // found, and the batches counted.
  for (const Entry& entry : entries_) {
    for (const auto& n : entry.norms) {
      n.norm->running_mean.copy_(n.mean);
      n.norm->running_var.copy_(n.var);
      n.norm->num_batches_tracked.add_(n.batches);
    }
  }
  reused_ += static_cast<int64_t>(reused);
  computed_ += static_cast<int64_t>(stages.size() - reused);

  // Whether stage s's outputs are kept: the stages from the first, while their outputs for
  // every image (estimated from the first batch's) fit in the budget. The last stage's
  // outputs are the scores, which no later stage reads.
  int64_t images = 0;
  for (const auto& t : calibration) images += t.size(0);
  for (const auto& t : eval) images += t.size(0);
  int64_t used = 0;
  for (const Entry& entry : entries_) used += entry.bytes;
  std::vector<int> keep(stages.size(), -1);  // -1: not decided yet
  bool keeping = true;
  auto kept = [&](size_t s, const torch::Tensor& out) {
    if (keep[s] < 0) {
      const int64_t per_image = out.numel() * static_cast<int64_t>(out.element_size()) /
                                std::max<int64_t>(out.size(0), 1);
      const int64_t bytes = per_image * images;
      keeping = keeping && s + 1 < stages.size() && used + bytes <= budget_bytes_;
      if (keeping) used += bytes;
      keep[s] = keeping ? 1 : 0;
    }
    return keep[s] == 1;
  };

  std::vector<Entry> fresh(stages.size() - reused);
  const bool was_training = model.is_training();
  std::vector<torch::Tensor> scores;
  try {
    // The calibration images stage by stage (a stage's statistics must be known before any
    // image is evaluated through it) ...
    std::vector<torch::Tensor> inputs = reused ? entries_.back().calibration : calibration;
    model.train(true);
    for (size_t s = reused; s < stages.size() && !inputs.empty(); ++s) {
      Entry& entry = fresh[s - reused];
      std::vector<nn::BatchNorm2d*> norms;
      for (nn::Module* module : stages[s].modules) {
        for (nn::BatchNorm2d* norm : batch_norms(*module)) norms.push_back(norm);
      }
      BNStatisticsRecorder recorder(norms);
      std::vector<torch::Tensor> outputs;
      for (const auto& x : inputs) outputs.push_back(stages[s].run(x));
      recorder.apply();
      for (size_t i = 0; i < norms.size(); ++i) {
        if (recorder.batches()[i] == 0) continue;
        entry.norms.push_back({norms[i], norms[i]->running_mean.clone(),
                               norms[i]->running_var.clone(), recorder.batches()[i]});
      }
      if (kept(s, outputs.front())) entry.calibration = outputs;
      inputs = std::move(outputs);
    }
    // ... then the evaluation images batch by batch through every stage, so that only the
    // kept stages' outputs are held for the whole set.
    model.eval();
    for (size_t b = 0; b < eval.size(); ++b) {
      torch::Tensor x = reused ? entries_.back().eval[b] : eval[b];
      for (size_t s = reused; s < stages.size(); ++s) {
        x = stages[s].run(x);
        if (kept(s, x)) fresh[s - reused].eval.push_back(x);
      }
      scores.push_back(x);
    }
  } catch (...) {
    entries_.clear();
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  for (size_t s = reused; s < stages.size() && keep[s] == 1; ++s) {
    Entry& entry = fresh[s - reused];
    entry.key = keys[s];
    entry.first_module = stages[s].modules.front();
    entry.parameter_version = parameter_version(stages[s]);
    entry.bytes = bytes_of(entry.calibration) + bytes_of(entry.eval);
    entries_.push_back(std::move(entry));
  }
  return scores;
}

}  // namespace razor
