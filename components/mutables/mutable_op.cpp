#include "components/mutables/mutable_op.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"

namespace razor {

namespace {
class CandidateDict : public nn::Module {
 public:
  CandidateDict() : nn::Module("ModuleDict") {}
};

int64_t parameter_count(nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}
}  // namespace

MutableOP::MutableOP(const std::string& type_name, Candidates candidates, std::string alias)
    : Mutable(type_name, std::move(alias)) {
  RAZOR_CHECK(!candidates.empty(), type_name, ": needs at least one candidate");
  container_ = register_module("_candidates", std::make_shared<CandidateDict>());
  for (auto& [name, op] : candidates) {
    RAZOR_CHECK(op != nullptr, type_name, ": candidate \"", name, "\" is null");
    RAZOR_CHECK(std::find(names_.begin(), names_.end(), name) == names_.end(), type_name,
                ": two candidates are named \"", name, "\"");
    RAZOR_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name,
                ": candidate names must be non-empty and without dots, got \"", name, "\"");
    container_->register_module(name, op);
    names_.push_back(name);
    sizes_.push_back(parameter_count(*op));
    ops_.push_back(std::move(op));
  }
}

std::vector<Choice> MutableOP::choices() const {
  return std::vector<Choice>(names_.begin(), names_.end());
}

size_t MutableOP::index_of(const Choice& choice) const {
  if (choice.is_string()) {
    auto it = std::find(names_.begin(), names_.end(), choice.get<std::string>());
    if (it != names_.end()) return static_cast<size_t>(it - names_.begin());
  }
  fail_choice(choice);
}

void MutableOP::set_current_choice(const Choice& choice) {
  const size_t index = index_of(choice);
  RAZOR_CHECK(!fixed_ || index == current_, display_name(), ": fixed to ",
              current_choice().dump(), ", cannot choose ", choice.dump());
  current_ = index;
}

nn::Module& MutableOP::candidate(const std::string& name) const {
  return *ops_.at(index_of(Choice(name)));
}

Choice MutableOP::min_choice() const {
  return names_[static_cast<size_t>(std::min_element(sizes_.begin(), sizes_.end()) - sizes_.begin())];
}

Choice MutableOP::max_choice() const {
  return names_[static_cast<size_t>(std::max_element(sizes_.begin(), sizes_.end()) - sizes_.begin())];
}

void MutableOP::fix_chosen(const Choice& chosen) {
  if (fixed_) {
    Mutable::fix_chosen(chosen);  // same choice again is fine; another is an error
    return;
  }
  const size_t keep = index_of(chosen);
  for (size_t i = 0; i < names_.size(); ++i) {
    if (i != keep) container_->unregister_module(names_[i]);
  }
  names_ = {names_[keep]};
  ops_ = {ops_[keep]};
  sizes_ = {sizes_[keep]};
  current_ = 0;
  fixed_ = true;
}

torch::Tensor MutableOP::forward(const torch::Tensor& input) { return (*ops_[current_])(input); }

OneShotProbMutableOP::OneShotProbMutableOP(Candidates candidates, std::vector<double> choice_probs,
                                           std::string alias)
    : MutableOP("OneShotProbMutableOP", std::move(candidates), std::move(alias)),
      probs_(std::move(choice_probs)) {
  RAZOR_CHECK(probs_.size() == names_.size(), "OneShotProbMutableOP: choice_probs has ",
              probs_.size(), " values for ", names_.size(), " candidates");
  for (double p : probs_) RAZOR_CHECK(p >= 0, "OneShotProbMutableOP: choice_probs must be >= 0");
  const double sum = std::accumulate(probs_.begin(), probs_.end(), 0.0);
  RAZOR_CHECK(std::abs(sum - 1.0) < 1e-6, "OneShotProbMutableOP: choice_probs must sum to 1, got ",
              sum);
}

Choice OneShotProbMutableOP::sample_choice(at::Generator& generator) const {
  if (fixed_) return current_choice();
  const double u = sample_uniform(generator);
  double cumulative = 0;
  for (size_t i = 0; i < probs_.size(); ++i) {
    cumulative += probs_[i];
    if (u < cumulative) return names_[i];
  }
  return names_.back();
}

void DiffMutableOP::set_arch_param(torch::Tensor alpha) {
  RAZOR_ASSERT(alpha.dim() == 1 && alpha.size(0) == static_cast<int64_t>(names_.size()));
  alpha_ = std::move(alpha);
}

torch::Tensor DiffMutableOP::arch_probs() const {
  RAZOR_ASSERT(alpha_.defined());
  return torch::softmax(alpha_, -1);
}

Choice DiffMutableOP::sample_choice(at::Generator&) const {
  if (fixed_ || !alpha_.defined()) return current_choice();
  return names_[static_cast<size_t>(alpha_.detach().argmax().item<int64_t>())];
}

torch::Tensor DiffMutableOP::forward(const torch::Tensor& input) {
  if (fixed_) return (*ops_[0])(input);
  torch::Tensor out;
  if (!alpha_.defined()) {
    for (auto& op : ops_) out = out.defined() ? out + (*op)(input) : (*op)(input);
    return out;
  }
  const torch::Tensor probs = torch::softmax(alpha_, -1).to(input.dtype());
  for (size_t i = 0; i < ops_.size(); ++i) {
    torch::Tensor term = (*ops_[i])(input) * probs[static_cast<int64_t>(i)];
    out = out.defined() ? out + term : term;
  }
  return out;
}

void OneHotMutableOP::sample_weights(at::Generator& generator) {
  if (fixed_) return;
  RAZOR_ASSERT(alpha_.defined());
  const torch::Tensor probs = torch::softmax(alpha_.detach().to(torch::kDouble).cpu(), -1);
  const double u = sample_uniform(generator);
  double cumulative = 0;
  sampled_ = names_.size() - 1;
  for (size_t i = 0; i < names_.size(); ++i) {
    cumulative += probs[static_cast<int64_t>(i)].item<double>();
    if (u < cumulative) {
      sampled_ = i;
      break;
    }
  }
  weights_ = torch::zeros({static_cast<int64_t>(names_.size())}, alpha_.options());
  weights_[static_cast<int64_t>(sampled_)] = 1.0;
  weights_.requires_grad_(true);
  current_ = sampled_;
}

bool OneHotMutableOP::fix_if_confident() {
  if (fixed_) return true;
  if (names_.size() < 2) return false;
  const torch::Tensor probs = torch::softmax(alpha_.detach().to(torch::kDouble).cpu(), -1);
  const auto top = probs.topk(2);
  const double gap = (std::get<0>(top)[0] - std::get<0>(top)[1]).item<double>();
  if (gap < fix_threshold_) return false;
  // The argmax: MMRazor indexes its choices with a boolean tensor and fixes the second one.
  fix_chosen(names_[static_cast<size_t>(std::get<1>(top)[0].item<int64_t>())]);
  return true;
}

torch::Tensor OneHotMutableOP::forward(const torch::Tensor& input) {
  if (fixed_) return (*ops_[0])(input);
  if (!is_training() || !weights_.defined() || !alpha_.defined()) {
    const size_t index =
        alpha_.defined() ? static_cast<size_t>(alpha_.detach().argmax().item<int64_t>()) : current_;
    return (*ops_[index])(input);
  }
  // Only the sampled op runs; its weight (1) carries the gradient DSNAS uses.
  return (*ops_[sampled_])(input) * weights_[static_cast<int64_t>(sampled_)].to(input.dtype());
}

}  // namespace razor
