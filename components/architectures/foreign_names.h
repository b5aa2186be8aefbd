#pragma once
// The names other tools give the tensors of the architectures razor shares with them, as
// checkpoint name mappings (engine/checkpoint_names.h):
//   "torchvision": torchvision.models' resnet18/34/50 (and 101/152) and mobilenet_v2, for an
//                  ImageClassifier with a ResNet (ImageNet layout) or MobileNetV2 backbone and
//                  a LinearClsHead;
//   "mmcls":       mmcls/MMPretrain's ImageClassifier, whose names razor's architectures keep.
namespace razor {

/// Registers both mappings (from register_architectures()).
void register_foreign_names();

}  // namespace razor
