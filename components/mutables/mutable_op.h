#pragma once
// Op mutables: a block whose op is one of several named candidates (MMRazor's
// OneShotMutableOP, OneShotProbMutableOP, DiffMutableOP, OneHotMutableOP). Candidates are
// children of "_candidates", so weights read "backbone.layers.0.0._candidates.shuffle_3x3.*"
// as in MMRazor checkpoints, and hooks see each candidate by its dotted name.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "components/mutables/mutable.h"

namespace razor {

using Candidates = std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>>;

/// The base of op mutables: the candidates, the current one, and fixing (which drops the
/// others, so a fixed supernet holds only the chosen ops' weights).
class MutableOP : public Mutable {
 public:
  MutableOP(const std::string& type_name, Candidates candidates, std::string alias);

  std::vector<Choice> choices() const override;
  Choice current_choice() const override { return names_.at(current_); }
  void set_current_choice(const Choice& choice) override;
  /// Op candidates are ordered by parameter count: max is the largest candidate, min the
  /// smallest (the first of equals).
  bool ordered() const override { return true; }
  Choice min_choice() const override;
  Choice max_choice() const override;
  void fix_chosen(const Choice& chosen) override;

  size_t num_choices() const { return names_.size(); }
  const std::vector<std::string>& candidate_names() const { return names_; }
  nn::Module& candidate(size_t index) const { return *ops_.at(index); }
  nn::Module& candidate(const std::string& name) const;
  size_t current_index() const { return current_; }
  size_t index_of(const Choice& choice) const;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

  std::vector<std::string> names_;
  std::vector<std::shared_ptr<nn::Module>> ops_;
  size_t current_ = 0;

 private:
  std::shared_ptr<nn::Module> container_;
  std::vector<int64_t> sizes_;  // parameter count per candidate, for min/max
};

/// SPOS's op choice: forward runs the current candidate; samples are uniform.
class OneShotMutableOP : public MutableOP {
 public:
  explicit OneShotMutableOP(Candidates candidates, std::string alias = "")
      : MutableOP("OneShotMutableOP", std::move(candidates), std::move(alias)) {}
};

/// A OneShotMutableOP sampled with `choice_probs` (one per candidate, summing to 1).
class OneShotProbMutableOP : public MutableOP {
 public:
  OneShotProbMutableOP(Candidates candidates, std::vector<double> choice_probs,
                       std::string alias = "");
  Choice sample_choice(at::Generator& generator) const override;
  const std::vector<double>& choice_probs() const { return probs_; }

 private:
  std::vector<double> probs_;
};

/// DARTS's op mixer: with an architecture parameter α (one per search group, owned by the
/// mutator), forward is Σ_i softmax(α)_i · op_i(x); without one, the plain sum of all
/// candidates. A sample is the argmax of α; once fixed, forward runs only the chosen op.
class DiffMutableOP : public MutableOP {
 public:
  explicit DiffMutableOP(Candidates candidates, std::string alias = "")
      : DiffMutableOP("DiffMutableOP", std::move(candidates), std::move(alias)) {}

  /// The mutator binds the group's α (a 1-D tensor of num_choices()).
  void set_arch_param(torch::Tensor alpha);
  const torch::Tensor& arch_param() const { return alpha_; }
  /// The argmax of α (the first candidate without α).
  Choice sample_choice(at::Generator& generator) const override;
  /// softmax(α).
  torch::Tensor arch_probs() const;

 protected:
  DiffMutableOP(const std::string& type_name, Candidates candidates, std::string alias)
      : MutableOP(type_name, std::move(candidates), std::move(alias)) {}
  torch::Tensor forward(const torch::Tensor& input) override;

  torch::Tensor alpha_;
};

/// DSNAS's op choice: in training the output is w_k · op_k(x) for a one-hot w sampled from
/// Categorical(softmax α) (w carries the gradient DSNAS scales α's gradient by); in eval
/// the argmax op runs. `fix_threshold` fixes the op to the argmax once the top two
/// probabilities differ by at least that much (MMRazor fixes the second candidate instead).
class OneHotMutableOP : public DiffMutableOP {
 public:
  OneHotMutableOP(Candidates candidates, double fix_threshold = 1.0, std::string alias = "")
      : DiffMutableOP("OneHotMutableOP", std::move(candidates), std::move(alias)),
        fix_threshold_(fix_threshold) {}

  /// Draws the one-hot weights for the next training forward from `generator`.
  void sample_weights(at::Generator& generator);
  /// The one-hot weights of the last sample (requires grad; undefined before any).
  const torch::Tensor& arch_weights() const { return weights_; }
  size_t sampled_index() const { return sampled_; }
  /// Fixes the op to the argmax of α when top-1 − top-2 probability ≥ fix_threshold;
  /// returns whether it is fixed.
  bool fix_if_confident();
  double fix_threshold() const { return fix_threshold_; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  double fix_threshold_;
  torch::Tensor weights_;
  size_t sampled_ = 0;
};

}  // namespace razor
