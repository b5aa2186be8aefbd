#pragma once

namespace razor {

/// Registers the mutables (OneShotMutableOP, OneShotProbMutableOP, DiffMutableOP,
/// OneHotMutableOP, DiffChoiceRoute, GumbelChoiceRoute, MutableValue, OneShotMutableValue)
/// in the model registry. An op mutable's table has `candidates = {name = {type = ...}}` and
/// an optional `alias`; the backbone adds `module_kwargs` (in_channels, out_channels, stride)
/// that every candidate receives, as in MMRazor.
void register_mutables();

}  // namespace razor
