#include "datasets/register_datasets.h"

#include "datasets/cifar.h"
#include "datasets/data_loader.h"
#include "datasets/dataset.h"
#include "datasets/image_folder.h"
#include "datasets/mnist.h"
#include "datasets/synthetic.h"
#include "datasets/transforms.h"

namespace razor {

namespace {


std::string read_split(Args& args) {
  const std::string split = args.get("split", "train");
  if (split != "train" && split != "test") {
    args.fail("split", "expected \"train\" or \"test\", got \"" + split + "\"");
  }
  return split;
}

void register_readers() {
  data::register_dataset("FashionMNIST", [](Args& args, const BuildContext&) {
    const std::string root = args.get("data_root", data::FashionMNIST::kDefaultRoot);
    return std::make_shared<data::FashionMNIST>(root, read_split(args));
  });
  data::register_dataset("MNIST", [](Args& args, const BuildContext&) {
    const auto root = args.require<std::string>("data_root");
    return std::make_shared<data::MNIST>(root, read_split(args));
  });
  data::register_dataset("CIFAR10", [](Args& args, const BuildContext&) {
    const auto root = args.require<std::string>("data_root");
    return std::make_shared<data::CIFAR10>(root, read_split(args));
  });
  data::register_dataset("CIFAR100", [](Args& args, const BuildContext&) {
    const auto root = args.require<std::string>("data_root");
    const std::string labels = args.get("labels", "fine");
    if (labels != "fine" && labels != "coarse") {
      args.fail("labels", "expected \"fine\" or \"coarse\", got \"" + labels + "\"");
    }
    return std::make_shared<data::CIFAR100>(root, read_split(args), labels == "fine");
  });
  auto image_folder = [](Args& args, const BuildContext&) {
    data::ImageFolder::Options options;
    options.data_root = args.require<std::string>("data_root");
    const std::string color = args.get("color", "color");
    if (color != "color" && color != "grayscale") {
      args.fail("color", "expected \"color\" or \"grayscale\", got \"" + color + "\"");
    }
    options.color = color == "color";
    options.extensions = args.get<std::vector<std::string>>("extensions", options.extensions);
    options.ann_file = args.get("ann_file", "");
    options.data_prefix = args.get("data_prefix", "");
    return std::make_shared<data::ImageFolder>(options);
  };
  data::register_dataset("ImageFolder", image_folder);
  // mmcls's ImageNet: data_root = "data/imagenet", ann_file = "meta/train.txt",
  // data_prefix = "train" (an ImageFolder reading the annotation list).
  data::register_dataset("ImageNet", image_folder);
  data::register_dataset("Synthetic", [](Args& args, const BuildContext&) {
    data::Synthetic::Options options;
    options.num_samples = args.get<int64_t>("num_samples", options.num_samples);
    options.num_classes = args.get<int64_t>("num_classes", options.num_classes);
    options.shape = args.get<std::vector<int64_t>>("shape", options.shape);
    options.seed = args.get<uint64_t>("seed", options.seed);
    options.noise = args.get<double>("noise", options.noise);
    return std::make_shared<data::Synthetic>(options);
  });
}

}  // namespace

void register_datasets() {
  static bool registered = false;
  if (registered) return;
  registered = true;
  data::register_transforms();
  register_readers();
  data::register_data_loader();
}

}  // namespace razor
