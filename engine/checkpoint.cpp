#include "engine/checkpoint.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/serialize/output-archive.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/strings.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

StateDict state_dict(const torch::nn::Module& module) {
  StateDict out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) out.emplace_back(item.key(), item.value());
  return out;
}

namespace {

std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

c10::Dict<std::string, at::Tensor> to_dict(const StateDict& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  // Saved on the CPU so that a checkpoint loads on any device.
  for (const auto& item : tensors) dict.insert(item.first, item.second.detach().to(torch::kCPU));
  return dict;
}

StateDict from_dict(const c10::IValue& value) {
  StateDict out;
  for (const auto& item : value.toGenericDict()) {
    out.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  return out;
}

}  // namespace

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& tensors, bool strict,
                           const std::string& source) {
  std::map<std::string, torch::Tensor> targets;
  for (auto& item : module.named_parameters()) targets[item.key()] = item.value();
  for (auto& item : module.named_buffers()) targets[item.key()] = item.value();

  LoadReport report;
  std::vector<std::string> mismatched;
  std::set<std::string> seen;
  for (const auto& item : tensors) {
    auto it = targets.find(item.first);
    if (it == targets.end()) {
      report.unexpected.push_back(item.first);
      continue;
    }
    seen.insert(item.first);
    if (!it->second.sizes().equals(item.second.sizes())) {
      mismatched.push_back(item.first + " (checkpoint " + shape_of(item.second) + ", model " +
                           shape_of(it->second) + ")");
    }
  }
  for (const auto& item : targets) {
    if (!seen.count(item.first)) report.missing.push_back(item.first);
  }
  if (!mismatched.empty()) {
    throw config_error(source, ": ", mismatched.size(),
                       " tensor(s) do not fit the model's shapes: ", join(mismatched, "; "));
  }
  if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
    throw config_error(source, ": the checkpoint does not fit the model: missing keys [",
                       join(report.missing, ", "), "], unexpected keys [",
                       join(report.unexpected, ", "), "]");
  }
  torch::NoGradGuard no_grad;
  for (const auto& item : tensors) {
    auto it = targets.find(item.first);
    if (it != targets.end()) it->second.copy_(item.second);
  }
  return report;
}

namespace {

// The temporary a file is written to before it is renamed over `path`; removed again on any
// failure, so that a full disk leaves neither a partial file nor a stale `.tmp`.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create");
  }
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  void write(const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("cannot write");
      data += n;
      size -= static_cast<size_t>(n);
    }
  }

  // fsync before the rename: otherwise a crash soon after can leave the new name on a file
  // whose data never reached the disk.
  void commit() {
    if (::fsync(fd_) != 0) fail("cannot flush");
    const int fd = fd_;
    fd_ = -1;  // closed even when close() reports an error
    if (::close(fd) != 0) fail("cannot close");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename to " + path_);
    committed_ = true;
    // Makes the rename itself durable; some file systems cannot sync a directory, and the
    // file is complete under its final name either way.
    const std::string dir = fs::path(path_).parent_path().string();
    const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    const int err = errno;
    throw runtime_error("cannot save ", path_, ": ", what, " ", tmp_, ": ", std::strerror(err));
  }

  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_bytes_atomically(const std::string& path, const char* data, size_t size) {
  TemporaryFile file(path);
  file.write(data, size);
  file.commit();
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& text) {
  write_bytes_atomically(path, text.data(), text.size());
}

