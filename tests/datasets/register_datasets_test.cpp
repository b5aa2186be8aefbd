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
