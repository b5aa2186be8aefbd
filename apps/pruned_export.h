#pragma once
// `razor export CONFIG CKPT --pruned --out DIR`: a pruning algorithm's model, cut for good to
// the channels it kept, as a plain smaller model: DIR/pruned.toml (MMRazor's sub_model: the
// architecture and the width of each channel unit, no mutator) and DIR/pruned.pth (the cut
// weights). `razor test`, `razor ptq` and `razor export --format onnx|pytorch` take them as
// any model. The export checks that the cut model computes what the pruned one did.
#include <cstdint>
#include <memory>
#include <string>

#include "engine/config.h"

namespace razor {

struct PrunedExport {
  std::string config;
  std::string weights;
  /// Raw counts on the pruning algorithm's demo input.
  double full_flops = 0, pruned_flops = 0;
  int64_t full_params = 0, pruned_params = 0;
  /// The largest relative difference of the logits, pruned against cut.
  double max_relative_error = 0;
};

PrunedExport export_pruned(std::shared_ptr<Config> config, const std::string& checkpoint, const std::string& out_dir);

}  // namespace razor
