#include "datasets/data_loader.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>

#include "datasets/collate.h"
#include "datasets/random.h"
#include "datasets/register_datasets.h"
#include "datasets/synthetic.h"
#include "tests/datasets/temp_dir.h"

using namespace razor::data;
using razor::Args;
using razor::Batch;
using razor::BuildContext;
using razor::DataLoader;
using razor::Json;

namespace {

// A Synthetic dataset with a random augmentation pipeline, from a config table.
std::shared_ptr<Dataset> augmented_synthetic(int64_t samples) {
  razor::register_datasets();
  Json table = {{"type", "Synthetic"},
                {"num_samples", samples},
                {"num_classes", 4},
                {"shape", {3, 8, 8}},
                {"seed", 5},
                {"pipeline",
                 {{{"type", "RandomCrop"}, {"size", 8}, {"padding", 2}},
                  {{"type", "RandomFlip"}, {"prob", 0.5}},
                  {{"type", "Normalize"}, {"mean", {0.5}}, {"std", {0.25}}}}}};
  Args args = Args::of(table, "dataset");
  return build_dataset(args);
}

std::vector<Batch> drain(DataLoader& loader, int64_t skip = 0) {
  loader.start(skip);
  std::vector<Batch> out;
  while (auto batch = loader.next()) out.push_back(*batch);
  return out;
}

ThreadedDataLoader::Options loader_options(int workers) {
  ThreadedDataLoader::Options options;
  options.batch_size = 8;
  options.num_workers = workers;
  options.seed = 11;
  return options;
}

void check_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(torch::equal(a[i].inputs, b[i].inputs));
    CHECK(torch::equal(a[i].targets, b[i].targets));
    CHECK(torch::equal(a[i].indices, b[i].indices));
  }
}

// Fails on one sample, to check that errors reach the consumer at the right batch.
class FailingDataset : public Dataset {
 public:
  int64_t size() const override { return 40; }
  Sample get(int64_t index) const override {
    if (index == 21) throw razor::runtime_error("cannot read sample 21");
    return {cv::Mat(2, 2, CV_8UC1, cv::Scalar(static_cast<double>(index))), index % 3};
  }
};

}  // namespace

TEST_CASE("Batches are the dataset's samples collated", "[datasets]") {
  auto dataset = augmented_synthetic(30);
  ThreadedDataLoader loader(dataset, loader_options(2));
  loader.set_epoch(4);
  const auto batches = drain(loader);
  REQUIRE(batches.size() == 4);  // 30 samples, batches of 8, the last one of 6
  CHECK(batches.back().size() == 6);
  std::set<int64_t> seen;
  for (const auto& batch : batches) {
    CHECK(batch.inputs.dtype() == torch::kFloat32);
    CHECK(batch.inputs.is_contiguous());
    CHECK(batch.inputs.sizes().slice(1) == torch::IntArrayRef({3, 8, 8}));
    CHECK(batch.targets.dtype() == torch::kInt64);
    for (int64_t i = 0; i < batch.size(); ++i) {
      const int64_t index = batch.indices[i].item<int64_t>();
      seen.insert(index);
      std::mt19937_64 rng(sample_seed(11, 4, index));
      const Sample sample = dataset->load(index, rng);
      auto expected = razor::test::to_tensor(sample.image).permute({2, 0, 1});
      CHECK(torch::equal(batch.inputs[i], expected));
      CHECK(batch.targets[i].item<int64_t>() == sample.label);
    }
  }
  CHECK(seen.size() == 30);

  // uint8 images become [0, 1] floats.
  std::vector<Sample> samples = {{cv::Mat(2, 3, CV_8UC3, cv::Scalar(0, 51, 255)), 1}};
  const Batch batch = collate(samples, {0});
  CHECK(batch.inputs.sizes() == torch::IntArrayRef({1, 3, 2, 3}));
  CHECK(torch::allclose(batch.inputs[0].mean({1, 2}), torch::tensor({0.0f, 0.2f, 1.0f})));
}

