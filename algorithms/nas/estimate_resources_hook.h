#pragma once
// MMRazor's EstimateResourcesHook: after every `interval` validations (counted in epochs, or
// in iterations with by_epoch = false), logs the FLOPs, parameters (and latency, with a
// latency_cfg) of the model, and writes them to scalars.jsonl as "resources/flops" ... .
//
// For a NAS supernet it estimates a subnet, as MMRazor does: the derived one (argmax α for
// differentiable groups, top-k α for routes) with the one-shot groups set by `subnet`:
// "max" (default), "min" or "random" (a draw from the hook's own generator, seeded by the
// run seed and the count, so the training's subnet sequence is untouched; MMRazor draws a
// random subnet). The supernet's current choices are restored afterwards.
#include <cstdint>
#include <string>

#include "components/estimators/resource_estimator.h"
#include "engine/hook.h"

namespace razor {

class EstimateResourcesHook : public Hook {
 public:
  EstimateResourcesHook(int64_t interval, bool by_epoch, ResourceEstimatorOptions estimator,
                        std::string subnet);
  std::string name() const override { return "EstimateResourcesHook"; }
  void after_val_epoch(Runner& runner, const Metrics& metrics) override;

  /// The resources of the model (or of its subnet, as above). Public for tests.
  Resources estimate(Runner& runner, int64_t count);

 private:
  int64_t interval_;
  bool by_epoch_;
  ResourceEstimator estimator_;
  std::string subnet_;
};

/// Registers EstimateResourcesHook in hook_registry().
void register_estimate_resources_hook();

}  // namespace razor
