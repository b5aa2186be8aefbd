// SubnetPrefixCache: BN re-estimation and evaluation stage by stage, with the outputs of the
// stages a subnet shares with the previous one reused, gives predict's scores after
// calibrate_bn_statistics, and leaves the same BatchNorm state, to the bit.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>

#include "algorithms/nas/nas_algorithm.h"
#include "algorithms/nas/subnet_prefix_cache.h"
#include "apps/register_all.h"
#include "components/nn/bn_calibration.h"
#include "engine/checkpoint.h"
#include "engine/config.h"

using namespace razor;

namespace {

std::shared_ptr<NasAlgorithm> build_supernet(const std::string& file) {
  register_all();
  auto config = std::make_shared<Config>(load_config(std::string(RAZOR_SOURCE_DIR) + "/" + file));
  BuildContext context;
  context.seed = 3;
  torch::manual_seed(3);  // the weights' init draws from the global generator
  Args args(config->tree["model"], "model", config);
  auto nas = std::dynamic_pointer_cast<NasAlgorithm>(model_registry().build(args, context));
  REQUIRE(nas);
  // Affine parameters away from their init, so that every BN's output depends on them.
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(11);
  for (auto& p : nas->parameters()) p.add_(at::randn(p.sizes(), generator) * 0.05);
  return nas;
}

std::vector<torch::Tensor> images(int64_t batches, int64_t size, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < batches; ++i) out.push_back(at::randn({size, 1, 28, 28}, generator));
  return out;
}

/// What an evaluation without the cache does: re-estimate, then predict in eval mode.
std::vector<torch::Tensor> plain_predict(Model& model, const std::vector<torch::Tensor>& calibration,
                                         const std::vector<torch::Tensor>& eval) {
  std::vector<Batch> batches;
  int64_t samples = 0;
  for (const auto& x : calibration) {
    Batch b;
    b.inputs = x;
    b.targets = torch::zeros({x.size(0)}, torch::kLong);
    batches.push_back(b);
    samples += x.size(0);
  }
  calibrate_bn_statistics(model, batches, samples);
  model.eval();
  std::vector<torch::Tensor> out;
  torch::NoGradGuard no_grad;
  for (const auto& x : eval) {
    Batch b;
    b.inputs = x;
    out.push_back(model.predict(b));
  }
  model.train(true);
  return out;
}

/// The largest absolute difference between two lists of tensors (infinity when they do not
/// pair up).
double max_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].sizes() != b[i].sizes()) return INFINITY;
    d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  }
  return d;
}

/// Sets `choices` on both supernets, then the largest difference between the cache's scores
/// on `cached` and the plain re-estimation's on `plain`.
double difference_with(SubnetPrefixCache& cache, NasAlgorithm& cached, NasAlgorithm& plain,
                       const std::vector<PredictStage>& stages, const Json& choices,
                       const std::vector<torch::Tensor>& calibration, const std::vector<torch::Tensor>& eval) {
  cached.mutator().set_choices(choices);
  plain.mutator().set_choices(choices);
  return max_difference(cache.predict(cached, stages, calibration, eval), plain_predict(plain, calibration, eval));
}

/// The entries of two state dicts that differ in name or value.
size_t differing_tensors(const torch::nn::Module& a, const torch::nn::Module& b) {
  const StateDict x = state_dict(a), y = state_dict(b);
  if (x.size() != y.size()) return std::max(x.size(), y.size());
  size_t differing = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].first != y[i].first || !torch::equal(x[i].second, y[i].second)) ++differing;
  }
  return differing;
}

/// `choices` with the group whose member comes last in the model set to another choice.
Json change_last_group(const NasMutator& mutator, Json choices) {
  const SearchGroup* last = &mutator.search_groups().front();
  for (const auto& g : mutator.search_groups()) {
    if (g.names.front() > last->names.front()) last = &g;
  }
  for (const auto& choice : last->front().choices()) {
    if (choice != choices[last->key]) {
      choices[last->key] = choice;
      break;
    }
  }
  return choices;
}

}  // namespace

