#include "datasets/data_loader.h"

#include <algorithm>

#include "datasets/collate.h"
#include "datasets/random.h"

namespace razor::data {

namespace {

DistributedSampler::Options sampler_options(const ThreadedDataLoader::Options& options) {
  DistributedSampler::Options out;
  out.shuffle = options.shuffle;
  out.seed = options.seed;
  out.rank = options.rank;
  out.world_size = options.world_size;
  out.drop_last = false;  // pad by wrapping: every rank runs the same number of steps
  out.even = options.even_shards;
  return out;
}

std::shared_ptr<const Dataset> not_null(std::shared_ptr<const Dataset> dataset) {
  RAZOR_ASSERT(dataset != nullptr);
  return dataset;
}

}  // namespace

ThreadedDataLoader::ThreadedDataLoader(std::shared_ptr<const Dataset> dataset, Options options)
    : dataset_(not_null(std::move(dataset))),
      options_(options),
      sampler_(dataset_->size(), sampler_options(options_)) {
  RAZOR_CHECK(options_.batch_size > 0, "batch_size: expected > 0, got ", options_.batch_size);
  RAZOR_CHECK(options_.num_workers >= 0, "num_workers: expected >= 0, got ", options_.num_workers);
  RAZOR_CHECK(options_.prefetch >= 1, "prefetch: expected >= 1, got ", options_.prefetch);
  const int64_t samples = sampler_.size();
  num_batches_ = options_.drop_last ? samples / options_.batch_size
                                    : (samples + options_.batch_size - 1) / options_.batch_size;
  RAZOR_CHECK(num_batches_ > 0, "drop_last: ", samples,
              " samples per process make no full batch of ", options_.batch_size);
}

ThreadedDataLoader::~ThreadedDataLoader() { stop(); }

void ThreadedDataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  consumed_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  ready_.clear();
  stopping_ = false;
}

void ThreadedDataLoader::start(int64_t skip) {
  stop();
  RAZOR_CHECK(skip >= 0, "cannot skip ", skip, " batches");
  sampler_.set_epoch(epoch_);
  running_epoch_ = epoch_;
  order_ = sampler_.indices();
  next_batch_ = next_claim_ = std::min(skip, num_batches_);
  started_ = true;
  for (int w = 0; w < options_.num_workers && next_claim_ < num_batches_; ++w) {
    workers_.emplace_back([this] { worker_loop(); });
  }
}

Batch ThreadedDataLoader::make_batch(int64_t batch) const {
  const int64_t begin = batch * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, order_.size());
  std::vector<Sample> samples;
  std::vector<int64_t> indices(order_.begin() + begin, order_.begin() + end);
  samples.reserve(indices.size());
  for (int64_t index : indices) {
    // Seeded by the sample, not by the thread: the same augmentation whoever builds it.
    std::mt19937_64 rng(sample_seed(options_.seed, running_epoch_, index));
    samples.push_back(dataset_->load(index, rng));
  }
  return collate(samples, indices);
}

void ThreadedDataLoader::worker_loop() {
  const int64_t window = static_cast<int64_t>(options_.prefetch) * options_.num_workers;
  for (;;) {
    int64_t batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      consumed_.wait(lock, [&] {
        return stopping_ || next_claim_ >= num_batches_ || next_claim_ < next_batch_ + window;
      });
      if (stopping_ || next_claim_ >= num_batches_) return;
      batch = next_claim_++;
    }
    Slot slot;
    try {
      slot.batch = make_batch(batch);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[batch] = std::move(slot);
    }
    produced_.notify_all();
  }
}

std::optional<Batch> ThreadedDataLoader::next() {
  if (!started_) start(0);
  if (next_batch_ >= num_batches_) {
    if (!workers_.empty()) stop();  // the epoch is over: release its threads now
    return std::nullopt;
  }
  if (options_.num_workers == 0) return make_batch(next_batch_++);

  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    produced_.wait(lock, [&] { return ready_.count(next_batch_) > 0; });
    auto it = ready_.find(next_batch_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++next_batch_;
  }
  consumed_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  return std::move(slot.batch);
}

void register_data_loader() {
  dataloader_registry().add("DataLoader", [](Args& args, const BuildContext& context) {
    ThreadedDataLoader::Options options;
    options.batch_size = args.require<int64_t>("batch_size");
    if (options.batch_size <= 0) args.fail("batch_size", "expected > 0");
    options.num_workers = args.get<int>("num_workers", 1);
    if (options.num_workers < 0) args.fail("num_workers", "expected >= 0");
    options.prefetch = args.get<int>("prefetch", 2);
    if (options.prefetch < 1) args.fail("prefetch", "expected >= 1");
    options.shuffle = args.get<bool>("shuffle", true);
    options.drop_last = args.get<bool>("drop_last", false);
    options.seed = context.seed;
    options.rank = context.rank;
    options.world_size = context.world_size;
    options.even_shards = context.even_shards;
    Args dataset_args = args.sub("dataset");
    auto dataset = build_dataset(dataset_args, context);
    return std::make_shared<ThreadedDataLoader>(std::move(dataset), options);
  });
}

}  // namespace razor::data
