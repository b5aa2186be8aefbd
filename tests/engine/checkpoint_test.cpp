#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "engine/checkpoint.h"
#include "engine/error.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

struct Net : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
  explicit Net(int64_t out = 2) {
    fc = register_module("fc", torch::nn::Linear(3, out));
    bn = register_module("bn", torch::nn::BatchNorm1d(out));
  }
};

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("razor_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// What `work` did in a child process whose files may grow to `max_file_bytes` only (a disk
// that fills up: writes past the limit fail with EFBIG).
struct ChildOutcome {
  bool exited = false;  // false: killed by a signal (std::terminate aborts)
  int code = -1;        // 0: a razor runtime error, 1: no error, 2: another exception
  std::string message;  // the error's message
};

ChildOutcome run_with_file_size_limit(rlim_t max_file_bytes, const std::function<void()>& work) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{max_file_bytes, max_file_bytes};
    int code = ::setrlimit(RLIMIT_FSIZE, &limit) == 0 ? 1 : 3;
    std::string message;
    if (code == 1) {
      try {
        work();
      } catch (const Error& e) {
        code = e.kind() == Error::Kind::Runtime ? 0 : 2;
        message = e.what();
      } catch (const std::exception& e) {
        code = 2;
        message = e.what();
      }
    }
    ssize_t written = ::write(fds[1], message.data(), message.size());
    (void)written;
    ::close(fds[1]);
    ::_exit(code);  // no destructors, no Catch2 report from the child
  }
  ::close(fds[1]);
  ChildOutcome outcome;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof(buffer))) > 0;)
    outcome.message.append(buffer, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  outcome.exited = WIFEXITED(status);
  outcome.code = outcome.exited ? WEXITSTATUS(status) : -WTERMSIG(status);
  return outcome;
}

// Log lines written through spdlog's default logger while an instance lives.
class CapturedLog {
 public:
  CapturedLog() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~CapturedLog() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("Checkpoint round-trip restores weights, buffers, optimizer state and meta", "[checkpoint]") {
  torch::manual_seed(1);
  auto dir = temp_dir("ckpt_roundtrip");
  auto net = std::make_shared<Net>();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  net->train();
  auto loss = net->bn(net->fc(torch::randn({4, 3}))).pow(2).sum();
  loss.backward();
  sgd.step();

  CheckpointContents contents;
  contents.meta = {{"format", 1}, {"epoch", 3}, {"config", "seed = 1\n"}};
  contents.model = state_dict(*net);
  contents.rng = capture_rng_state();
  const auto path = (dir / "epoch_3.pth").string();
  write_checkpoint(path, contents, &sgd);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  auto other = std::make_shared<Net>();
  torch::optim::SGD other_sgd(other->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  CheckpointReader reader(path);
  CHECK(reader.contents().meta["epoch"] == 3);
  CHECK(reader.contents().meta["config"] == "seed = 1\n");
  load_state_dict(*other, reader.contents().model, true, path);
  for (const auto& item : state_dict(*net)) {
    bool found = false;
    for (const auto& o : state_dict(*other)) {
      if (o.first == item.first) {
        CHECK(torch::equal(o.second, item.second));
        found = true;
      }
    }
    CHECK(found);
  }
  REQUIRE(reader.load_optimizer(other_sgd));
  // The momentum buffers came back: one more identical step gives identical weights.
  auto input = torch::randn({4, 3});
  for (auto* pair : {&sgd, &other_sgd}) pair->zero_grad();
  net->bn(net->fc(input)).pow(2).sum().backward();
  other->bn(other->fc(input)).pow(2).sum().backward();
  sgd.step();
  other_sgd.step();
  CHECK(torch::equal(net->fc->weight, other->fc->weight));
}

TEST_CASE("A truncated checkpoint is reported as corrupt, not loaded", "[checkpoint]") {
  auto dir = temp_dir("ckpt_truncated");
  auto net = std::make_shared<Net>();
  CheckpointContents contents;
  contents.meta = {{"format", 1}};
  contents.model = state_dict(*net);
  const auto path = (dir / "full.pth").string();
  write_checkpoint(path, contents, nullptr);
  const auto size = fs::file_size(path);
  fs::resize_file(path, size / 2);
  try {
    CheckpointReader reader(path);
    FAIL("a truncated checkpoint was loaded");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Runtime);
    CHECK_THAT(e.what(), Catch::Contains("corrupt") && Catch::Contains(path));
  }
  std::ofstream(dir / "garbage.pth") << "not a checkpoint";
  CHECK_THROWS_WITH(CheckpointReader((dir / "garbage.pth").string()), Catch::Contains("corrupt"));
}

TEST_CASE("Loading weights of the wrong shape lists the mismatched keys", "[checkpoint]") {
  auto small = std::make_shared<Net>(2);
  auto large = std::make_shared<Net>(5);
  try {
    load_state_dict(*large, state_dict(*small), false, "ckpt.pth");
    FAIL("shapes were not checked");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains("fc.weight (checkpoint [2, 3], model [5, 3])") &&
                             Catch::Contains("bn.running_mean"));
  }
  auto report = load_state_dict(*small, {{"fc.weight", torch::zeros({2, 3})}, {"extra", torch::zeros(1)}},
                                false, "ckpt.pth");
  CHECK(report.unexpected == std::vector<std::string>{"extra"});
  CHECK(std::find(report.missing.begin(), report.missing.end(), "fc.bias") != report.missing.end());
  CHECK(torch::equal(small->fc->weight, torch::zeros({2, 3})));
}

