#include "algorithms/nas/dsnas.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/nas/build_nas.h"
#include "components/nn/batch_norm.h"
#include "engine/dist.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/runner.h"

namespace razor {

namespace {

torch::Tensor plus(const torch::Tensor& sum, const torch::Tensor& term) {
  return sum.defined() ? sum + term : term;
}

bool under(const std::string& path, const std::string& prefix) {
  return path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
         path[prefix.size()] == '.';
}

}  // namespace

DSNAS::DSNAS(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator,
             DSNASOptions options)
    : NasAlgorithm(std::move(architecture), std::move(mutator)),
      options_(std::move(options)),
      estimator_(options_.estimator) {
  RAZOR_CHECK(options_.pretrain_epochs >= 0, "DSNAS: pretrain_epochs must be >= 0, got ",
              options_.pretrain_epochs);
  RAZOR_CHECK(options_.pretrain_epochs < options_.finetune_epochs,
              "DSNAS: the pretrain stage must end before the finetune stage; got pretrain_epochs ",
              options_.pretrain_epochs, " >= finetune_epochs ", options_.finetune_epochs);
  for (const auto& item : architecture_->named_modules("", /*include_self=*/false)) {
    if (auto* op = dynamic_cast<OneHotMutableOP*>(item.value().get())) {
      index_of_[op] = one_hot_.size();
      one_hot_.push_back({item.key(), op});
    }
  }
  for (const auto& group : mutator_->search_groups()) {
    for (size_t i = 0; i < group.members.size(); ++i) {
      const Mutable* m = group.members[i];
      RAZOR_CHECK(dynamic_cast<const OneHotMutableOP*>(m) != nullptr, "DSNAS: \"", group.names[i],
                  "\" is a ", m->name(),
                  "; DSNAS searches OneHotMutableOPs only (fix the others with fix_subnet)");
    }
  }
}

std::vector<std::string> DSNAS::optim_wrapper_names() const {
  if (!mutator_->has_arch_params()) return {};
  return {"architecture", "mutator"};
}

void DSNAS::train(bool on) {
  NasAlgorithm::train(on);
  if (on || !options_.norm_training) return;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (dynamic_cast<nn::BatchNorm2d*>(module.get())) module->train(true);
  }
}

bool DSNAS::need_update_mutator(int64_t epoch) const {
  return epoch >= options_.pretrain_epochs && epoch < options_.finetune_epochs;
}

void DSNAS::sample_subnet() {
  at::Generator& generator = mutator_->generator();
  for (const auto& group : mutator_->search_groups()) {
    for (Mutable* m : group.members) {
      auto* op = static_cast<OneHotMutableOP*>(m);
      if (op->is_fixed()) continue;
      if (op->fix_if_confident()) {
        spdlog::info("DSNAS: {} is fixed to {} (its top-1 probability leads by >= {})",
                     op->display_name(), op->current_choice().dump(), op->fix_threshold());
        continue;
      }
      op->sample_weights(generator);
    }
  }
}

void DSNAS::build_flops_table() {
  if (flops_ready_) return;
  // One counted forward finds the shared part and the input each mutable sees; each
  // candidate is then counted alone on that input (in eval, a mutable runs only one).
  std::vector<std::vector<int64_t>> shapes(one_hot_.size());
  std::vector<nn::HookHandle> hooks;
  for (size_t i = 0; i < one_hot_.size(); ++i) {
    hooks.push_back(one_hot_[i].op->add_forward_pre_hook([&shapes, i](nn::Module&, nn::Inputs& in) {
      if (shapes[i].empty()) shapes[i] = in.at(0).sizes().vec();
    }));
  }
  ResourceReport report;
  try {
    report = estimator_.estimate_report(*architecture_);
  } catch (...) {
    for (auto& h : hooks) h.remove();
    throw;
  }
  for (auto& h : hooks) h.remove();
  base_raw_flops_ = 0;
  for (const auto& row : report.layers) {
    bool shared = true;
    for (const auto& m : one_hot_) shared = shared && !under(row.path, m.name);
    if (shared) base_raw_flops_ += row.flops;
  }
  raw_flops_.assign(one_hot_.size(), {});
  for (size_t i = 0; i < one_hot_.size(); ++i) {
    RAZOR_CHECK(!shapes[i].empty(), "DSNAS: ", one_hot_[i].name,
                " did not run in the estimator's forward (estimator_cfg.input_shape ",
                Json(options_.estimator.input_shape).dump(), ")");
    ResourceEstimatorOptions options = options_.estimator;
    options.input_shape = shapes[i];
    options.measure_latency = false;
    ResourceEstimator estimator(options);
    OneHotMutableOP& op = *one_hot_[i].op;
    for (const auto& name : op.candidate_names()) {
      nn::Module& candidate = op.candidate(name);
      // Rooted at the mutable, so that a candidate that is a single op is counted too (the
      // estimator counts the modules below its root); only the candidate runs.
      raw_flops_[i][name] =
          estimator
              .estimate_report(op, [&candidate](const torch::Tensor& x) { return candidate(x); })
              .raw_flops;
    }
  }
  flops_ready_ = true;
}

