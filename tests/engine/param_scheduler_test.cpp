#include <catch2/catch.hpp>

#include <cmath>

#include <torch/torch.h>

#include "engine/optim_wrapper.h"
#include "engine/param_scheduler.h"

using namespace razor;

namespace {

struct Fixture {
  torch::nn::Linear linear{2, 2};
  std::shared_ptr<OptimWrapper> optim;

  explicit Fixture(double lr = 0.1, double momentum = 0.9) {
    register_optimizers();
    register_schedulers();
    Json table = {{"optimizer", {{"type", "SGD"}, {"lr", lr}, {"momentum", momentum}}}};
    Args args = Args::of(table, "optim_wrapper");
    optim = build_optim_wrapper(args, *linear);
  }

  ParamSchedulerSet schedulers(const Json& list, int64_t per_epoch, int64_t max_epochs) {
    std::vector<std::shared_ptr<ParamScheduler>> out;
    for (const auto& table : list) {
      Args args = Args::of(table, "param_scheduler");
      auto s = scheduler_registry().build(args);
      s->resolve(per_epoch, max_epochs, per_epoch * max_epochs);
      out.push_back(s);
    }
    return ParamSchedulerSet(out, *optim);
  }

  double lr() const { return optim->get("lr").front(); }
};

}  // namespace

TEST_CASE("MultiStepLR follows gamma^k at the milestones", "[schedulers]") {
  Fixture f;
  auto set = f.schedulers(Json::array({{{"type", "MultiStepLR"}, {"milestones", {2, 4}}, {"gamma", 0.5}}}), 10, 6);
  const double expected[] = {0.1, 0.1, 0.05, 0.05, 0.025, 0.025};
  for (int epoch = 0; epoch < 6; ++epoch) {
    set.apply(epoch, epoch * 10);
    CHECK(f.lr() == Approx(expected[epoch]).epsilon(1e-12));
  }
}

TEST_CASE("StepLR decays every step_size epochs", "[schedulers]") {
  Fixture f;
  auto set = f.schedulers(Json::array({{{"type", "StepLR"}, {"step_size", 3}, {"gamma", 0.1}}}), 5, 10);
  set.apply(2, 0);
  CHECK(f.lr() == Approx(0.1));
  set.apply(3, 0);
  CHECK(f.lr() == Approx(0.01));
  set.apply(7, 0);
  CHECK(f.lr() == Approx(0.001));
}

TEST_CASE("CosineAnnealingLR per iteration equals the closed form", "[schedulers]") {
  Fixture f;
  const int64_t per_epoch = 7, epochs = 3, total = per_epoch * epochs;
  auto set = f.schedulers(Json::array({{{"type", "CosineAnnealingLR"},
                                        {"by_epoch", true},
                                        {"convert_to_iter_based", true},
                                        {"eta_min", 0.001}}}),
                          per_epoch, epochs);
  for (int64_t it : {0L, 1L, 5L, 10L, 20L}) {
    set.apply(it / per_epoch, it);
    const double expected = 0.001 + (0.1 - 0.001) * (1 + std::cos(M_PI * it / total)) / 2;
    CHECK(f.lr() == Approx(expected).epsilon(1e-12));
  }
  // After the window the value stays at the last step's.
  set.apply(epochs, total + 5);
  CHECK(f.lr() == Approx(0.001 + (0.1 - 0.001) * (1 + std::cos(M_PI * (total - 1) / total)) / 2));
}

