#pragma once
// Checkpoint files: a self-describing archive (format version, razor version, config
// text, run position, message hub, hook states as JSON), the model's state dict, the
// optimiser's state and the RNG states. Written to a temporary file and renamed, so a
// kill never leaves a broken checkpoint under the final name.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>

#include "engine/config.h"
#include "engine/pytorch_file.h"

namespace razor {

/// Parameters then buffers of `module`, by dotted name (PyTorch's state_dict order aside,
/// the same names).
StateDict state_dict(const torch::nn::Module& module);

/// What load_state_dict did not load.
struct LoadReport {
  std::vector<std::string> missing;     // in the model, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the model
};

/// Copies tensors into `module` by name. A shape mismatch is a config error listing every
/// mismatched key with both shapes; missing and unexpected keys are reported (and are an
/// error when `strict`).
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& tensors, bool strict,
                           const std::string& source);

/// Everything a checkpoint holds besides tensors of the optimiser.
struct CheckpointContents {
  Json meta = Json::object();  // format, version, config, epoch, iter, seed, hub, hooks
  StateDict model;
  /// Saved RNG states ("cpu", "cuda:0", ...).
  StateDict rng;
};

/// Writes `contents` (and the optimiser state, if given) to `path` atomically. A failed write
/// (a full disk) is a runtime error naming `path` and the system's reason; the temporary is
/// removed and a previous file at `path` is left as it was.
void write_checkpoint(const std::string& path, const CheckpointContents& contents,
                      torch::optim::Optimizer* optimizer);

/// Reads a checkpoint: razor's own, or a state dict that Python's torch.save wrote (then only
/// `contents().model` is filled; `checkpoint_key` names its entry, see
/// read_pytorch_state_dict). A truncated file is a runtime error saying it is corrupt; torch.save's
/// legacy format and TorchScript archives are config errors saying what they are.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path, const std::string& checkpoint_key = "");
  const CheckpointContents& contents() const { return contents_; }
  /// True for a file that Python's torch.save wrote (it holds weights only).
  bool from_pytorch() const { return from_pytorch_; }
  /// Restores the optimiser state; false if the checkpoint has none.
  bool load_optimizer(torch::optim::Optimizer& optimizer);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool from_pytorch_ = false;
  CheckpointContents contents_;
  torch::serialize::InputArchive archive_;
};

/// Current RNG states: "cpu", then "cuda:0", "cuda:1", ... for each CUDA device present.
StateDict capture_rng_state();
/// Restores the states of `capture_rng_state`; states of CUDA devices this machine does not
/// have are ignored, with one warning.
void restore_rng_state(const StateDict& states);

/// Writes `text` to `path` through a temporary file, fsync and a rename; errors as for
/// write_checkpoint.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace razor
