#pragma once
// Files written by Python's torch.save (the zip format of PyTorch >= 1.6): what kind of file
// a checkpoint is, the state dict inside one, and writing a state dict that torch.load reads.
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace razor {

using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

/// What a checkpoint file is, from its bytes.
enum class CheckpointFormat {
  TorchScriptArchive,  // a zip with code/ or constants.pkl: razor's own checkpoints, torch.jit.save
  TorchSave,           // a zip with data.pkl only: torch.save of PyTorch >= 1.6
  LegacyTorchSave,     // a bare pickle: torch.save of PyTorch < 1.6, or _use_new_zipfile_serialization=False
  Unknown,
};

/// The format of `path`. A zip whose entries claim more bytes than the file holds (a
/// truncated or forged file) is a runtime error naming `path`, found before anything is
/// allocated for it.
CheckpointFormat inspect_checkpoint(const std::string& path);

/// The state dict of a torch.save file: the top-level dict when it holds tensors (a plain
/// state_dict()), else its "state_dict" (MMEngine, mmcls, MMRazor) or "model" entry (timm,
/// torchvision's reference scripts, DeiT), or the entry named `checkpoint_key`. Tensors keep
/// the file's dtype, and views keep sharing their storage. A pickled module
/// (torch.save(model)) or a file without a dict of tensors is a config error saying so.
StateDict read_pytorch_state_dict(const std::string& path, const std::string& checkpoint_key = "");

/// Writes `tensors` (moved to the CPU, contiguous) as a file that Python's torch.load reads as
/// a dict, through a temporary file and a rename.
void write_pytorch_state_dict(const std::string& path, const StateDict& tensors);

}  // namespace razor
