#include "engine/pytorch_file.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/pickle.h"
#include "engine/strings.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

uint64_t le(const std::string& bytes, size_t at, int n) {
  uint64_t x = 0;
  for (int i = n - 1; i >= 0; --i) x = (x << 8) | static_cast<uint8_t>(bytes[at + static_cast<size_t>(i)]);
  return x;
}

std::string read_range(std::ifstream& in, uint64_t offset, uint64_t size) {
  std::string out(size, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(out.data(), static_cast<std::streamsize>(size));
  if (static_cast<uint64_t>(in.gcount()) != size) out.clear();
  return out;
}

struct ZipEntry {
  std::string name;  // without the archive's top folder
  uint64_t compressed = 0, uncompressed = 0, offset = 0;
  uint16_t method = 0;
};

[[noreturn]] void corrupt(const std::string& path, const std::string& why) {
  throw runtime_error("checkpoint ", path, " is corrupt or truncated (", why, ")");
}

// The zip's central directory, every entry checked against the file's size: PyTorch's
// reader allocates what an entry claims before it reads it.
std::vector<ZipEntry> zip_entries(const std::string& path, uint64_t file_size) {
  std::ifstream in(path, std::ios::binary);
  const uint64_t tail_size = std::min<uint64_t>(file_size, 65557);
  const std::string tail = read_range(in, file_size - tail_size, tail_size);
  if (tail.size() < 22) corrupt(path, "no zip directory");
  size_t eocd = std::string::npos;
  for (size_t i = tail.size() - 22 + 1; i-- > 0;) {
    if (tail.compare(i, 4, "PK\x05\x06") == 0) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) corrupt(path, "no end of the zip directory: the file is cut short");
  uint64_t count = le(tail, eocd + 10, 2), cd_size = le(tail, eocd + 12, 4), cd_offset = le(tail, eocd + 16, 4);
  if ((count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) && eocd >= 20 &&
      tail.compare(eocd - 20, 4, "PK\x06\x07") == 0) {
    const uint64_t zip64_at = le(tail, eocd - 20 + 8, 8);
    const std::string record = read_range(in, zip64_at, 56);
    if (record.size() < 56 || record.compare(0, 4, "PK\x06\x06") != 0) corrupt(path, "a broken zip64 directory");
    count = le(record, 32, 8);
    cd_size = le(record, 40, 8);
    cd_offset = le(record, 48, 8);
  }
  if (cd_offset > file_size || cd_size > file_size - cd_offset) corrupt(path, "its zip directory lies past its end");
  const std::string cd = read_range(in, cd_offset, cd_size);
  std::vector<ZipEntry> entries;
  size_t at = 0;
  for (uint64_t e = 0; e < count; ++e) {
    if (at + 46 > cd.size() || cd.compare(at, 4, "PK\x01\x02") != 0) corrupt(path, "a broken zip directory entry");
    ZipEntry entry;
    entry.method = static_cast<uint16_t>(le(cd, at + 10, 2));
    entry.compressed = le(cd, at + 20, 4);
    entry.uncompressed = le(cd, at + 24, 4);
    const size_t name_len = le(cd, at + 28, 2), extra_len = le(cd, at + 30, 2), comment_len = le(cd, at + 32, 2);
    entry.offset = le(cd, at + 42, 4);
    if (at + 46 + name_len + extra_len + comment_len > cd.size()) corrupt(path, "a broken zip directory entry");
    const std::string full = cd.substr(at + 46, name_len);
    // zip64 sizes and offset, in this order, for the fields marked 0xFFFFFFFF.
    for (size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = le(cd, x, 2), len = le(cd, x + 2, 2);
      size_t field = x + 4;
      if (id == 1) {
        for (uint64_t* value : {&entry.uncompressed, &entry.compressed, &entry.offset}) {
          if (*value == 0xFFFFFFFF && field + 8 <= x + 4 + len) {
            *value = le(cd, field, 8);
            field += 8;
          }
        }
      }
      x += 4 + len;
    }
    const size_t slash = full.find('/');
    entry.name = slash == std::string::npos ? full : full.substr(slash + 1);
    const bool fits = entry.offset <= file_size && entry.compressed <= file_size - entry.offset &&
                      (entry.method == 0 ? entry.uncompressed == entry.compressed
                                         : entry.uncompressed <= entry.compressed * 1032 + 1024);
    if (!fits) {
      corrupt(path, "its entry " + full + " claims " + std::to_string(entry.uncompressed) +
                        " bytes; the file has " + std::to_string(file_size));
    }
    entries.push_back(std::move(entry));
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

}  // namespace

CheckpointFormat inspect_checkpoint(const std::string& path) {
  RAZOR_CHECK(fs::exists(path), "checkpoint not found: ", path);
  RAZOR_CHECK(fs::is_regular_file(path), "checkpoint ", path, " is not a regular file");
  const uint64_t size = fs::file_size(path);
  std::ifstream in(path, std::ios::binary);
  const std::string head = read_range(in, 0, std::min<uint64_t>(size, 4));
  RAZOR_RUNTIME_CHECK(size > 0, "checkpoint ", path, " is empty");
  if (head.size() == 4 && head.compare(0, 4, "PK\x03\x04") == 0) {
    bool pickle = false, script = false;
    for (const auto& entry : zip_entries(path, size)) {
      if (entry.name == "data.pkl") pickle = true;
      if (entry.name == "constants.pkl" || entry.name.rfind("code/", 0) == 0) script = true;
    }
    if (script) return CheckpointFormat::TorchScriptArchive;
    return pickle ? CheckpointFormat::TorchSave : CheckpointFormat::Unknown;
  }
  if (static_cast<uint8_t>(head[0]) == 0x80) return CheckpointFormat::LegacyTorchSave;
  return CheckpointFormat::Unknown;
}

namespace {

pickle::ValuePtr read_pickle(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    auto [data, size] = reader.getRecord("data.pkl");
    const std::string bytes(static_cast<const char*>(data.get()), size);
    auto load_storage = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
      const std::string record = "data/" + key;
      if (!reader.hasRecord(record)) corrupt(path, "the storage " + record + " is missing");
      auto [storage, bytes_held] = reader.getRecord(record);
      const uint64_t needed = static_cast<uint64_t>(numel) * at::elementSize(dtype);
      if (bytes_held < needed) {
        corrupt(path, "the storage " + record + " holds " + std::to_string(bytes_held) + " bytes, its tensor needs " +
                          std::to_string(needed));
      }
      at::Tensor out = at::empty({numel}, at::TensorOptions().dtype(dtype));
      if (needed) std::memcpy(out.data_ptr(), storage.get(), needed);
      return out;
    };
    return pickle::load(bytes, load_storage, path);
  } catch (const c10::Error& e) {
    corrupt(path, e.what_without_backtrace());
  }
}

[[noreturn]] void pickled_object(const std::string& path, const std::string& where, const std::string& cls) {
  throw config_error(path, where, " is a pickled Python object of class ", cls,
                     ", which only Python can rebuild (torch.save(model) saves the whole module); save "
                     "model.state_dict() instead");
}

std::vector<std::string> string_keys(const pickle::Value& dict) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    out.push_back(dict.items[i]->is(pickle::Value::Kind::String) ? dict.items[i]->text : dict.items[i]->type_name());
  }
  return out;
}

