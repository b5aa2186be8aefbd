#pragma once
// Shared by the tests that run the razor executable: reading a log, running a shell command
// with its output to a file, and the mpirun prefix for N ranks.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

namespace razor::test {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Runs a shell command, its output to `log`; returns its exit code (128 + signal if killed).
inline int run(const std::string& command, const std::string& log) {
  const int status = std::system((command + " > " + log + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// "mpirun --oversubscribe -np N [--allow-run-as-root] ".
inline std::string mpirun(int ranks) {
  std::string command = "mpirun --oversubscribe -np " + std::to_string(ranks);
  if (geteuid() == 0) command += " --allow-run-as-root";
  return command + " ";
}

/// The value of `key` in the last line of `text` that has it ("key: value"); -1 if none.
inline double metric(const std::string& text, const std::string& key) {
  const std::regex re(std::regex_replace(key, std::regex(R"([./])"), R"(\$&)") + R"(: ([0-9.]+))");
  double value = -1;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    value = std::stod((*it)[1]);
  }
  return value;
}

/// The razor executable with `args`.
inline std::string razor_command(const std::string& args) {
  return std::string(RAZOR_BINARY) + " " + args;
}

}  // namespace razor::test
