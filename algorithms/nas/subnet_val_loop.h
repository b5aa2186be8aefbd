#pragma once
// MMRazor's SubnetValLoop: validation (or test) of a weight-sharing supernet, subnet by
// subnet: a NAS algorithm's, or a pruning algorithm's channel widths (a slimmable network's
// candidates). For each of `sample_kinds` ("max", "min", "random" — each "random" entry another
// random subnet) the loop sets the subnet, re-estimates BN statistics on
// `calibrate_sample_num` training images (every rank its shard, the sums reduced), evaluates
// and prefixes the metrics: "max_subnet.accuracy/top1", "random_subnet_1.accuracy/top1",
// with the subnet's FLOPs and params as "max_subnet.flops" and "max_subnet.params".
#include <memory>
#include <string>
#include <vector>

#include "components/estimators/resource_estimator.h"
#include "engine/loop.h"

namespace razor {

struct SubnetValOptions {
  std::vector<std::string> sample_kinds = {"max", "min"};
  int64_t calibrate_sample_num = 4096;
  /// Also estimate each subnet's resources.
  bool estimate_resources = true;
  ResourceEstimatorOptions estimator;
};

class SubnetValLoop : public EvalLoop {
 public:
  SubnetValLoop(Runner& runner, bool is_test, SubnetValOptions options);
  Metrics run() override;

 private:
  SubnetValOptions options_;
  std::unique_ptr<ResourceEstimator> estimator_;
};

/// Registers SubnetValLoop in the loop registry.
void register_subnet_val_loop();

}  // namespace razor
