#pragma once
// `razor export CONFIG CKPT --pruned --out DIR`: a pruning algorithm's model, cut for good to
// the channels it kept, as a plain smaller model: DIR/pruned.toml (MMRazor's sub_model: the
// architecture and the width of each channel unit, no mutator) and DIR/pruned.pth (the cut
// weights). `razor test`, `razor ptq` and `razor export --format onnx|pytorch` take them as
// any model. The export checks that the cut model computes what the pruned one did.
// `--divisor N` rounds each unit's width up to a multiple of N with zero-weight channels.
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

/// With `divisor` > 1 every unit's width is rounded up to a multiple of it, the extra
/// channels read by zero weights (the same logits, at widths fast kernels prefer).
PrunedExport export_pruned(std::shared_ptr<Config> config, const std::string& checkpoint, const std::string& out_dir,
                           int64_t divisor = 1);

}  // namespace razor
