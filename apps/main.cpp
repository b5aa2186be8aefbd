#include <malloc.h>

#include "apps/cli.h"

namespace {

/// glibc returns freed memory at the top of the heap to the kernel once it exceeds the trim
/// threshold, and serves blocks above the mmap threshold with fresh mappings; a forward pass
/// frees and reallocates the same multi-megabyte activations every batch, so by default each
/// one is page-faulted in again (a fifth of a PTQ run's time went to the kernel). Keep freed
/// memory for reuse instead: blocks up to 32 MiB (glibc's ceiling) come from the heap, and the
/// heap is trimmed only past 1 GiB of free space at its top.
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  return razor::run_cli(std::vector<std::string>(argv + 1, argv + argc));
}
