#include "datasets/dataset.h"

#include <algorithm>
#include <stdexcept>

namespace razor::data {

Sample Dataset::load(int64_t index, std::mt19937_64& rng) const {
  Sample sample = get(index);
  pipeline_->apply(sample.image, rng);
  return sample;
}

void Dataset::set_pipeline(std::shared_ptr<const Compose> pipeline) {
  RAZOR_ASSERT(pipeline != nullptr);
  pipeline_ = std::move(pipeline);
}

void Dataset::check_index(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw std::out_of_range(
        detail::concat("dataset index ", index, " out of range [0, ", size(), ")"));
  }
}

Subset::Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  for (int64_t index : indices_) {
    RAZOR_CHECK(index >= 0 && index < base_->size(), "indices: sample ", index,
                " is out of range for a dataset of ", base_->size(), " samples");
  }
}

std::shared_ptr<Subset> Subset::first(std::shared_ptr<const Dataset> base, int64_t count) {
  std::vector<int64_t> indices(
      static_cast<size_t>(std::max<int64_t>(0, std::min(count, base->size()))));
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i);
  return std::make_shared<Subset>(std::move(base), std::move(indices));
}

std::shared_ptr<Subset> Subset::last(std::shared_ptr<const Dataset> base, int64_t count) {
  const int64_t size = base->size();
  const int64_t kept = std::max<int64_t>(0, std::min(count, size));
  std::vector<int64_t> indices(static_cast<size_t>(kept));
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = size - kept + static_cast<int64_t>(i);
  return std::make_shared<Subset>(std::move(base), std::move(indices));
}

Sample Subset::get(int64_t index) const {
  check_index(index);
  return base_->get(indices_[static_cast<size_t>(index)]);
}

Registry<Dataset>& dataset_registry() {
  static Registry<Dataset> registry("datasets");
  return registry;
}

void register_dataset(const std::string& type, DatasetFactory reader) {
  dataset_registry().add(type, [reader = std::move(reader)](Args& args,
                                                            const BuildContext& context) {
    // The pipeline first: a typo in it fails before a large split is decoded.
    auto tables = args.sub_list("pipeline");
    auto pipeline = build_pipeline(tables, context);

    std::shared_ptr<Dataset> dataset = reader(args, context);
    RAZOR_ASSERT(dataset != nullptr);
    if (args.has("indices")) {
      const Json& value = args.raw("indices");
      if (value.is_number_integer()) {
        const int64_t count = value.get<int64_t>();
        // MMEngine's int indices: the first N samples, or the last |N| when negative.
        if (count == 0) args.fail("indices", "expected a non-zero count, got 0");
        dataset = count > 0 ? Subset::first(dataset, count) : Subset::last(dataset, -count);
      } else if (value.is_array()) {
        auto indices = args.get<std::vector<int64_t>>("indices", {});
        for (int64_t index : indices) {
          if (index < 0 || index >= dataset->size()) {
            args.fail("indices", "sample " + std::to_string(index) +
                                     " is out of range for a dataset of " +
                                     std::to_string(dataset->size()) + " samples");
          }
        }
        dataset = std::make_shared<Subset>(dataset, std::move(indices));
      } else {
        args.fail("indices", "expected a count or an array of sample indices, got " + value.dump());
      }
    } else {
      args.accept("indices");
    }
    dataset->set_pipeline(std::move(pipeline));
    return dataset;
  });
}

std::shared_ptr<Dataset> build_dataset(Args& args, const BuildContext& context) {
  return dataset_registry().build(args, context);
}

}  // namespace razor::data
