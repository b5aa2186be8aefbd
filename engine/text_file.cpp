#include "engine/text_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/error.h"

namespace razor {

std::string read_text_file(const std::string& path, const std::string& what, size_t limit) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw config_error("cannot read ", what, " ", path, ": ", std::strerror(errno));
  std::string text;
  char buffer[1 << 16];
  while (true) {
    const size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    if (n == 0) break;
    if (text.size() + n > limit) {
      throw config_error(what, " ", path, " holds more than ", limit >> 20,
                         " MiB; razor reads text files up to that size (is it the file you meant?)");
    }
    text.append(buffer, n);
  }
  if (std::ferror(file.get())) throw config_error("cannot read ", what, " ", path, ": ", std::strerror(errno));
  return text;
}

}  // namespace razor
