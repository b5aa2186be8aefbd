#include "engine/dist.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#ifdef RAZOR_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor::dist {

namespace fs = std::filesystem;

namespace {

struct State {
  LaunchInfo info;
  bool initialized = false;
  std::string backend = "none";
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::string store_file;
  std::chrono::milliseconds timeout{0};
  /// Where collective buffers live: NCCL reduces only CUDA tensors.
  torch::Device device = torch::kCPU;
};

State& state() {
  static State s;
  return s;
}

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

int env_int(const char* name, const char* launcher) {
  const char* value = env(name);
  RAZOR_CHECK(value, "--launcher ", launcher, ": the environment variable ", name, " is not set");
  try {
    size_t used = 0;
    const int parsed = std::stoi(value, &used);
    RAZOR_CHECK(used == std::string(value).size(), "");
    return parsed;
  } catch (const std::exception&) {
    throw config_error("the environment variable ", name, " = \"", value, "\" is not an integer");
  }
}

/// Each rank publishes where it runs, so that a survivor can name the ranks that died.
void publish_identity(c10d::Store& store, int rank) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::string text = std::string(host) + " " + std::to_string(getpid());
  store.set("razor/identity/" + std::to_string(rank), std::vector<uint8_t>(text.begin(), text.end()));
}

bool process_alive(long pid) {
  if (kill(static_cast<pid_t>(pid), 0) != 0) return false;
  // A killed child that nobody reaped yet is a zombie: gone for our purposes.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return c10d::ReduceOp::SUM;
    case ReduceOp::Min: return c10d::ReduceOp::MIN;
    case ReduceOp::Max: return c10d::ReduceOp::MAX;
  }
  return c10d::ReduceOp::SUM;
}

/// Waits for a collective; a failure becomes a razor runtime error naming the lost ranks.
void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw runtime_error(describe_failure(what, e.what()));
  }
}

}  // namespace

LaunchInfo detect_launch(const std::string& launcher) {
  RAZOR_CHECK(launcher == "auto" || launcher == "none" || launcher == "mpi" || launcher == "env",
              "--launcher: expected auto, none, mpi or env, got \"", launcher, "\"");
  LaunchInfo info;
  const bool mpi = launcher == "mpi" || (launcher == "auto" && env("OMPI_COMM_WORLD_SIZE"));
  const bool from_env = launcher == "env" || (launcher == "auto" && !mpi && env("WORLD_SIZE"));
  if (mpi) {
    info.launcher = "mpi";
    info.rank = env_int("OMPI_COMM_WORLD_RANK", "mpi");
    info.world_size = env_int("OMPI_COMM_WORLD_SIZE", "mpi");
    info.local_rank = env("OMPI_COMM_WORLD_LOCAL_RANK") ? env_int("OMPI_COMM_WORLD_LOCAL_RANK", "mpi") : 0;
  } else if (from_env) {
    info.launcher = "env";
    info.rank = env_int("RANK", "env");
    info.world_size = env_int("WORLD_SIZE", "env");
    info.local_rank = env("LOCAL_RANK") ? env_int("LOCAL_RANK", "env") : 0;
  }
  RAZOR_CHECK(info.world_size >= 1, "the launcher's world size must be >= 1, got ", info.world_size);
  RAZOR_CHECK(info.rank >= 0 && info.rank < info.world_size, "the launcher's rank ", info.rank,
              " is not in [0, ", info.world_size, ")");
  return info;
}

