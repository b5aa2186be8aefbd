#pragma once
// Subnet files (MMRazor 1.x's fix_subnet YAML): {mutable name or alias: {chosen: value}}.
// Loading fixes every mutable of a supernet to its choice, which drops the candidates not
// chosen; exporting writes the current choices.
#include <string>

#include <torch/nn/module.h>

#include "engine/config.h"

namespace razor {

/// {name: {"chosen": choice}} of every free mutable under `model` (one entry per alias).
Json export_fix_subnet(torch::nn::Module& model);

/// Fixes every free mutable under `model` to its choice in `subnet`. A mutable the subnet
/// does not name, a name the model lacks, or a value that is not among the mutable's
/// choices is a config error naming `origin` (the file), the mutable and the valid choices.
void load_fix_subnet(torch::nn::Module& model, const Json& subnet,
                     const std::string& origin = "subnet");

/// Puts every fixed op mutable (MutableOP) that a Sequential holds in the chain in place of
/// its chosen op, so that the model is static: no mutables, and the op's weights read
/// "<block>.<name>" instead of "<block>._candidates.<op>.<name>". Op mutables held
/// elsewhere (a DARTS cell's edges) stay, fixed. Returns how many were replaced.
size_t inline_fixed_ops(torch::nn::Module& model);

/// Reads a subnet YAML file; a missing or unparsable file is a config error naming it.
Json read_subnet_file(const std::string& path);
/// The YAML text of a subnet.
std::string subnet_to_yaml(const Json& subnet);
/// Writes a subnet YAML file atomically.
void write_subnet_file(const std::string& path, const Json& subnet);
/// A YAML node's value as JSON: plain scalars become numbers or booleans where they read as
/// one; quoted scalars stay strings.
Json yaml_text_to_json(const std::string& text, const std::string& origin);

}  // namespace razor