void write_checkpoint(const std::string& path, const CheckpointContents& contents,
                      torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("razor_meta", c10::IValue(contents.meta.dump()));
  archive.write("state_dict", c10::IValue(to_dict(contents.model)));
  archive.write("rng", c10::IValue(to_dict(contents.rng)));
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  // Serialised in memory first: LibTorch's file writer reports a failed write (a full disk)
  // from its destructor, which terminates the process; our own writes check every call.
  std::string bytes;
  try {
    archive.save_to([&bytes](const void* data, size_t size) {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
  } catch (const c10::Error& e) {
    throw runtime_error("cannot serialise checkpoint ", path, ": ", e.what_without_backtrace());
  }
  write_bytes_atomically(path, bytes.data(), bytes.size());
}

CheckpointReader::CheckpointReader(const std::string& path, const std::string& checkpoint_key) : path_(path) {
  switch (inspect_checkpoint(path)) {
    case CheckpointFormat::TorchSave:
      from_pytorch_ = true;
      contents_.model = read_pytorch_state_dict(path, checkpoint_key);
      return;
    case CheckpointFormat::LegacyTorchSave:
      throw config_error("checkpoint ", path, " is in torch.save's legacy format (PyTorch < 1.6, or "
                         "_use_new_zipfile_serialization=False), which razor does not read; in Python, re-save it with "
                         "torch.save(torch.load(\"", path, "\"), \"new.pth\")");
    case CheckpointFormat::Unknown:
      throw runtime_error("checkpoint ", path, " is corrupt or not a checkpoint (neither razor's format nor torch.save's)");
    case CheckpointFormat::TorchScriptArchive:
      break;
  }
  c10::IValue meta;
  bool has_meta = false;
  try {
    archive_.load_from(path);
    has_meta = archive_.try_read("razor_meta", meta);
  } catch (const c10::Error& e) {
    throw runtime_error("checkpoint ", path, " is corrupt or truncated (", e.what_without_backtrace(), ")");
  }
  if (!has_meta) {
    throw config_error("checkpoint ", path, " is a TorchScript archive (torch.jit.save), not a state dict; in Python, "
                       "save its weights with torch.save(torch.jit.load(\"", path, "\").state_dict(), \"model.pth\")");
  }
  try {
    contents_.meta = Json::parse(meta.toStringRef());
    c10::IValue model, rng;
    archive_.read("state_dict", model);
    contents_.model = from_dict(model);
    if (archive_.try_read("rng", rng)) contents_.rng = from_dict(rng);
  } catch (const c10::Error& e) {
    throw runtime_error("checkpoint ", path, " is corrupt or truncated (", e.what_without_backtrace(),
                        ")");
  } catch (const Json::exception& e) {
    throw runtime_error("checkpoint ", path, " is corrupt: bad metadata (", e.what(), ")");
  }
  const int format = contents_.meta.value("format", 0);
  RAZOR_RUNTIME_CHECK(format >= 1 && format <= kCheckpointFormat, "checkpoint ", path,
                      " has format ", format, ", this razor reads formats 1..", kCheckpointFormat);
}

bool CheckpointReader::load_optimizer(torch::optim::Optimizer& optimizer) {
  if (from_pytorch_) return false;
  torch::serialize::InputArchive optimizer_archive;
  try {
    if (!archive_.try_read("optimizer", optimizer_archive)) return false;
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& e) {
    throw runtime_error("checkpoint ", path_, ": cannot restore the optimizer state (",
                        e.what_without_backtrace(), ")");
  }
  return true;
}

namespace {

std::string cuda_key(int64_t index) { return "cuda:" + std::to_string(index); }

}  // namespace

StateDict capture_rng_state() {
  StateDict out;
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    out.emplace_back("cpu", generator.get_state());
  }
  // Through the device-generic context, so that the CPU build compiles and finds no device.
  const int64_t devices = static_cast<int64_t>(torch::cuda::device_count());
  for (int64_t i = 0; i < devices; ++i) {
    auto generator = at::globalContext().defaultGenerator(at::Device(at::kCUDA, i));
    std::lock_guard<std::mutex> lock(generator.mutex());
    out.emplace_back(cuda_key(i), generator.get_state());
  }
  return out;
}

void restore_rng_state(const StateDict& states) {
  const int64_t devices = static_cast<int64_t>(torch::cuda::device_count());
  std::vector<std::string> ignored;
  for (const auto& item : states) {
    if (item.first == "cpu") {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(item.second);
      continue;
    }
    int64_t index = -1;
    for (int64_t i = 0; i < devices && index < 0; ++i) {
      if (item.first == cuda_key(i)) index = i;
    }
    if (index < 0) {
      ignored.push_back(item.first);
      continue;
    }
    auto generator = at::globalContext().defaultGenerator(at::Device(at::kCUDA, index));
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(item.second);
  }
  // A run resumed on a machine with fewer (or no) GPUs continues; its GPU draws just differ.
  if (!ignored.empty()) {
    spdlog::warn("The checkpoint holds RNG states of {} that this machine does not have ({} "
                 "CUDA device(s)); they are ignored", join(ignored, ", "), devices);
  }
}

}  // namespace razor
