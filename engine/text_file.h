#pragma once
// Reading the text files a user hands razor (configs, subnet YAML, JSON lists, predictor
// files): bounded, so that a device or pipe that never ends (/dev/zero, /dev/urandom) is an
// error instead of a read that exhausts memory.
#include <cstddef>
#include <string>

namespace razor {

/// The most a text file may hold.
constexpr size_t kTextFileLimit = size_t{8} << 20;

/// The whole of `path`. `what` names the file in errors ("config file", "subnet file"): one
/// that cannot be opened, or that holds more than `limit` bytes, is a config error.
std::string read_text_file(const std::string& path, const std::string& what, size_t limit = kTextFileLimit);

}  // namespace razor
