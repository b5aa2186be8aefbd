#include "algorithms/nas/subnet_prefix_cache.h"

#include <torch/torch.h>

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
  std::vector<const void*> inputs;
  for (const auto& t : calibration) inputs.push_back(t.data_ptr());
  for (const auto& t : eval) inputs.push_back(t.data_ptr());
  if (inputs != inputs_) {
    entries_.clear();
    inputs_ = inputs;
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
  std::vector<torch::Tensor> calibration_in = reused ? entries_.back().calibration : calibration;
  std::vector<torch::Tensor> eval_in = reused ? entries_.back().eval : eval;
  int64_t bytes = 0;
  for (const Entry& entry : entries_) bytes += entry.bytes;
  bool keeping = true;

  const bool was_training = model.is_training();
  try {
    for (size_t s = reused; s < stages.size(); ++s) {
      const PredictStage& stage = stages[s];
      Entry entry;
      std::vector<nn::BatchNorm2d*> norms;
      for (nn::Module* module : stage.modules) {
        for (nn::BatchNorm2d* norm : batch_norms(*module)) norms.push_back(norm);
      }
      {
        BNStatisticsRecorder recorder(norms);
        model.train(true);
        for (const auto& x : calibration_in) entry.calibration.push_back(stage.run(x));
        recorder.apply();
        for (size_t i = 0; i < norms.size(); ++i) {
          if (recorder.batches()[i] == 0) continue;
          entry.norms.push_back({norms[i], norms[i]->running_mean.clone(),
                                 norms[i]->running_var.clone(), recorder.batches()[i]});
        }
      }
      model.eval();
      for (const auto& x : eval_in) entry.eval.push_back(stage.run(x));
      ++computed_;
      calibration_in = entry.calibration;
      eval_in = entry.eval;
      // The last stage's outputs are the predictions: no later stage reads them.
      entry.bytes = bytes_of(entry.calibration) + bytes_of(entry.eval);
      keeping = keeping && s + 1 < stages.size() && bytes + entry.bytes <= budget_bytes_;
      if (keeping) {
        entry.key = keys[s];
        entry.first_module = stage.modules.front();
        entry.parameter_version = parameter_version(stage);
        bytes += entry.bytes;
        entries_.push_back(std::move(entry));
      }
    }
  } catch (...) {
    entries_.clear();
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  return eval_in;
}

}  // namespace razor
