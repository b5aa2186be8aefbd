#pragma once
// One error type for the whole project, with a context chain and a kind that decides the
// CLI's exit code (2 for usage and config errors, 1 for runtime failures).
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace razor {

class Error : public std::runtime_error {
 public:
  enum class Kind { Config, Runtime };

  Error(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}

  Kind kind() const { return kind_; }

  /// The same error with "context: " in front, as it passes a boundary
  /// ("building model.backbone: unknown type ...").
  Error with_context(const std::string& context) const {
    return Error(kind_, context + ": " + what());
  }

 private:
  Kind kind_;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}
}  // namespace detail

/// A user or config error (exit code 2).
template <class... Parts>
Error config_error(Parts&&... parts) {
  return Error(Error::Kind::Config, detail::concat(std::forward<Parts>(parts)...));
}

/// A failure while running (exit code 1).
template <class... Parts>
Error runtime_error(Parts&&... parts) {
  return Error(Error::Kind::Runtime, detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace razor

/// For user and config errors: clear, actionable, names the key, file or value at fault.
#define RAZOR_CHECK(cond, ...) \
  do {                         \
    if (!(cond)) throw ::razor::config_error(__VA_ARGS__); \
  } while (0)

/// For failures at run time that are not a bug of ours (I/O, NaN loss, corrupt file).
#define RAZOR_RUNTIME_CHECK(cond, ...) \
  do {                                 \
    if (!(cond)) throw ::razor::runtime_error(__VA_ARGS__); \
  } while (0)

/// For bugs of ours: never expected to fire on any input.
#define RAZOR_ASSERT(cond)                                                                  \
  do {                                                                                      \
    if (!(cond))                                                                            \
      throw std::logic_error(::razor::detail::concat("internal error: ", #cond, " at ",   \
                                                     __FILE__, ":", __LINE__));             \
  } while (0)
