#pragma once
// `razor export CONFIG CKPT --pruned | --subnet FILE --out DIR`: the model an algorithm
// found, written for good as a plain, smaller model. DIR/<name>.toml is MMRazor's sub_model
// (algorithms/sub_model.h): the architecture and its fix_subnet, so that one builder makes
// both kinds. A pruning algorithm's model ("pruned") is every channel unit cut to its width
// (mode "mutator"); a NAS supernet fixed to a subnet ("subnet") is every op mutable fixed to
// its choice, its chosen op in the block's place (mode "mutable"). DIR/<name>.pth holds the
// static model's weights. `razor test`, `razor ptq` and `razor export --format onnx|pytorch`
// take them as any model. Nothing is written unless the static model loads its weights
// strictly and computes what the algorithm's model computed.
#include <cstdint>
#include <memory>
#include <string>

#include "engine/config.h"

namespace razor {

struct StaticExportOptions {
  /// A NAS supernet's subnet YAML (--subnet); empty: a pruning algorithm's model (--pruned).
  std::string subnet;
  /// Pruned: every unit's width rounded up to a multiple of this, the extra channels read
  /// by zero weights (the same logits, at widths fast kernels prefer).
  int64_t divisor = 1;
};

struct StaticExport {
  std::string config;
  std::string weights;
  /// Raw counts on the input shape the algorithm counts on. "full": the unpruned model
  /// (pruned), the supernet's parameters (subnet; its FLOPs are not counted: 0).
  double full_flops = 0, static_flops = 0;
  int64_t full_params = 0, static_params = 0;
  /// The largest relative difference of the logits, algorithm's model against static.
  double max_relative_error = 0;
};

StaticExport export_static(std::shared_ptr<Config> config, const std::string& checkpoint,
                           const std::string& out_dir, const StaticExportOptions& options);

}  // namespace razor