TEST_CASE("The loader gives the same batches with 0, 1 or 2 workers", "[datasets]") {
  auto dataset = augmented_synthetic(50);
  ThreadedDataLoader inline_loader(dataset, loader_options(0));
  ThreadedDataLoader one(dataset, loader_options(1));
  auto options = loader_options(2);
  options.prefetch = 1;
  ThreadedDataLoader two(dataset, options);
  for (int64_t epoch : {0, 1}) {
    inline_loader.set_epoch(epoch);
    one.set_epoch(epoch);
    two.set_epoch(epoch);
    const auto reference = drain(inline_loader);
    check_same(reference, drain(one));
    check_same(reference, drain(two));
  }
  // A new epoch reshuffles and re-augments.
  inline_loader.set_epoch(0);
  const auto epoch0 = drain(inline_loader);
  inline_loader.set_epoch(1);
  const auto epoch1 = drain(inline_loader);
  CHECK_FALSE(torch::equal(epoch0[0].indices, epoch1[0].indices));
}

TEST_CASE("start(skip) resumes mid-epoch, drop_last drops the short batch", "[datasets]") {
  auto dataset = augmented_synthetic(30);
  ThreadedDataLoader loader(dataset, loader_options(2));
  loader.set_epoch(2);
  const auto all = drain(loader);
  const auto resumed = drain(loader, 3);
  REQUIRE(resumed.size() == 1);
  CHECK(torch::equal(resumed[0].inputs, all[3].inputs));
  CHECK(torch::equal(resumed[0].indices, all[3].indices));
  CHECK(drain(loader, 4).empty());
  CHECK(drain(loader, 100).empty());

  auto options = loader_options(2);
  options.drop_last = true;
  ThreadedDataLoader dropping(dataset, options);
  CHECK(dropping.size() == 3);
  dropping.set_epoch(2);
  const auto full = drain(dropping);
  REQUIRE(full.size() == 3);
  for (const auto& batch : full) CHECK(batch.size() == 8);
  check_same(full, std::vector<Batch>(all.begin(), all.begin() + 3));
  CHECK(loader.size() == 4);
  CHECK(loader.dataset_size() == 30);
  CHECK(loader.batch_size() == 8);
}

TEST_CASE("Ranks read disjoint shards of equal length", "[datasets]") {
  auto dataset = augmented_synthetic(30);
  std::set<int64_t> seen;
  for (int rank = 0; rank < 3; ++rank) {
    auto options = loader_options(1);
    options.rank = rank;
    options.world_size = 3;
    options.batch_size = 4;
    ThreadedDataLoader loader(dataset, options);
    CHECK(loader.size() == 3);  // 10 samples per rank
    for (const auto& batch : drain(loader)) {
      for (int64_t i = 0; i < batch.size(); ++i) {
        CHECK(seen.insert(batch.indices[i].item<int64_t>()).second);
      }
    }
  }
  CHECK(seen.size() == 30);
}

TEST_CASE("Abandoned epochs and destruction stop the workers, errors arrive in order",
          "[datasets]") {
  auto dataset = augmented_synthetic(200);
  {
    ThreadedDataLoader loader(dataset, loader_options(2));
    loader.start();
    REQUIRE(loader.next().has_value());
    loader.start(5);  // abandons the epoch in flight
    auto batch = loader.next();
    REQUIRE(batch.has_value());
    // destroyed with workers still running
  }
  {
    ThreadedDataLoader loader(dataset, loader_options(2));
    loader.start();  // never consumed
  }
  auto failing = std::make_shared<FailingDataset>();
  for (int workers : {0, 2}) {
    auto options = loader_options(workers);
    options.shuffle = false;
    ThreadedDataLoader loader(failing, options);
    loader.start();
    CHECK(loader.next().has_value());
    CHECK(loader.next().has_value());
    CHECK_THROWS_WITH(loader.next(), Catch::Contains("sample 21"));  // batch 2 holds 16..23
    auto after = loader.next();
    REQUIRE(after.has_value());
    CHECK(after->indices[0].item<int64_t>() == 24);
  }
  // next() without start() starts epoch 0.
  ThreadedDataLoader lazy(dataset, loader_options(1));
  int64_t count = 0;
  while (lazy.next()) ++count;
  CHECK(count == lazy.size());
  CHECK_FALSE(lazy.next().has_value());
}

