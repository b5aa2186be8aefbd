#pragma once
// `razor export CONFIG CKPT --format pytorch --out model.pth [--names torchvision|mmcls|razor]`:
// the plain float model a checkpoint holds, as a state dict that Python's torch.load reads and
// that load_state_dict(strict=True) accepts into the same architecture of torchvision or mmcls.
//   - A plain model: its weights. A distillation or NAS algorithm: its architecture (the student).
//   - A quantised model (MMArchitectureQuant): its float weights with each BatchNorm folded into
//     the conv before it (the weights the quantiser saw); the BN is left in the file as an
//     identity that adds the folded bias (weight 1, running_mean 0, running_var 1 - eps), so the
//     file has the architecture's own names and computes the deployed function in float.
#include <memory>
#include <string>

#include "apps/export.h"
#include "engine/config.h"

namespace razor {

ExportReport export_pytorch(std::shared_ptr<Config> config, const std::string& checkpoint, const std::string& out,
                            const std::string& names);

}  // namespace razor
