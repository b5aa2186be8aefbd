#pragma once
// Input-edge choices of a DARTS cell node (MMRazor's DiffChoiceRoute, GumbelChoiceRoute):
// the node sums edge_i(x_i) over its incoming edges, weighted by softmax(α) (or a Gumbel
// softmax) while searching; a choice is the list of `num_chosen` kept edges.
#include <memory>
#include <string>
#include <vector>

#include "components/mutables/mutable_op.h"

namespace razor {

class DiffChoiceRoute : public Mutable {
 public:
  /// `edges` in input order: edge i takes input i. With `with_arch_param`, the mutator
  /// binds an α of one value per edge.
  DiffChoiceRoute(Candidates edges, bool with_arch_param = true, int64_t num_chosen = 2,
                  std::string alias = "");

  std::vector<Choice> choices() const override;
  /// The list of kept edge names (all edges until a choice is set).
  Choice current_choice() const override;
  void set_current_choice(const Choice& choice) override;
  /// A non-empty list of edge names.
  bool accepts(const Choice& choice) const override;
  /// The `num_chosen` edges of largest α (in edge order); without α, the current choice.
  Choice sample_choice(at::Generator& generator) const override;
  void fix_chosen(const Choice& chosen) override;

  bool with_arch_param() const { return with_arch_param_; }
  int64_t num_chosen() const { return num_chosen_; }
  size_t num_edges() const { return names_.size(); }
  nn::Module& edge(size_t index) const { return *edges_.at(index); }
  const std::vector<std::string>& edge_names() const { return names_; }
  void set_arch_param(torch::Tensor alpha);
  const torch::Tensor& arch_param() const { return alpha_; }

 protected:
  torch::Tensor forward_inputs(const nn::Inputs& inputs) override;
  /// The weight of each edge for this forward (softmax α by default).
  virtual torch::Tensor edge_weights();

  torch::Tensor alpha_;

 private:
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<nn::Module>> edges_;
  std::vector<bool> chosen_;
  std::shared_ptr<nn::Module> container_;
  std::shared_ptr<nn::Module> sum_;
  bool with_arch_param_;
  int64_t num_chosen_;
};

/// DiffChoiceRoute with Gumbel-softmax edge weights at temperature `tau` (straight-through
/// one-hot with `hard`). The noise comes from LibTorch's default generator.
class GumbelChoiceRoute : public DiffChoiceRoute {
 public:
  GumbelChoiceRoute(Candidates edges, double tau = 1.0, bool hard = true,
                    bool with_arch_param = true, int64_t num_chosen = 2, std::string alias = "");
  double tau() const { return tau_; }
  /// Schedulers anneal the temperature.
  void set_tau(double tau) { tau_ = tau; }
  bool hard() const { return hard_; }

 protected:
  torch::Tensor edge_weights() override;

 private:
  double tau_;
  bool hard_;
};

}  // namespace razor
