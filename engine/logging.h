#pragma once
// Human-readable logs through spdlog (console and work_dir/razor.log) and a progress line
// that rewrites itself on a terminal.
#include <string>

namespace razor {

/// Sets up the default spdlog logger: console, plus `log_file` when not empty.
void setup_logging(const std::string& log_file, const std::string& level = "info");

/// Whether stdout is an interactive terminal (progress line instead of plain lines).
bool stdout_is_terminal();

/// Rewrites the current terminal line with `text` (no newline).
void print_progress(const std::string& text);
/// Ends a progress line, if one is open.
void end_progress();

/// "1:02:03" or "2:03".
std::string format_duration(double seconds);

}  // namespace razor
