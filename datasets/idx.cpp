#include "datasets/idx.h"

#include <cstring>

#include "datasets/binary_file.h"
#include "engine/error.h"

namespace razor::data {

IdxArray parse_idx(std::vector<uint8_t> bytes, const std::string& name) {
  RAZOR_RUNTIME_CHECK(bytes.size() >= 4 && bytes[0] == 0 && bytes[1] == 0, name,
                      ": not an IDX file (bad magic number)");
  RAZOR_RUNTIME_CHECK(bytes[2] == 0x08, name, ": IDX element type 0x", std::hex,
                      static_cast<int>(bytes[2]), " is not supported (only unsigned bytes, 0x08)");
  const size_t ndim = bytes[3];
  const size_t header = 4 + 4 * ndim;
  RAZOR_RUNTIME_CHECK(ndim >= 1 && bytes.size() >= header, name, ": truncated IDX header");
  IdxArray array;
  size_t count = 1;
  for (size_t d = 0; d < ndim; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    const uint32_t dim =
        (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    array.shape.push_back(dim);
    count *= dim;
  }
  RAZOR_RUNTIME_CHECK(bytes.size() - header == count, name, ": IDX header announces ", count,
                      " elements but the file holds ", bytes.size() - header);
  // Shift the payload to the front rather than copying into a second buffer.
  std::memmove(bytes.data(), bytes.data() + header, count);
  bytes.resize(count);
  array.data = std::move(bytes);
  return array;
}

IdxArray read_idx(const std::string& path, const std::string& hint) {
  return parse_idx(read_binary_file(path, hint), path);
}

std::vector<uint8_t> encode_idx(const std::vector<int64_t>& shape,
                                const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out = {0, 0, 0x08, static_cast<uint8_t>(shape.size())};
  for (int64_t dim : shape) {
    const auto d = static_cast<uint32_t>(dim);
    out.insert(out.end(), {uint8_t(d >> 24), uint8_t(d >> 16), uint8_t(d >> 8), uint8_t(d)});
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

}  // namespace razor::data
