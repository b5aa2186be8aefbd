#include "engine/param_scheduler.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/optim_wrapper.h"

namespace razor {

ParamScheduler::ParamScheduler(Args& args, std::string param_name)
    : param_name_(std::move(param_name)) {
  begin_ = args.get<int64_t>("begin", 0);
  if (args.has("end")) end_ = args.require<int64_t>("end");
  by_epoch_ = args.get<bool>("by_epoch", true);
  convert_to_iter_based_ = args.get<bool>("convert_to_iter_based", false);
  RAZOR_CHECK(begin_ >= 0, args.where("begin"), ": must be >= 0, got ", begin_);
  RAZOR_CHECK(end_ > begin_, args.where("end"), ": must be greater than begin (", begin_, "), got ", end_);
  RAZOR_CHECK(!convert_to_iter_based_ || by_epoch_, args.where("convert_to_iter_based"),
              ": only meaningful with by_epoch = true");
}

void ParamScheduler::resolve(int64_t iters_per_epoch, int64_t max_epochs, int64_t max_iters) {
  if (resolved_) return;
  resolved_ = true;
  if (convert_to_iter_based_) {
    begin_ *= iters_per_epoch;
    if (end_ != kUnbounded) end_ *= iters_per_epoch;
    scale_steps(iters_per_epoch);
    by_epoch_ = false;
    if (end_ == kUnbounded && max_epochs > 0) end_ = max_epochs * iters_per_epoch;
  }
  if (end_ == kUnbounded) {
    const int64_t length = by_epoch_ ? max_epochs : max_iters;
    if (length > begin_) end_ = length;
  }
  on_resolved();
}

double ParamScheduler::factor(int64_t step) const {
  if (step < begin_) return 1.0;
  // After the window the value stays where the last step of the window left it.
  const int64_t clamped = std::min(step, end_ - 1);
  return factor_in_window(clamped - begin_);
}

namespace {

class MultiStep : public ParamScheduler {
 public:
  MultiStep(Args& args, std::string name) : ParamScheduler(args, std::move(name)) {
    milestones_ = args.require<std::vector<int64_t>>("milestones");
    gamma_ = args.get<double>("gamma", 0.1);
    RAZOR_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()), args.where("milestones"),
                ": must be increasing");
  }
  double factor_in_window(int64_t relative) const override {
    // Milestones count absolute steps, as in MMEngine.
    const int64_t step = relative + begin_;
    int64_t passed = 0;
    for (int64_t m : milestones_) passed += (m > begin_ || (m == begin_ && m > 0)) && m <= step;
    return std::pow(gamma_, static_cast<double>(passed));
  }
  void scale_steps(int64_t scale) override {
    for (auto& m : milestones_) m *= scale;
  }

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

class Step : public ParamScheduler {
 public:
  Step(Args& args, std::string name) : ParamScheduler(args, std::move(name)) {
    step_size_ = args.require<int64_t>("step_size");
    gamma_ = args.get<double>("gamma", 0.1);
    RAZOR_CHECK(step_size_ > 0, args.where("step_size"), ": must be > 0");
  }
  double factor_in_window(int64_t relative) const override {
    const int64_t step = relative + begin_;
    return std::pow(gamma_, static_cast<double>(step / step_size_ - begin_ / step_size_));
  }
  void scale_steps(int64_t scale) override { step_size_ *= scale; }

 private:
  int64_t step_size_;
  double gamma_;
};

class CosineAnnealing : public ParamScheduler {
 public:
  CosineAnnealing(Args& args, std::string name) : ParamScheduler(args, std::move(name)) {
    t_max_ = args.get<int64_t>("T_max", -1);
    eta_min_ = args.optional<double>("eta_min");
    eta_min_ratio_ = args.optional<double>("eta_min_ratio");
    RAZOR_CHECK(!(eta_min_ && eta_min_ratio_), args.where("eta_min_ratio"),
                ": give eta_min or eta_min_ratio, not both");
  }
  /// The absolute floor needs the base value: CosineAnnealing keeps it for apply().
  double factor_in_window(int64_t relative) const override {
    const double t = static_cast<double>(std::min(relative, t_max_));
    const double cosine = (1.0 + std::cos(M_PI * t / static_cast<double>(t_max_))) / 2.0;
    return floor_ratio_ + (1.0 - floor_ratio_) * cosine;
  }
  void scale_steps(int64_t scale) override {
    if (t_max_ > 0) t_max_ *= scale;
  }
  void on_resolved() override {
    if (t_max_ <= 0) t_max_ = end_ - begin_;
    RAZOR_CHECK(t_max_ > 0 && end_ != kUnbounded, "CosineAnnealing: T_max or end must be given");
  }
  /// eta_min is absolute, so the ratio depends on the base value of the group.
  void set_base(double base) {
    if (eta_min_ratio_) floor_ratio_ = *eta_min_ratio_;
    else floor_ratio_ = base > 0 && eta_min_ ? *eta_min_ / base : 0.0;
  }

 private:
  int64_t t_max_;
  std::optional<double> eta_min_, eta_min_ratio_;
  double floor_ratio_ = 0.0;
};

class Linear : public ParamScheduler {
 public:
  Linear(Args& args, std::string name) : ParamScheduler(args, std::move(name)) {
    start_factor_ = args.get<double>("start_factor", 1.0 / 3.0);
    end_factor_ = args.get<double>("end_factor", 1.0);
    RAZOR_CHECK(start_factor_ > 0 && start_factor_ <= 1, args.where("start_factor"),
                ": must be in (0, 1], got ", start_factor_);
  }
  double factor_in_window(int64_t relative) const override {
    // MMEngine reaches end_factor at the last step of the window (total = end - begin - 1).
    const int64_t total = std::max<int64_t>(1, end_ - begin_ - 1);
    const double t = static_cast<double>(std::min(relative, total));
    return start_factor_ + (end_factor_ - start_factor_) * t / static_cast<double>(total);
  }
  void on_resolved() override {
    RAZOR_CHECK(end_ != kUnbounded, "LinearLR: end must be given");
  }