TEST_CASE("SubnetPrefixCache gives the plain re-estimation's scores and BN state to the bit",
          "[nas][search]") {
  for (const std::string file : {"configs/_base_/nas_backbones/spos_shufflenet_fmnist.toml",
                                 "configs/_base_/nas_backbones/spos_mobilenet_fmnist.toml"}) {
    INFO(file);
    auto cached = build_supernet(file);
    auto plain = build_supernet(file);
    const std::vector<PredictStage> stages = SubnetPrefixCache::stages_of(*cached);
    REQUIRE(stages.size() > 3);
    REQUIRE(differing_tensors(*cached, *plain) == 0);
    const auto calibration = images(3, 6, 1);
    const auto eval = images(2, 5, 2);

    NasMutator& mutator = cached->mutator();
    auto generator = at::detail::createCPUGenerator(5);
    const Json first = mutator.sample_choices("random", generator);
    const Json other = mutator.sample_choices("random", generator);
    // A fresh subnet, one that differs only in its last choice, a repeat, unrelated ones.
    const std::vector<Json> sequence = {first, change_last_group(mutator, first), first, other,
                                        other, other, mutator.sample_choices("max"),
                                        mutator.sample_choices("min")};
    SubnetPrefixCache cache(int64_t{1} << 30);
    std::vector<int64_t> reused;
    for (size_t k = 0; k < sequence.size(); ++k) {
      if (k == 5) {
        // Statistics changed behind the cache's back are set again for the stages it serves.
        torch::NoGradGuard no_grad;
        for (nn::BatchNorm2d* norm : batch_norms(*stages.front().modules.front())) norm->running_mean.fill_(7);
      }
      const int64_t before = cache.reused_stages();
      CHECK(difference_with(cache, *cached, *plain, stages, sequence[k], calibration, eval) == 0);
      reused.push_back(cache.reused_stages() - before);
      CHECK(cached->is_training());
    }
    const auto n = static_cast<int64_t>(stages.size());
    CHECK(reused[0] == 0);
    CHECK(reused[1] >= 1);
    CHECK(reused[1] < n - 1);
    // A repeat reuses every stage but the last (whose outputs are the scores).
    CHECK(reused[2] >= reused[1]);
    CHECK(reused[4] == n - 1);
    CHECK(reused[5] == n - 1);
    CHECK(cache.computed_stages() + cache.reused_stages() == n * static_cast<int64_t>(sequence.size()));

    // Every buffer as the plain runs left it, num_batches_tracked included.
    CHECK(differing_tensors(*cached, *plain) == 0);

    // Changed weights are not served from the cache.
    {
      torch::NoGradGuard no_grad;
      stages.front().modules.front()->parameters().front().mul_(1.5);
    }
    load_state_dict(*plain, state_dict(*cached), /*strict=*/true, "test");
    const int64_t before = cache.reused_stages();
    CHECK(difference_with(cache, *cached, *plain, stages, sequence.back(), calibration, eval) == 0);
    CHECK(cache.reused_stages() == before);
  }
}

TEST_CASE("SubnetPrefixCache keeps nothing past its budget, and applies only where it is exact",
          "[nas][search]") {
  auto cached = build_supernet("configs/_base_/nas_backbones/spos_shufflenet_fmnist.toml");
  auto plain = build_supernet("configs/_base_/nas_backbones/spos_shufflenet_fmnist.toml");
  const std::vector<PredictStage> stages = SubnetPrefixCache::stages_of(*cached);
  const auto calibration = images(2, 4, 3);
  const auto eval = images(1, 4, 4);
  SubnetPrefixCache none(0);
  const Json max = cached->mutator().sample_choices("max"), min = cached->mutator().sample_choices("min");
  for (int i = 0; i < 2; ++i) {
    CHECK(difference_with(none, *cached, *plain, stages, max, calibration, eval) == 0);
  }
  CHECK(none.reused_stages() == 0);

  // A budget of exactly the first stage's outputs for the 12 images keeps that stage alone.
  int64_t per_image = 0;
  {
    torch::NoGradGuard no_grad;
    cached->eval();
    const torch::Tensor out = stages.front().run(eval.front());
    cached->train(true);
    per_image = out.numel() * static_cast<int64_t>(out.element_size()) / out.size(0);
  }
  SubnetPrefixCache first_only(per_image * 12);
  for (int i = 0; i < 2; ++i) {
    CHECK(difference_with(first_only, *cached, *plain, stages, min, calibration, eval) == 0);
  }
  CHECK(first_only.reused_stages() == 1);
  // Other images (even equal ones), or the same ones changed in place: nothing is reused.
  first_only.predict(*cached, stages, calibration, images(1, 4, 4));
  CHECK(first_only.reused_stages() == 1);
  auto changed = images(1, 4, 4);
  first_only.predict(*cached, stages, calibration, changed);
  changed.front().mul_(2);
  CHECK(difference_with(first_only, *cached, *plain, stages, min, calibration, changed) == 0);
  CHECK(first_only.reused_stages() == 1);

  // A hook anywhere (a recorder, a quantiser) would be skipped by the chain: no stages.
  auto handle = cached->architecture().modules().back()->as<nn::Module>();
  REQUIRE(handle);
  auto hook = handle->add_forward_hook([](nn::Module&, const nn::Inputs&, torch::Tensor&) {});
  CHECK(SubnetPrefixCache::stages_of(*cached).empty());
  hook.remove();
  CHECK(!SubnetPrefixCache::stages_of(*cached).empty());

  // DSNAS's one-hot ops sample in training mode, DARTS's cells are no chain.
  auto dsnas = build_supernet("configs/nas/dsnas_shufflenet_supernet_fmnist.toml");
  CHECK(SubnetPrefixCache::stages_of(*dsnas).empty());
  auto darts = build_supernet("configs/nas/darts_supernet_fmnist.toml");
  CHECK(SubnetPrefixCache::stages_of(*darts).empty());
}
