#pragma once
// `razor bench`: the workloads of BENCHMARKS.md, one JSON line each.
#include <string>
#include <vector>

namespace razor {

struct BenchOptions {
  std::vector<std::string> workloads;  // empty = every workload that exists
  int repeats = 3;
  std::string device = "cpu";
  std::string config_dir = "configs/bench";
  bool full = false;  // also the accuracy figures (full passes over the data)
  int threads = 0;    // intra-op threads per process (0 = the workload's own setting)
  /// When set, the timed part of each workload's first repeat is recorded by LibTorch's
  /// profiler into PROFILE/<workload>.trace.json (Chrome trace format; rank 0 only).
  std::string profile;
};

int run_bench(const BenchOptions& options);

}  // namespace razor