void init(const InitOptions& options) {
  State& s = state();
  if (s.initialized) return;
  s.info = detect_launch(options.launcher);
  s.timeout = options.timeout;
  s.initialized = true;
  if (s.info.world_size == 1) return;

  const int rank = s.info.rank;
  const int world = s.info.world_size;
  const char* master_addr = env("MASTER_ADDR");
  try {
    if (master_addr) {
      c10d::TCPStoreOptions store_options;
      store_options.port = env("MASTER_PORT") ? static_cast<uint16_t>(env_int("MASTER_PORT", "env"))
                                              : c10d::TCPStoreOptions::kDefaultPort;
      store_options.isServer = rank == 0;
      store_options.numWorkers = world;
      store_options.timeout = options.timeout;
      s.store = c10::make_intrusive<c10d::TCPStore>(master_addr, store_options);
    } else {
      // One host: a file both ranks find by the launcher's job id, so no port is needed.
      const char* job = env("OMPI_MCA_ess_base_jobid");
      if (!job) job = env("PMIX_NAMESPACE");
      RAZOR_CHECK(job, "multi-process run without MASTER_ADDR: set MASTER_ADDR and MASTER_PORT (the "
                       "address of rank 0), or launch with mpirun on one host");
      s.store_file = (fs::temp_directory_path() / ("razor-store-" + std::string(job))).string();
      s.store = c10::make_intrusive<c10d::FileStore>(s.store_file, world);
      s.store->setTimeout(options.timeout);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw runtime_error("rank ", rank, " of ", world, ": cannot reach the rendezvous store",
                        master_addr ? std::string(" at ") + master_addr : std::string(), ": ", e.what());
  }
  publish_identity(*s.store, rank);

  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("razor/pg", s.store);
  try {
#ifdef RAZOR_WITH_NCCL
    if (options.device.is_cuda()) {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = options.timeout;
      s.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, nccl_options);
      s.backend = "nccl";
      s.device = options.device;
    }
#endif
    if (!s.group) {
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
      // One host: loopback; several: the address this host's name resolves to.
      gloo_options->devices.push_back(
          master_addr ? c10d::ProcessGroupGloo::createDefaultDevice()
                      : c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      gloo_options->threads = 2;
      s.group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, gloo_options);
      s.backend = "gloo";
    }
  } catch (const std::exception& e) {
    throw runtime_error("rank ", rank, " of ", world, ": cannot form the process group: ", e.what());
  }
  barrier();
  if (rank == 0) {
    spdlog::info("distributed: {} ranks ({} launcher), backend {}, store {}", world, s.info.launcher,
                 s.backend, master_addr ? std::string(master_addr) : s.store_file);
  }
}

void shutdown() {
  State& s = state();
  s.group.reset();
  s.store.reset();
  s.initialized = false;
  s.backend = "none";
  s.info = LaunchInfo{};
}

bool is_initialized() { return state().initialized; }
int rank() { return state().info.rank; }
int world_size() { return state().info.world_size; }
int local_rank() { return state().info.local_rank; }
bool is_main() { return state().info.rank == 0; }
std::string backend() { return state().backend; }

c10::intrusive_ptr<c10d::ProcessGroup> process_group() { return state().group; }

torch::Generator shared_generator(uint64_t seed, uint64_t stream) {
  // splitmix64 of (seed, stream): nearby streams give unrelated seeds.
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return at::detail::createCPUGenerator(z ^ (z >> 31));
}