 private:
  double start_factor_, end_factor_;
};

class Exponential : public ParamScheduler {
 public:
  Exponential(Args& args, std::string name) : ParamScheduler(args, std::move(name)) {
    gamma_ = args.require<double>("gamma");
  }
  double factor_in_window(int64_t relative) const override {
    return std::pow(gamma_, static_cast<double>(relative));
  }

 private:
  double gamma_;
};

class Constant : public ParamScheduler {
 public:
  Constant(Args& args, std::string name) : ParamScheduler(args, std::move(name)) {
    factor_ = args.get<double>("factor", 1.0 / 3.0);
  }
  double factor_in_window(int64_t relative) const override {
    // Holds `factor` for the window, then returns to 1 at its last step (MMEngine's ConstantLR).
    return relative < end_ - begin_ - 1 ? factor_ : 1.0;
  }

 private:
  double factor_;
};

class Poly : public ParamScheduler {
 public:
  Poly(Args& args, std::string name) : ParamScheduler(args, std::move(name)) {
    power_ = args.get<double>("power", 1.0);
    eta_min_ = args.get<double>("eta_min", 0.0);
  }
  double factor_in_window(int64_t relative) const override {
    const double total = static_cast<double>(end_ - begin_);
    const double t = static_cast<double>(relative);
    return floor_ratio_ + (1.0 - floor_ratio_) * std::pow(1.0 - t / total, power_);
  }
  void set_base(double base) { floor_ratio_ = base > 0 ? eta_min_ / base : 0.0; }

 private:
  double power_, eta_min_, floor_ratio_ = 0.0;
};

template <class T>
void add_family(Registry<ParamScheduler>& registry, const std::string& stem) {
  registry.add(stem + "LR", [](Args& args, const BuildContext&) {
    return std::make_shared<T>(args, "lr");
  });
  registry.add(stem + "Momentum", [](Args& args, const BuildContext&) {
    return std::make_shared<T>(args, "momentum");
  });
  registry.add(stem + "ParamScheduler", [](Args& args, const BuildContext&) {
    // An optimiser value or a model's named value: checked against both when the run's
    // schedulers are assembled (ParamSchedulerSet), where the model is known.
    const std::string name = args.require<std::string>("param_name");
    RAZOR_CHECK(!name.empty(), args.where("param_name"), ": must not be empty");
    return std::make_shared<T>(args, name);
  });
}

}  // namespace

Registry<ParamScheduler>& scheduler_registry() {
  static Registry<ParamScheduler> registry("schedulers");
  return registry;
}

void register_schedulers() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = scheduler_registry();
  add_family<MultiStep>(registry, "MultiStep");
  add_family<Step>(registry, "Step");
  add_family<CosineAnnealing>(registry, "CosineAnnealing");
  add_family<Linear>(registry, "Linear");
  add_family<Exponential>(registry, "Exponential");
  add_family<Constant>(registry, "Constant");
  add_family<Poly>(registry, "Poly");
}

namespace {

const ScheduledValue* find_value(const ScheduledValues& values, const std::string& name) {
  for (const auto& item : values) {
    if (item.first == name) return &item.second;
  }
  return nullptr;
}

}  // namespace

ParamSchedulerSet::ParamSchedulerSet(std::vector<std::shared_ptr<ParamScheduler>> schedulers,
                                     OptimWrapper& optim, ScheduledValues model_values)
    : schedulers_(std::move(schedulers)), optim_(&optim), model_values_(std::move(model_values)) {
  for (const auto& scheduler : schedulers_) {
    const std::string& name = scheduler->param_name();
    const bool known = std::any_of(bases_.begin(), bases_.end(),
                                   [&](const auto& item) { return item.first == name; });
    if (known) continue;
    if (const ScheduledValue* value = find_value(model_values_, name)) {
      bases_.emplace_back(name, std::vector<double>{value->get()});
      continue;
    }
    try {
      bases_.emplace_back(name, optim.get(name));
    } catch (const Error& e) {
      std::vector<std::string> names = {"lr", "momentum", "weight_decay"};
      for (const auto& item : model_values_) names.push_back(item.first);
      throw config_error("param_scheduler: no value \"", name, "\" to schedule",
                         did_you_mean(name, names), " (known: ", join(names, ", "), ")");
    }
  }
}

void ParamSchedulerSet::apply(int64_t epoch, int64_t iter) {
  for (const auto& base : bases_) {
    for (size_t group = 0; group < base.second.size(); ++group) {
      double value = base.second[group];
      double factor = 1.0;
      for (const auto& scheduler : schedulers_) {
        if (scheduler->param_name() != base.first) continue;
        // Schedulers with an absolute floor (eta_min) need this group's base value.
        if (auto* cosine = dynamic_cast<CosineAnnealing*>(scheduler.get())) cosine->set_base(value);
        if (auto* poly = dynamic_cast<Poly*>(scheduler.get())) poly->set_base(value);
        factor *= scheduler->factor(scheduler->by_epoch() ? epoch : iter);
      }
      if (const ScheduledValue* target = find_value(model_values_, base.first)) {
        target->set(value * factor);
      } else {
        optim_->set(base.first, group, value * factor);
      }
    }
  }
}

}  // namespace razor