double DSNAS::raw_candidate_flops(size_t mutable_index, const std::string& choice) const {
  const auto& table = raw_flops_.at(mutable_index);
  auto it = table.find(choice);
  RAZOR_CHECK(it != table.end(), "DSNAS: ", one_hot_[mutable_index].name, " has no candidate \"",
              choice, "\"");
  return it->second;
}

double DSNAS::raw_subnet_flops() const {
  double raw = base_raw_flops_;
  for (size_t i = 0; i < one_hot_.size(); ++i) {
    const OneHotMutableOP& op = *one_hot_[i].op;
    if (op.is_fixed()) {
      raw += raw_candidate_flops(i, op.candidate_names().front());
    } else {
      RAZOR_CHECK(op.arch_weights().defined(), "DSNAS: ", one_hot_[i].name,
                  " has not been sampled yet (call sample_subnet first)");
      raw += raw_candidate_flops(i, op.candidate_names().at(op.sampled_index()));
    }
  }
  return raw;
}

double DSNAS::subnet_flops() {
  build_flops_table();
  return estimator_.convert(raw_subnet_flops());
}

double DSNAS::candidate_flops(const std::string& name, const std::string& choice) {
  build_flops_table();
  for (size_t i = 0; i < one_hot_.size(); ++i) {
    if (one_hot_[i].name == name) return estimator_.convert(raw_candidate_flops(i, choice));
  }
  throw config_error("DSNAS: no OneHotMutableOP is named \"", name, "\"");
}

DSNAS::MutatorTerms DSNAS::mutator_terms() {
  build_flops_table();
  const double world = static_cast<double>(dist::world_size());
  MutatorTerms terms;
  torch::Tensor score, flops;
  for (const auto& group : mutator_->search_groups()) {
    if (!group.arch_param.defined()) continue;
    const torch::Tensor probs = torch::softmax(group.arch_param, -1);
    for (Mutable* m : group.members) {
      auto* op = static_cast<OneHotMutableOP*>(m);
      if (op->is_fixed()) continue;
      const size_t i = index_of_.at(op);
      const torch::Tensor& w = op->arch_weights();
      RAZOR_CHECK(w.defined(), "DSNAS: ", one_hot_[i].name,
                  " has not been sampled yet (call sample_subnet first)");
      const torch::Tensor log_p = torch::log((w.detach() * probs).sum(-1));
      terms.arch_loss = plus(terms.arch_loss, log_p);
      // s_m = Σ_i ∂L/∂Z_m,i of the supernet loss (zero before any backward reached Z).
      if (w.grad().defined()) score = plus(score, w.grad().detach().sum() * log_p);
      const size_t k = op->sampled_index();
      const double op_flops =
          estimator_.convert(raw_candidate_flops(i, op->candidate_names().at(k)));
      flops = plus(flops, probs[static_cast<int64_t>(k)] * op_flops);
    }
  }
  if (!terms.arch_loss.defined()) return terms;  // every mutable is fixed
  terms.arch_loss = terms.arch_loss / world;
  terms.subnet_flops = estimator_.convert(raw_subnet_flops());
  if (terms.subnet_flops >= options_.flops_constraints) {
    terms.flops_loss = flops * (kFlopsLossCoef / world);
  }
  if (score.defined()) terms.surrogate = score / world;
  if (terms.flops_loss.defined()) terms.surrogate = plus(terms.surrogate, terms.flops_loss);
  return terms;
}

LossMap DSNAS::mutator_loss() {
  MutatorTerms terms = mutator_terms();
  LossMap out;
  if (!terms.arch_loss.defined()) return out;
  out.emplace_back("arch_loss", terms.arch_loss);
  if (terms.flops_loss.defined()) out.emplace_back("flops_loss", terms.flops_loss);
  return out;
}

LossMap DSNAS::update_arch_params(OptimWrapper& mutator_optim) {
  MutatorTerms terms = mutator_terms();
  LossMap out;
  if (!terms.arch_loss.defined()) return out;
  out.emplace_back("mutator.arch_loss", terms.arch_loss.detach());
  if (terms.flops_loss.defined()) out.emplace_back("mutator.flops_loss", terms.flops_loss.detach());
  out.emplace_back("mutator.subnet_flops",
                   torch::full({}, terms.subnet_flops, terms.arch_loss.options()));
  if (!terms.surrogate.defined()) return out;
  // MMRazor's handle_grads, before the step (see the header): α's gradient is the score
  // function scaled by Σ ∂L/∂Z, plus the FLOPs penalty's.
  const std::vector<torch::Tensor> alphas = mutator_->arch_params();
  const auto grads = torch::autograd::grad({terms.surrogate}, alphas, /*grad_outputs=*/{},
                                           /*retain_graph=*/false, /*create_graph=*/false,
                                           /*allow_unused=*/true);
  std::vector<torch::Tensor> stepped, reduced;
  for (size_t j = 0; j < alphas.size(); ++j) {
    if (!grads[j].defined()) continue;  // every member fixed: α no longer matters
    stepped.push_back(alphas[j]);
    reduced.push_back(grads[j]);
  }
  // Each rank's terms are already divided by W: their sum is the mean over the ranks.
  dist::all_reduce(reduced);
  for (size_t j = 0; j < stepped.size(); ++j) stepped[j].mutable_grad() = reduced[j];
  mutator_optim.step();
  mutator_optim.zero_grad();
  return out;
}

