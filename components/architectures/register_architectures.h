#pragma once

namespace razor {

/// Adds ImageClassifier, ResNet, ResNet_CIFAR, MobileNetV2, GlobalAveragePooling, ClsHead,
/// LinearClsHead, CrossEntropyLoss and LabelSmoothLoss to model_registry(). Idempotent.
void register_architectures();

}  // namespace razor
