#pragma once
// Fills the "datasets", "transforms" and "dataloaders" registries.

namespace razor {

/// Registers every dataset, transform and the "DataLoader" loader. Safe to call many times.
void register_datasets();

}  // namespace razor
