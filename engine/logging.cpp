#include "engine/logging.h"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <vector>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "engine/error.h"

namespace razor {

namespace {
bool progress_open = false;
}

void setup_logging(const std::string& log_file, const std::string& level) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  if (!log_file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file));
    } catch (const spdlog::spdlog_ex& e) {
      throw runtime_error("cannot open the log file ", log_file, ": ", e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("razor", sinks.begin(), sinks.end());
  logger->set_pattern("%Y/%m/%d %H:%M:%S %^%l%$ %v");
  auto parsed = spdlog::level::from_str(level);
  RAZOR_CHECK(parsed != spdlog::level::off || level == "off", "log_level: unknown level \"", level,
              "\" (trace, debug, info, warn, error, off)");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

bool stdout_is_terminal() { return isatty(fileno(stdout)) != 0; }

void print_progress(const std::string& text) {
  std::fprintf(stdout, "\r\033[K%s", text.c_str());
  std::fflush(stdout);
  progress_open = true;
}

void end_progress() {
  if (!progress_open) return;
  std::fputc('\n', stdout);
  std::fflush(stdout);
  progress_open = false;
}

std::string format_duration(double seconds) {
  if (seconds < 0 || seconds != seconds) seconds = 0;
  const long total = static_cast<long>(seconds + 0.5);
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%ld:%02ld:%02ld", total / 3600, (total / 60) % 60, total % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%ld:%02ld", total / 60, total % 60);
  }
  return buffer;
}

}  // namespace razor