std::string generator_state_hex(const at::Generator& generator) {
  static const char* digits = "0123456789abcdef";
  const torch::Tensor bytes = generator.get_state().contiguous();
  const auto* data = bytes.data_ptr<uint8_t>();
  std::string out;
  for (int64_t i = 0; i < bytes.numel(); ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}

void set_generator_state_hex(at::Generator& generator, const std::string& state) {
  RAZOR_CHECK(state.size() % 2 == 0 && !state.empty() &&
                  state.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos,
              "a generator state must be an even-length hex string");
  torch::Tensor bytes = torch::empty({static_cast<int64_t>(state.size() / 2)}, torch::kUInt8);
  auto* data = bytes.data_ptr<uint8_t>();
  for (size_t i = 0; i < state.size(); i += 2) data[i / 2] = static_cast<uint8_t>(std::stoi(state.substr(i, 2), nullptr, 16));
  generator.set_state(bytes);
}

std::string describe_failure(const std::string& what, const std::string& cause) {
  State& s = state();
  std::string message = "rank " + std::to_string(s.info.rank) + " of " + std::to_string(s.info.world_size) +
                        ": " + what + " failed";
  std::vector<std::string> lost;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  // A killed peer's sockets close while the kernel is still tearing the process down: look a
  // few times before concluding that nobody is gone.
  for (int attempt = 0; attempt < 20 && lost.empty() && s.store; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (int r = 0; r < s.info.world_size; ++r) {
      if (r == s.info.rank) continue;
      try {
        const std::string key = "razor/identity/" + std::to_string(r);
        if (!s.store->check({key})) continue;
        const auto bytes = s.store->get(key);
        const std::string text(bytes.begin(), bytes.end());
        const auto space = text.find(' ');
        if (text.substr(0, space) != host) continue;  // another host: cannot look
        if (!process_alive(std::stol(text.substr(space + 1)))) lost.push_back(std::to_string(r));
      } catch (const std::exception&) {
        // The store itself may be gone with rank 0.
        if (r == 0 && s.store_file.empty()) lost.push_back("0 (it served the store)");
      }
    }
  }
  if (!lost.empty()) {
    message += ": lost rank " + join(lost, ", rank ") + " (the process is gone)";
  } else {
    message += ": another rank stopped or timed out";
  }
  // c10d's own words, first line only.
  std::string first_line = cause.substr(0, cause.find('\n'));
  return message + " [" + first_line + "]";
}

void barrier() {
  State& s = state();
  if (!s.group) return;
  wait(s.group->barrier(), "barrier");
}

void all_reduce(std::vector<torch::Tensor>& tensors, ReduceOp op) {
  State& s = state();
  if (!s.group || tensors.empty()) return;
  // One flat buffer per dtype keeps it a single collective for the usual case.
  std::vector<torch::Tensor> views;
  for (auto& t : tensors) views.push_back(t.reshape({-1}).to(s.device, tensors.front().scalar_type()));
  std::vector<torch::Tensor> flat{torch::cat(views)};
  c10d::AllreduceOptions options;
  options.reduceOp = to_c10d(op);
  wait(s.group->allreduce(flat, options), "all_reduce");
  int64_t offset = 0;
  torch::NoGradGuard no_grad;
  for (auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(flat[0].narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
}

void all_reduce(torch::Tensor& tensor, ReduceOp op) {
  std::vector<torch::Tensor> one{tensor};
  all_reduce(one, op);
}

void broadcast(std::vector<torch::Tensor>& tensors, int root) {
  State& s = state();
  if (!s.group || tensors.empty()) return;
  try {
    torch::NoGradGuard no_grad;
    c10d::broadcast_coalesced(s.group, tensors, /*buffer_size=*/256 * 1024 * 1024, root);
  } catch (const std::exception& e) {
    throw runtime_error(describe_failure("broadcast", e.what()));
  }
}

namespace {

torch::Tensor to_bytes(const Json& value) {
  const std::string text = value.dump();
  auto tensor = torch::empty({static_cast<int64_t>(text.size())}, torch::kUInt8);
  std::memcpy(tensor.data_ptr(), text.data(), text.size());
  return tensor.to(state().device);
}

Json from_bytes(const torch::Tensor& on_device, int64_t size) {
  const torch::Tensor bytes = on_device.cpu();
  const auto* data = static_cast<const char*>(bytes.data_ptr());
  return Json::parse(std::string(data, data + size));
}

}  // namespace

Json broadcast_json(const Json& value, int root) {
  State& s = state();
  if (!s.group) return value;
  torch::Tensor bytes = s.info.rank == root ? to_bytes(value) : torch::Tensor();
  std::vector<torch::Tensor> size{torch::full({1}, bytes.defined() ? bytes.numel() : 0, torch::TensorOptions(torch::kLong).device(s.device))};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  wait(s.group->broadcast(size, options), "broadcast");
  const int64_t n = size[0].item<int64_t>();
  std::vector<torch::Tensor> payload{bytes.defined() ? bytes : torch::empty({n}, torch::TensorOptions(torch::kUInt8).device(s.device))};
  if (n > 0) wait(s.group->broadcast(payload, options), "broadcast");
  return from_bytes(payload[0], n);
}

std::vector<Json> all_gather_json(const Json& value) {
  State& s = state();
  if (!s.group) return {value};
  const int world = s.info.world_size;
  torch::Tensor bytes = to_bytes(value);
  const auto long_options = torch::TensorOptions(torch::kLong).device(s.device);
  std::vector<torch::Tensor> size{torch::full({1}, bytes.numel(), long_options)};
  std::vector<std::vector<torch::Tensor>> sizes(1);
  for (int r = 0; r < world; ++r) sizes[0].push_back(torch::empty({1}, long_options));
  wait(s.group->allgather(sizes, size), "all_gather");
  int64_t longest = 0;
  for (auto& t : sizes[0]) longest = std::max(longest, t.item<int64_t>());
  std::vector<torch::Tensor> padded{torch::zeros({std::max<int64_t>(longest, 1)}, torch::TensorOptions(torch::kUInt8).device(s.device))};
  padded[0].narrow(0, 0, bytes.numel()).copy_(bytes);
  std::vector<std::vector<torch::Tensor>> gathered(1);
  for (int r = 0; r < world; ++r) gathered[0].push_back(torch::empty_like(padded[0]));
  wait(s.group->allgather(gathered, padded), "all_gather");
  std::vector<Json> out;
  for (int r = 0; r < world; ++r) out.push_back(from_bytes(gathered[0][r], sizes[0][r].item<int64_t>()));
  return out;
}

}  // namespace razor::dist