void DSNAS::fix_architecture() {
  std::vector<torch::Tensor> alphas = mutator_->arch_params();
  dist::broadcast(alphas, /*root=*/0);
  for (const auto& group : mutator_->search_groups()) {
    at::Generator& generator = mutator_->generator();
    const Choice chosen = group.front().sample_choice(generator);  // argmax α (or the fixed op)
    for (Mutable* m : group.members) {
      if (!m->is_fixed()) m->fix_chosen(chosen);
    }
  }
  is_supernet_ = false;
  spdlog::info("DSNAS: the architecture is fixed for the finetune stage: {}",
               mutator_->current_subnet().dump());
}

LossMap DSNAS::train_step(const Batch& batch, OptimWrapper& optim) {
  if (!mutator_->has_arch_params()) return Model::train_step(batch, optim);
  OptimWrapperDict& wrappers = as_optim_wrapper_dict(optim, "DSNAS");
  OptimWrapper& architecture_optim = wrappers.at("architecture");
  const int64_t epoch = current_epoch();
  if (is_supernet_ && epoch >= options_.finetune_epochs) fix_architecture();
  if (!is_supernet_) return Model::train_step(batch, architecture_optim);

  sample_subnet();
  LossMap losses = loss(batch);
  const torch::Tensor total = total_loss(losses);
  // Also leaves ∂L/∂Z in each mutable's one-hot weights (they are in no optimiser).
  architecture_optim.update_params(total);
  LossMap out;
  for (const auto& item : losses) {
    if (item.first != "loss") out.emplace_back(item.first, item.second.detach().mean());
  }
  if (need_update_mutator(epoch)) {
    for (auto& item : update_arch_params(wrappers.at("mutator"))) out.push_back(std::move(item));
  }
  out.emplace_back("loss", total.detach());
  return out;
}

Json DSNAS::extra_state() const {
  Json state = NasAlgorithm::extra_state();
  Json fixed = Json::object();
  for (const auto& m : one_hot_) {
    if (m.op->is_fixed()) fixed[m.name] = m.op->current_choice();
  }
  state["dsnas"] = Json{{"supernet", is_supernet_}, {"fixed", fixed}};
  return state;
}

void DSNAS::load_extra_state(const Json& state) {
  NasAlgorithm::load_extra_state(state);
  if (!state.contains("dsnas")) return;
  const Json& dsnas = state["dsnas"];
  const Json fixed = dsnas.value("fixed", Json::object());
  for (const auto& item : fixed.items()) {
    bool found = false;
    for (const auto& m : one_hot_) {
      if (m.name != item.key()) continue;
      found = true;
      RAZOR_CHECK(m.op->accepts(item.value()), "DSNAS checkpoint: ", m.name, " was fixed to ",
                  item.value().dump(), ", which is not one of its choices (",
                  describe_choices(m.op->choices()), ")");
      m.op->fix_chosen(item.value());
    }
    RAZOR_CHECK(found, "DSNAS checkpoint: fixes \"", item.key(),
                "\", which is not a OneHotMutableOP of this model");
  }
  is_supernet_ = dsnas.value("supernet", true);
}

void register_dsnas() {
  static bool done = false;
  if (done) return;
  done = true;
  model_registry().add("DSNAS", [](Args& args, const BuildContext& context) {
    DSNASOptions options;
    options.pretrain_epochs = args.get<int64_t>("pretrain_epochs", options.pretrain_epochs);
    options.finetune_epochs = args.get<int64_t>("finetune_epochs", options.finetune_epochs);
    if (options.pretrain_epochs < 0) args.fail("pretrain_epochs", "must be >= 0");
    if (options.pretrain_epochs >= options.finetune_epochs) {
      args.fail("finetune_epochs", "must be above pretrain_epochs (" +
                                       std::to_string(options.pretrain_epochs) + "), got " +
                                       std::to_string(options.finetune_epochs));
    }
    options.flops_constraints = args.get<double>("flops_constraints", options.flops_constraints);
    if (args.has("estimator_cfg")) {
      Args estimator = args.sub("estimator_cfg");
      options.estimator = estimator_options_from(estimator);
    }
    options.norm_training = args.get<bool>("norm_training", false);
    auto architecture = build_nas_supernet(args, context);
    auto algorithm =
        std::make_shared<DSNAS>(architecture, build_nas_mutator(args, context), options);
    if (Runner* runner = context.runner) {
      algorithm->set_epoch_source([runner] { return runner->epoch(); });
    }
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
}

}  // namespace razor
