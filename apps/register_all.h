#pragma once

namespace razor {
/// Fills every registry (engine, datasets, components, algorithms). Idempotent.
void register_all();
}  // namespace razor