TEST_CASE("DataLoader builds from a config table with the context's seed and rank", "[datasets]") {
  razor::register_datasets();
  Json table = {{"type", "DataLoader"},
                {"batch_size", 16},
                {"num_workers", 0},
                {"shuffle", false},
                {"dataset", {{"type", "Synthetic"}, {"num_samples", 100}, {"indices", 40}}}};
  Args args = Args::of(table, "train_dataloader");
  BuildContext context;
  context.seed = 3;
  context.rank = 1;
  context.world_size = 2;
  auto loader = razor::dataloader_registry().build(args, context);
  CHECK(loader->dataset_size() == 40);
  CHECK(loader->size() == 2);  // 20 samples on this rank
  loader->start();
  auto first = loader->next();
  REQUIRE(first.has_value());
  CHECK(first->indices[0].item<int64_t>() == 1);
  CHECK(first->indices[1].item<int64_t>() == 3);
  CHECK(first->inputs.sizes() == torch::IntArrayRef({16, 1, 28, 28}));

  Json bad = {{"type", "DataLoader"}, {"batch_size", 0}, {"dataset", {{"type", "Synthetic"}}}};
  Args bad_args = Args::of(bad, "train_dataloader");
  CHECK_THROWS_WITH(razor::dataloader_registry().build(bad_args),
                    Catch::Contains("train_dataloader.batch_size"));
  Json typo = {{"type", "DataLoader"},
               {"batch_size", 4},
               {"dataset", {{"type", "Synthetic"}, {"num_sample", 10}}}};
  Args typo_args = Args::of(typo, "train_dataloader");
  CHECK_THROWS_WITH(
      razor::dataloader_registry().build(typo_args),
      Catch::Contains("train_dataloader.dataset.num_sample") && Catch::Contains("num_samples"));
  Json unknown = {{"type", "DataLoader"},
                  {"batch_size", 4},
                  {"dataset", {{"type", "Synthetic"}, {"pipeline", {{{"type", "RandomFlp"}}}}}}};
  Args unknown_args = Args::of(unknown, "train_dataloader");
  CHECK_THROWS_WITH(razor::dataloader_registry().build(unknown_args),
                    Catch::Contains("RandomFlip"));
}

TEST_CASE("Synthetic data is deterministic and separable by class means", "[datasets]") {
  Synthetic::Options options;
  options.num_samples = 400;
  options.shape = {1, 12, 12};
  options.seed = 1;
  Synthetic dataset(options);
  Synthetic same(options);
  CHECK(torch::equal(razor::test::to_tensor(dataset.get(17).image),
                     razor::test::to_tensor(same.get(17).image)));
  CHECK_FALSE(torch::equal(razor::test::to_tensor(dataset.get(17).image),
                           razor::test::to_tensor(dataset.get(27).image)));
  CHECK(dataset.get(17).label == 7);

  // Class means from this set; nearest-mean accuracy on a set with another seed (different
  // samples, the same classes).
  options.seed = 2;
  Synthetic other(options);
  CHECK_FALSE(torch::equal(razor::test::to_tensor(dataset.get(17).image),
                           razor::test::to_tensor(other.get(17).image)));
  const int64_t k = dataset.num_classes();
  auto means = torch::zeros({k, 144});
  auto counts = torch::zeros({k});
  for (int64_t i = 0; i < 200; ++i) {
    const Sample s = dataset.get(i);
    means[s.label] += razor::test::to_tensor(s.image).flatten();
    counts[s.label] += 1;
  }
  means /= counts.unsqueeze(1);
  int64_t correct = 0;
  for (int64_t i = 200; i < 400; ++i) {
    const Sample s = other.get(i);
    auto d = (means - razor::test::to_tensor(s.image).flatten().unsqueeze(0)).pow(2).sum(1);
    correct += d.argmin().item<int64_t>() == s.label;
  }
  CHECK(correct >= 180);
}