TEST_CASE("RNG state round-trips", "[checkpoint]") {
  torch::manual_seed(5);
  auto state = capture_rng_state();
  auto a = torch::rand({4});
  restore_rng_state(state);
  auto b = torch::rand({4});
  CHECK(torch::equal(a, b));
}

TEST_CASE("A full disk while saving is a runtime error that keeps the previous checkpoint",
          "[checkpoint]") {
  torch::manual_seed(3);
  auto dir = temp_dir("ckpt_full_disk");
  const auto path = (dir / "latest.pth").string();
  CheckpointContents previous;
  previous.meta = {{"format", 1}, {"epoch", 1}};
  previous.model = {{"w", torch::randn({8})}};
  write_checkpoint(path, previous, nullptr);
  const auto previous_size = fs::file_size(path);

  // Far larger than the limit below, so that the write fails part-way through.
  CheckpointContents next;
  next.meta = {{"format", 1}, {"epoch", 2}};
  next.model = {{"w", torch::randn({64 * 1024})}};
  const rlim_t limit = 16 * 1024;
  REQUIRE(previous_size < limit);

  ChildOutcome outcome =
      run_with_file_size_limit(limit, [&] { write_checkpoint(path, next, nullptr); });
  INFO(outcome.message);
  REQUIRE(outcome.exited);  // not aborted by std::terminate
  CHECK(outcome.code == 0);
  CHECK_THAT(outcome.message, Catch::Contains(path) && Catch::Contains(std::strerror(EFBIG)));
  CHECK_FALSE(fs::exists(path + ".tmp"));

  // The previous checkpoint is untouched and loads.
  CHECK(fs::file_size(path) == previous_size);
  CheckpointReader reader(path);
  CHECK(reader.contents().meta["epoch"] == 1);
  REQUIRE(reader.contents().model.size() == 1);
  CHECK(torch::equal(reader.contents().model[0].second, previous.model[0].second));

  // Without the limit the same save succeeds (the child failed for the limit alone).
  write_checkpoint(path, next, nullptr);
  CHECK(CheckpointReader(path).contents().meta["epoch"] == 2);
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("write_file_atomically reports a full disk and keeps the previous file", "[checkpoint]") {
  auto dir = temp_dir("atomic_full_disk");
  const auto path = (dir / "last_checkpoint").string();
  write_file_atomically(path, "epoch_1.pth");
  const std::string big(64 * 1024, 'x');
  ChildOutcome outcome = run_with_file_size_limit(4096, [&] { write_file_atomically(path, big); });
  INFO(outcome.message);
  REQUIRE(outcome.exited);
  CHECK(outcome.code == 0);
  CHECK_THAT(outcome.message, Catch::Contains(path) && Catch::Contains(std::strerror(EFBIG)));
  CHECK_FALSE(fs::exists(path + ".tmp"));
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "epoch_1.pth");

  // A directory that does not exist is a runtime error naming the file, not a crash.
  const auto nowhere = (dir / "absent" / "file.txt").string();
  try {
    write_file_atomically(nowhere, "x");
    FAIL("writing into a missing directory succeeded");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Runtime);
    CHECK_THAT(e.what(), Catch::Contains(nowhere) && Catch::Contains(std::strerror(ENOENT)));
  }
}

TEST_CASE("RNG states hold one entry per CUDA device, missing devices are ignored with one warning",
          "[checkpoint]") {
  const int64_t devices = static_cast<int64_t>(torch::cuda::device_count());
  torch::manual_seed(11);
  StateDict state = capture_rng_state();
  REQUIRE(state.size() == static_cast<size_t>(1 + devices));
  CHECK(state[0].first == "cpu");
  for (int64_t i = 0; i < devices; ++i) CHECK(state[1 + i].first == "cuda:" + std::to_string(i));
  if (devices > 0) {
    auto a = torch::rand({4}, torch::Device(torch::kCUDA, 0));
    restore_rng_state(state);
    auto b = torch::rand({4}, torch::Device(torch::kCUDA, 0));
    CHECK(torch::equal(a.cpu(), b.cpu()));
  }

  // A checkpoint saved on a machine with more GPUs than this one.
  const auto cpu_values = torch::rand({4});
  StateDict saved = state;
  saved.emplace_back("cuda:" + std::to_string(devices), state[0].second.clone());
  saved.emplace_back("cuda:" + std::to_string(devices + 1), state[0].second.clone());
  CapturedLog log;
  restore_rng_state(saved);
  CHECK(torch::equal(torch::rand({4}), cpu_values));  // the CPU state was still restored
  const std::string text = log.text();
  CHECK(count_of(text, "RNG states") == 1);
  CHECK_THAT(text, Catch::Contains("cuda:" + std::to_string(devices) + ", cuda:" +
                                   std::to_string(devices + 1)));
}
