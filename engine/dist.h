#pragma once
// The one distributed API everything else uses (MMEngine's mmengine.dist): who this process
// is, and the few collectives razor needs, over LibTorch's c10d process groups (Gloo on the
// CPU, NCCL on CUDA when the LibTorch has it). A single process goes through the same calls
// with world size 1 and no process group, so no caller needs an `if (distributed)`.
//
// Launch: `mpirun -np N razor ...` (OpenMPI's OMPI_COMM_WORLD_* variables) or a torchrun-
// style environment (RANK, WORLD_SIZE, LOCAL_RANK). Rendezvous: a TCPStore at
// MASTER_ADDR:MASTER_PORT (rank 0 serves it) when MASTER_ADDR is set, else, for one host, a
// FileStore in the temporary directory named after the MPI job.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "engine/config.h"

#include <c10/util/intrusive_ptr.h>

namespace c10d {
class ProcessGroup;
}

namespace razor::dist {

/// Where this process stands among the processes of a run.
struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  /// "none", "mpi" or "env": where rank and world size came from.
  std::string launcher = "none";
};

/// Reads the launcher's environment. `launcher` is "auto" (OpenMPI's variables, else
/// RANK/WORLD_SIZE, else a single process), "none", "mpi" or "env"; an asked-for launcher
/// whose variables are missing is a usage error.
LaunchInfo detect_launch(const std::string& launcher = "auto");

struct InitOptions {
  /// As for detect_launch.
  std::string launcher = "auto";
  /// How long a collective or the rendezvous may wait for the other ranks.
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
  /// The run's device: NCCL for CUDA (when compiled in), Gloo otherwise.
  torch::Device device = torch::kCPU;
};

/// Joins the run's process group (once per process; later calls with world size 1 or an
/// existing group do nothing). Fails with a clear message when the rendezvous times out.
void init(const InitOptions& options);
/// Leaves the process group (before exit; also after a failure).
void shutdown();

bool is_initialized();
int rank();
int world_size();
int local_rank();
/// Rank 0: the process that writes logs, checkpoints and results.
bool is_main();
/// The backend in use ("gloo", "nccl"), or "none".
std::string backend();

enum class ReduceOp { Sum, Min, Max };

/// Waits until every rank arrives.
void barrier();
/// In-place all-reduce of each tensor (one collective for all of them).
void all_reduce(std::vector<torch::Tensor>& tensors, ReduceOp op = ReduceOp::Sum);
void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::Sum);
/// Copies `root`'s tensors to every rank, in place, in coalesced buffers.
void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
/// `root`'s value on every rank (search candidates, subnet choices, metrics).
Json broadcast_json(const Json& value, int root = 0);
/// Every rank's value, in rank order.
std::vector<Json> all_gather_json(const Json& value);

/// The one source of random choices that must agree across ranks (which subnet to train this
/// iteration, which candidates to mutate): a CPU generator seeded from the run's seed and a
/// stream (e.g. the iteration), so every rank draws the same values without communicating.
/// Never use a rank's global generator for such choices: `diff_rank_seed` makes it differ.
torch::Generator shared_generator(uint64_t seed, uint64_t stream);
/// A generator's state as a hex string (checkpoints hold it as JSON), and back; a state that
/// is not an even-length hex string is an error.
std::string generator_state_hex(const at::Generator& generator);
void set_generator_state_hex(at::Generator& generator, const std::string& state);

/// The c10d group for c10d's Reducer; null with world size 1.
c10::intrusive_ptr<c10d::ProcessGroup> process_group();

/// Describes a failed collective for the user: which ranks are gone (on this host, by
/// their process ids) and what c10d said. Used by the collectives themselves.
std::string describe_failure(const std::string& what, const std::string& cause);

}  // namespace razor::dist
