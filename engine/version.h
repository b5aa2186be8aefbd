#pragma once

namespace razor {
/// razor's version, written into every checkpoint and printed by `razor --version`.
inline constexpr const char* kVersion = "0.1.0";
/// The checkpoint format version; bumped when the layout changes.
inline constexpr int kCheckpointFormat = 1;
}  // namespace razor