TEST_CASE("LinearLR warm-up chained with cosine decay", "[schedulers]") {
  Fixture f;
  auto set = f.schedulers(
      Json::array({{{"type", "LinearLR"}, {"start_factor", 0.1}, {"by_epoch", false}, {"begin", 0}, {"end", 5}},
                   {{"type", "CosineAnnealingLR"}, {"by_epoch", false}, {"begin", 5}, {"end", 25}}}),
      100, 1);
  // Warm-up: 0.1 -> 1.0 of the base over iterations 0..4 (end - begin - 1 = 4 steps).
  for (int64_t it = 0; it < 5; ++it) {
    set.apply(0, it);
    CHECK(f.lr() == Approx(0.1 * (0.1 + 0.9 * it / 4.0)).epsilon(1e-12));
  }
  for (int64_t it : {5L, 10L, 24L}) {
    set.apply(0, it);
    CHECK(f.lr() == Approx(0.1 * (1 + std::cos(M_PI * (it - 5) / 20.0)) / 2).epsilon(1e-12));
  }
}

TEST_CASE("Momentum schedules and param_name schedulers", "[schedulers]") {
  Fixture f(0.1, 0.9);
  auto set = f.schedulers(Json::array({{{"type", "StepMomentum"}, {"step_size", 1}, {"gamma", 0.5}},
                                       {{"type", "ExponentialParamScheduler"}, {"param_name", "lr"}, {"gamma", 0.9}}}),
                          10, 5);
  set.apply(2, 20);
  CHECK(f.optim->get("momentum").front() == Approx(0.9 * 0.25));
  CHECK(f.lr() == Approx(0.1 * 0.81));
}

TEST_CASE("Scheduler config errors name the key", "[schedulers]") {
  register_schedulers();
  Json bad = {{"type", "MultiStepLR"}, {"milestones", {4, 2}}};
  Args args = Args::of(bad, "param_scheduler[0]");
  CHECK_THROWS_WITH(scheduler_registry().build(args), Catch::Contains("param_scheduler[0].milestones"));
  Json typo = {{"type", "CosineAnealingLR"}};
  Args typo_args = Args::of(typo, "param_scheduler[0]");
  CHECK_THROWS_WITH(scheduler_registry().build(typo_args), Catch::Contains("did you mean \"CosineAnnealingLR\""));
}

TEST_CASE("A scheduler drives a named value of the model, not only the optimiser's", "[schedulers]") {
  Fixture f;
  double weight = 2.0;
  ScheduledValues values = {{"distiller.distill_losses.loss_kd.loss_weight",
                             ScheduledValue{[&] { return weight; }, [&](double w) { weight = w; }}}};
  std::vector<std::shared_ptr<ParamScheduler>> list;
  Json table = {{"type", "MultiStepParamScheduler"},
                {"param_name", "distiller.distill_losses.loss_kd.loss_weight"},
                {"milestones", {2, 4}},
                {"gamma", 0.5}};
  Args args = Args::of(table, "param_scheduler");
  list.push_back(scheduler_registry().build(args));
  list.back()->resolve(10, 6, 60);
  ParamSchedulerSet set(list, *f.optim, values);
  const double expected[] = {2.0, 2.0, 1.0, 1.0, 0.5, 0.5};
  for (int epoch = 0; epoch < 6; ++epoch) {
    set.apply(epoch, epoch * 10);
    CHECK(weight == Approx(expected[epoch]).epsilon(1e-12));
    CHECK(f.lr() == Approx(0.1));  // the optimiser is left alone
  }
}

TEST_CASE("A scheduler naming an unknown value is a config error listing the known ones", "[schedulers]") {
  Fixture f;
  double weight = 1.0;
  ScheduledValues values = {{"distiller.distill_losses.loss_kd.loss_weight",
                             ScheduledValue{[&] { return weight; }, [&](double w) { weight = w; }}}};
  Json table = {{"type", "ConstantParamScheduler"}, {"param_name", "distiller.distill_losses.loss_kd.loss_wieght"}};
  Args args = Args::of(table, "param_scheduler");
  std::vector<std::shared_ptr<ParamScheduler>> list = {scheduler_registry().build(args)};
  list.back()->resolve(10, 6, 60);
  CHECK_THROWS_WITH(ParamSchedulerSet(list, *f.optim, values),
                    Catch::Contains("did you mean \"distiller.distill_losses.loss_kd.loss_weight\""));
}
