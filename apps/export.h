#pragma once
// `razor export`: turns an algorithm's checkpoint into a plain checkpoint of the model it
// produced. For a distillation run that is the student: the "architecture.*" weights with
// the prefix taken off, under a config whose `model` is the student's, so that the
// student's own config (or the exported file's config) loads it with `razor test`.
#include <memory>
#include <string>

#include "engine/config.h"
#include "engine/runner.h"

namespace razor {

/// A runner on the CPU that writes nothing, its model built from `config`, loaded from
/// `checkpoint` (every weight required; a quantised model takes its float weights and its
/// quantisers' state from it, not from float_checkpoint) and in eval mode: what each export
/// starts from.
std::unique_ptr<Runner> runner_for_export(std::shared_ptr<Config> config, const std::string& checkpoint);

struct ExportReport {
  std::string out;
  size_t tensors = 0;
};

/// Reads `checkpoint` (trained with `config`), checks that the exported weights load
/// strictly into a model built from `config`'s model.architecture, and writes `out`
/// atomically.
ExportReport export_architecture(const Config& config, const std::string& checkpoint, const std::string& out);

/// What export_subnet wrote: the static model's config and weights.
struct SubnetExport {
  std::string config;
  std::string weights;
  int64_t supernet_params = 0;
  int64_t subnet_params = 0;
};

/// `razor export CONFIG CKPT --subnet FILE --out DIR`: the NAS supernet of `config` with the
/// weights of `checkpoint`, fixed to the subnet in `subnet_file`, written as a standalone
/// static model: DIR/subnet.toml (the architecture with each searchable block replaced by its
/// chosen op, no mutables) and DIR/subnet.pth (the chosen ops' weights, renamed to the static
/// model's names), which `razor test DIR/subnet.toml DIR/subnet.pth` loads. The weights are
/// checked to load strictly before anything is written.
SubnetExport export_subnet(const Config& config, const std::string& checkpoint,
                           const std::string& subnet_file, const std::string& out_dir);

}  // namespace razor
