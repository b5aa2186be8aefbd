#pragma once
// The `razor` command line: train, test, config print, list, bench.
#include <string>
#include <vector>

namespace razor {

/// Runs the CLI on `args` (without the program name). Returns the exit code: 0 on success,
/// 2 for usage and config errors, 1 for runtime failures. Messages go to stderr.
int run_cli(const std::vector<std::string>& args);

}  // namespace razor
