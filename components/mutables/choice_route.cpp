#include "components/mutables/choice_route.h"

#include <torch/torch.h>

#include <algorithm>

#include "components/nn/multi_input.h"
#include "engine/error.h"

namespace razor {

namespace {
class EdgeDict : public nn::Module {
 public:
  EdgeDict() : nn::Module("ModuleDict") {}
};
}  // namespace

DiffChoiceRoute::DiffChoiceRoute(Candidates edges, bool with_arch_param, int64_t num_chosen,
                                 std::string alias)
    : Mutable("DiffChoiceRoute", std::move(alias)),
      with_arch_param_(with_arch_param),
      num_chosen_(num_chosen) {
  RAZOR_CHECK(!edges.empty(), "DiffChoiceRoute: needs at least one edge");
  RAZOR_CHECK(num_chosen >= 1 && num_chosen <= static_cast<int64_t>(edges.size()),
              "DiffChoiceRoute: num_chosen must be in [1, ", edges.size(), "], got ", num_chosen);
  container_ = register_module("_edges", std::make_shared<EdgeDict>());
  for (auto& [name, edge] : edges) {
    RAZOR_CHECK(std::find(names_.begin(), names_.end(), name) == names_.end(),
                "DiffChoiceRoute: two edges are named \"", name, "\"");
    container_->register_module(name, edge);
    names_.push_back(name);
    edges_.push_back(std::move(edge));
  }
  chosen_.assign(names_.size(), true);
  // The kept edges' sum as an op, so that the op graph of a fixed cell is whole.
  sum_ = register_module("sum", std::make_shared<nn::Add>());
}

std::vector<Choice> DiffChoiceRoute::choices() const {
  return std::vector<Choice>(names_.begin(), names_.end());
}

Choice DiffChoiceRoute::current_choice() const {
  Choice out = Choice::array();
  for (size_t i = 0; i < names_.size(); ++i) {
    if (chosen_[i]) out.push_back(names_[i]);
  }
  return out;
}

void DiffChoiceRoute::set_current_choice(const Choice& choice) {
  RAZOR_CHECK(choice.is_array() && !choice.empty(), display_name(),
              ": a route's choice is a list of edge names (of ", describe_choices(choices()),
              "), got ", choice.dump());
  std::vector<bool> chosen(names_.size(), false);
  for (const auto& item : choice) {
    auto it = item.is_string() ? std::find(names_.begin(), names_.end(), item.get<std::string>())
                               : names_.end();
    if (it == names_.end()) fail_choice(item);
    chosen[static_cast<size_t>(it - names_.begin())] = true;
  }
  RAZOR_CHECK(!fixed_ || chosen == chosen_, display_name(), ": fixed to ",
              current_choice().dump(), ", cannot choose ", choice.dump());
  chosen_ = chosen;
}

bool DiffChoiceRoute::accepts(const Choice& choice) const {
  if (!choice.is_array() || choice.empty()) return false;
  return std::all_of(choice.begin(), choice.end(), [this](const Choice& item) {
    return item.is_string() &&
           std::find(names_.begin(), names_.end(), item.get<std::string>()) != names_.end();
  });
}

Choice DiffChoiceRoute::sample_choice(at::Generator&) const {
  if (fixed_ || !alpha_.defined()) return current_choice();
  const auto order = alpha_.detach().cpu().argsort(0, /*descending=*/true);
  std::vector<bool> chosen(names_.size(), false);
  for (int64_t k = 0; k < num_chosen_; ++k) chosen[static_cast<size_t>(order[k].item<int64_t>())] = true;
  Choice out = Choice::array();
  for (size_t i = 0; i < names_.size(); ++i) {
    if (chosen[i]) out.push_back(names_[i]);
  }
  return out;
}

void DiffChoiceRoute::fix_chosen(const Choice& chosen) {
  if (fixed_) {
    Mutable::fix_chosen(chosen);
    return;
  }
  set_current_choice(chosen);
  // The edges not kept are dropped; inputs keep their positions.
  for (size_t i = 0; i < names_.size(); ++i) {
    if (!chosen_[i]) container_->unregister_module(names_[i]);
  }
  fixed_ = true;
}

void DiffChoiceRoute::set_arch_param(torch::Tensor alpha) {
  RAZOR_ASSERT(alpha.dim() == 1 && alpha.size(0) == static_cast<int64_t>(names_.size()));
  alpha_ = std::move(alpha);
}

torch::Tensor DiffChoiceRoute::edge_weights() { return torch::softmax(alpha_, -1); }

torch::Tensor DiffChoiceRoute::forward_inputs(const nn::Inputs& inputs) {
  RAZOR_CHECK(inputs.size() == names_.size(), display_name(), ": ", names_.size(),
              " edges but ", inputs.size(), " inputs");
  if (fixed_ || !alpha_.defined() || !with_arch_param_) {
    nn::Inputs terms;
    for (size_t i = 0; i < names_.size(); ++i) {
      if (chosen_[i]) terms.push_back((*edges_[i])(inputs[i]));
    }
    return terms.size() == 1 ? terms[0] : (*sum_)(std::move(terms));
  }
  torch::Tensor out;
  auto add = [&out](torch::Tensor term) { out = out.defined() ? out + term : term; };
  const torch::Tensor weights = edge_weights().to(inputs[0].dtype());
  for (size_t i = 0; i < names_.size(); ++i) {
    add((*edges_[i])(inputs[i]) * weights[static_cast<int64_t>(i)]);
  }
  return out;
}

GumbelChoiceRoute::GumbelChoiceRoute(Candidates edges, double tau, bool hard, bool with_arch_param,
                                     int64_t num_chosen, std::string alias)
    : DiffChoiceRoute(std::move(edges), with_arch_param, num_chosen, std::move(alias)),
      tau_(tau),
      hard_(hard) {
  RAZOR_CHECK(tau > 0, "GumbelChoiceRoute: tau must be positive, got ", tau);
}

torch::Tensor GumbelChoiceRoute::edge_weights() {
  // Gumbel(0, 1) noise: -log(-log(U)), U uniform in (0, 1).
  const torch::Tensor u = torch::rand_like(alpha_).clamp(1e-10, 1.0 - 1e-10);
  const torch::Tensor soft = torch::softmax((alpha_ - torch::log(-torch::log(u))) / tau_, -1);
  if (!hard_) return soft;
  const torch::Tensor hard =
      torch::zeros_like(soft).scatter_(0, soft.detach().argmax().unsqueeze(0), 1.0);
  return hard - soft.detach() + soft;  // straight-through: forward hard, gradient soft
}

}  // namespace razor
