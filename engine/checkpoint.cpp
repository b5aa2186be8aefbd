#include "engine/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>
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

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    RAZOR_RUNTIME_CHECK(out.good(), "cannot write ", tmp);
    out << text;
    out.flush();
    RAZOR_RUNTIME_CHECK(out.good(), "failed writing ", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    throw runtime_error("cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
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
  const std::string tmp = path + ".tmp";
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw runtime_error("cannot write checkpoint ", tmp, ": ", e.what_without_backtrace());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw runtime_error("cannot rename ", tmp, " to ", path);
  }
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  RAZOR_CHECK(fs::exists(path), "checkpoint not found: ", path);
  try {
    archive_.load_from(path);
    c10::IValue meta, model, rng;
    archive_.read("razor_meta", meta);
    contents_.meta = Json::parse(meta.toStringRef());
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

StateDict capture_rng_state() {
  StateDict out;
  out.emplace_back("cpu", at::detail::getDefaultCPUGenerator().get_state());
  return out;
}

void restore_rng_state(const StateDict& states) {
  for (const auto& item : states) {
    if (item.first == "cpu") {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(item.second);
    }
  }
}

}  // namespace razor