bool holds_tensors(const pickle::Value& dict) {
  for (size_t i = 1; i < dict.items.size(); i += 2) {
    if (dict.items[i]->is(pickle::Value::Kind::Tensor)) return true;
  }
  return false;
}

}  // namespace

StateDict read_pytorch_state_dict(const std::string& path, const std::string& checkpoint_key) {
  using Kind = pickle::Value::Kind;
  const pickle::ValuePtr root = read_pickle(path);
  if (root->is(Kind::Object)) pickled_object(path, "", root->text);
  RAZOR_CHECK(root->is(Kind::Dict), path, " holds a ", root->type_name(), ", not a dict of tensors (a state dict)");
  pickle::ValuePtr chosen;
  std::string where;
  if (!checkpoint_key.empty()) {
    chosen = root->find(checkpoint_key);
    RAZOR_CHECK(chosen, path, ": checkpoint_key = \"", checkpoint_key, "\" is not in the file; its top-level keys are [",
                join(string_keys(*root), ", "), "]", did_you_mean(checkpoint_key, string_keys(*root)));
    where = "'s \"" + checkpoint_key + "\"";
  } else if (holds_tensors(*root)) {
    chosen = root;
  } else {
    for (const char* key : {"state_dict", "model"}) {
      if (auto found = root->find(key)) {
        chosen = found;
        where = std::string("'s \"") + key + "\"";
        break;
      }
    }
    RAZOR_CHECK(chosen, path, " holds no state dict: neither tensors at its top level nor a \"state_dict\" or \"model\" "
                "entry (its keys are [", join(string_keys(*root), ", "), "]); name the entry with checkpoint_key");
  }
  if (chosen->is(Kind::Object)) pickled_object(path, where, chosen->text);
  RAZOR_CHECK(chosen->is(Kind::Dict), path, where, " is a ", chosen->type_name(), ", not a dict of tensors");
  StateDict out;
  std::set<std::string> seen;
  for (size_t i = 0; i + 1 < chosen->items.size(); i += 2) {
    const pickle::Value& key = *chosen->items[i];
    const pickle::Value& value = *chosen->items[i + 1];
    RAZOR_CHECK(key.is(Kind::String), path, where, " has a key that is a ", key.type_name(), ", not a tensor name");
    if (value.is(Kind::Tensor)) {
      if (seen.insert(key.text).second) out.emplace_back(key.text, value.tensor);
      continue;
    }
    // A module's extra state (_extra_state) or a tensor razor cannot rebuild (quantized, sparse).
    RAZOR_CHECK(!value.is(Kind::Object) || value.text.rfind("torch.", 0) != 0, path, where, ": \"", key.text,
                "\" is built by ", value.text, ", which razor does not read (quantized or sparse tensors)");
  }
  RAZOR_CHECK(!out.empty(), path, where, " holds no tensors");
  return out;
}

void write_pytorch_state_dict(const std::string& path, const StateDict& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : tensors) dict.insert(name, tensor.detach().to(at::kCPU).contiguous().clone());
  std::vector<char> bytes;
  try {
    bytes = torch::pickle_save(c10::IValue(dict));
  } catch (const c10::Error& e) {
    throw runtime_error("cannot serialise ", path, ": ", e.what_without_backtrace());
  }
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace razor
