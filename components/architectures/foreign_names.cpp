#include "components/architectures/foreign_names.h"

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "components/architectures/cls_head.h"
#include "components/architectures/image_classifier.h"
#include "components/architectures/mobilenet_v2.h"
#include "components/architectures/resnet.h"
#include "engine/checkpoint.h"
#include "engine/checkpoint_names.h"
#include "engine/strings.h"

namespace razor {

namespace {

using Names = std::map<std::string, std::string>;

std::vector<std::string> tensor_names(const torch::nn::Module& model) {
  std::vector<std::string> out;
  for (const auto& item : state_dict(model)) out.push_back(item.first);
  return out;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// torchvision's ResNet is razor's backbone at the top level, with the classifier as "fc".
Names torchvision_resnet(const std::vector<std::string>& names) {
  Names out;
  for (const auto& name : names) {
    if (starts_with(name, "backbone.")) out[name] = name.substr(9);
    if (starts_with(name, "head.fc.")) out[name] = "fc." + name.substr(8);
  }
  return out;
}

// torchvision's MobileNetV2 numbers its blocks through one `features` list: the stem conv is
// features.0, the 17 inverted residuals features.1..17, the last conv features.18; inside a
// block, conv-BN-ReLU6 units are Sequential(conv, bn, relu), and the projection is a bare
// conv and BN (so a unit "conv.j" of razor's is "conv.j.0"/"conv.j.1", the last one
// "conv.j"/"conv.(j+1)"). The classifier is Sequential(Dropout, Linear).
Names torchvision_mobilenet_v2(const std::vector<std::string>& names) {
  // Blocks in forward order, and how many conv units each has.
  std::vector<std::string> blocks;
  std::map<std::string, int> units;
  for (const auto& name : names) {
    if (!starts_with(name, "backbone.layer")) continue;
    const auto parts = split(name, '.');  // backbone, layerL, b, conv, j, conv|bn, tensor
    if (parts.size() != 7 || parts[3] != "conv") return {};
    const std::string block = parts[1] + "." + parts[2];
    if (!units.count(block)) blocks.push_back(block);
    units[block] = std::max(units[block], std::stoi(parts[4]) + 1);
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < blocks.size(); ++i) index[blocks[i]] = i + 1;
  const std::string last = std::to_string(blocks.size() + 1);
  Names out;
  for (const auto& name : names) {
    const auto parts = split(name, '.');
    const std::string tail = parts.back();
    if (starts_with(name, "backbone.conv1.") || starts_with(name, "backbone.conv2.")) {
      if (parts.size() != 4) return {};
      const std::string feature = parts[1] == "conv1" ? "0" : last;
      out[name] = "features." + feature + (parts[2] == "conv" ? ".0." : ".1.") + tail;
    } else if (starts_with(name, "backbone.layer")) {
      const std::string block = parts[1] + "." + parts[2];
      const int unit = std::stoi(parts[4]);
      const bool bn = parts[5] == "bn";
      std::string inside;
      if (unit + 1 < units[block]) {
        inside = std::to_string(unit) + (bn ? ".1" : ".0");
      } else {
        inside = std::to_string(unit + (bn ? 1 : 0));
      }
      out[name] = "features." + std::to_string(index[block]) + ".conv." + inside + "." + tail;
    } else if (starts_with(name, "head.fc.")) {
      out[name] = "classifier.1." + tail;
    }
  }
  return out;
}

const ImageClassifier* linear_classifier(const torch::nn::Module& model) {
  const auto* classifier = dynamic_cast<const ImageClassifier*>(&model);
  if (!classifier || !dynamic_cast<const LinearClsHead*>(&classifier->head())) return nullptr;
  return classifier;
}

Names torchvision_names(const torch::nn::Module& model) {
  const ImageClassifier* classifier = linear_classifier(model);
  if (!classifier) return {};
  const auto names = tensor_names(model);
  if (const auto* resnet = dynamic_cast<const ResNet*>(&classifier->backbone())) {
    if (!resnet->options().cifar_layout) return torchvision_resnet(names);
  }
  if (dynamic_cast<const MobileNetV2*>(&classifier->backbone())) return torchvision_mobilenet_v2(names);
  return {};
}

Names mmcls_names(const torch::nn::Module& model) {
  if (!dynamic_cast<const ImageClassifier*>(&model)) return {};
  Names out;
  for (const auto& name : tensor_names(model)) out[name] = name;
  return out;
}

}  // namespace

void register_foreign_names() {
  register_name_mapping("torchvision", torchvision_names);
  register_name_mapping("mmcls", mmcls_names);
}

}  // namespace razor
