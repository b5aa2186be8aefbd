#include "datasets/register_datasets.h"

#include <catch2/catch.hpp>

#include "datasets/dataset.h"
#include "datasets/transforms.h"
#include "engine/data.h"

using namespace razor::data;

TEST_CASE("register_datasets fills the registries once", "[datasets]") {
  razor::register_datasets();
  razor::register_datasets();  // idempotent: a second call adds nothing and does not throw
  // Other folders may register more; these are datasets/' own.
  for (const char* name :
       {"CIFAR10", "CIFAR100", "FashionMNIST", "ImageFolder", "MNIST", "Synthetic"}) {
    INFO(name);
    CHECK(dataset_registry().contains(name));
  }
  for (const char* name : {"CenterCrop", "Normalize", "RandomCrop", "RandomFlip", "Resize"}) {
    INFO(name);
    CHECK(transform_registry().contains(name));
  }
  CHECK(razor::dataloader_registry().contains("DataLoader"));
  auto& index = razor::RegistryIndex::instance();
  CHECK(index.names_of("datasets") == dataset_registry().names());
  CHECK(index.names_of("transforms") == transform_registry().names());
}

TEST_CASE("indices keeps the first N samples, or the last N when negative (MMEngine)",
          "[datasets]") {
  razor::register_datasets();
  // Synthetic labels are index % num_classes: 7 classes tell the two halves apart.
  auto build = [](razor::Json indices) {
    razor::Json table = {{"type", "Synthetic"}, {"num_samples", 100}, {"num_classes", 7},
                         {"indices", indices}};
    razor::Args args = razor::Args::of(table, "dataset");
    return build_dataset(args);
  };
  auto first = build(40);
  auto last = build(-40);
  REQUIRE(first->size() == 40);
  REQUIRE(last->size() == 40);
  CHECK(first->get(0).label == 0);
  CHECK(last->get(0).label == 60 % 7);
  CHECK(last->get(39).label == 99 % 7);
  CHECK(build(-1000)->size() == 100);
  CHECK_THROWS_WITH(build(0), Catch::Contains("dataset.indices"));
}
