// Registers the architectures, backbones, necks, heads and losses of components/ in the
// model registry (MMEngine's MODELS), with the config keys of mmcls where they exist.
#include "components/architectures/register_architectures.h"

#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "components/architectures/cls_head.h"
#include "components/architectures/dafl_generator.h"
#include "components/architectures/darts_backbone.h"
#include "components/architectures/foreign_names.h"
#include "components/architectures/global_average_pooling.h"
#include "components/architectures/image_classifier.h"
#include "components/architectures/mobilenet_v2.h"
#include "components/architectures/lenet.h"
#include "components/architectures/resnet.h"
#include "components/architectures/searchable_mobilenet_v2.h"
#include "components/architectures/searchable_shufflenet_v2.h"
#include "components/nn/identity.h"
#include "components/architectures/shufflenet_ops.h"
#include "components/nn/cross_entropy_loss.h"
#include "engine/model.h"
#include "engine/strings.h"

namespace razor {

namespace {

using ModulePtr = std::shared_ptr<torch::nn::Module>;

nn::CrossEntropyLossOptions cross_entropy_options(Args& args) {
  nn::CrossEntropyLossOptions options;
  options.label_smooth_val = args.get<double>("label_smooth_val", 0.0);
  options.loss_weight = args.get<double>("loss_weight", 1.0);
  options.reduction = args.get("reduction", "mean");
  if (options.label_smooth_val < 0 || options.label_smooth_val >= 1) {
    args.fail("label_smooth_val",
              "must be in [0, 1), got " + std::to_string(options.label_smooth_val));
  }
  if (options.reduction != "mean" && options.reduction != "sum" && options.reduction != "none") {
    args.fail("reduction",
              "must be \"mean\", \"sum\" or \"none\", got \"" + options.reduction + "\"");
  }
  return options;
}

ModulePtr build_cross_entropy(Args& args, const BuildContext&) {
  return std::make_shared<nn::CrossEntropyLoss>(cross_entropy_options(args));
}

// mmcls's LabelSmoothLoss in its default 'original' mode is cross entropy on the
// smoothed one-hot target.
ModulePtr build_label_smooth(Args& args, const BuildContext&) {
  args.require<double>("label_smooth_val");
  args.get<int64_t>("num_classes", 0);  // known from the logits; accepted for mmcls configs
  const std::string mode = args.get("mode", "original");
  if (mode != "original") args.fail("mode", "only \"original\" is supported, got \"" + mode + "\"");
  return std::make_shared<nn::CrossEntropyLoss>(cross_entropy_options(args));
}

/// The head's `loss` table, or cross entropy when there is none.
std::shared_ptr<nn::Module> build_head_loss(Args& args, const BuildContext& context) {
  if (!args.has("loss")) return std::make_shared<nn::CrossEntropyLoss>();
  Args loss_args = args.sub("loss");
  return build_model_as<nn::Module>(loss_args, context, "a loss");
}

ModulePtr build_linear_cls_head(Args& args, const BuildContext& context) {
  const auto num_classes = args.require<int64_t>("num_classes");
  const auto in_channels = args.require<int64_t>("in_channels");
  if (num_classes <= 0)
    args.fail("num_classes", "must be positive, got " + std::to_string(num_classes));
  if (in_channels <= 0)
    args.fail("in_channels", "must be positive, got " + std::to_string(in_channels));
  return std::make_shared<LinearClsHead>(num_classes, in_channels, build_head_loss(args, context));
}

ModulePtr build_cls_head(Args& args, const BuildContext& context) {
  return std::make_shared<ClsHead>(build_head_loss(args, context));
}

ModulePtr build_global_average_pooling(Args& args, const BuildContext&) {
  const auto dim = args.get<int64_t>("dim", 2);
  if (dim != 2)
    args.fail("dim", "only 2-D pooling (dim = 2) is supported, got " + std::to_string(dim));
  return std::make_shared<GlobalAveragePooling>();
}

int64_t positive(Args& args, const std::string& key, int64_t fallback) {
  const auto value = args.get<int64_t>(key, fallback);
  if (value <= 0) args.fail(key, "must be positive, got " + std::to_string(value));
  return value;
}

ModulePtr build_resnet_cifar(Args& args, const BuildContext&) {
  const auto depth = args.require<int64_t>("depth");
  if (!ResNet::is_cifar_depth(depth)) {
    args.fail(
        "depth",
        "ResNet_CIFAR depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got " +
            std::to_string(depth));
  }
  auto options = ResNetOptions::cifar(depth)
                     .with_in_channels(positive(args, "in_channels", 3))
                     .with_base_channels(positive(args, "base_channels", 16))
                     .with_zero_init_residual(args.get<bool>("zero_init_residual", false));
  return std::make_shared<ResNet>(options);
}

ModulePtr build_resnet(Args& args, const BuildContext&) {
  const auto depth = args.require<int64_t>("depth");
  const auto depths = ResNet::imagenet_depths();
  if (std::find(depths.begin(), depths.end(), depth) == depths.end()) {
    std::vector<std::string> allowed;
    for (int64_t d : depths) allowed.push_back(std::to_string(d));
    args.fail("depth", "ResNet depth must be one of " + join(allowed, ", ") + ", got " +
                           std::to_string(depth) +
                           " (for CIFAR-style 6n+2 depths use type = \"ResNet_CIFAR\")");
  }
  auto options = ResNetOptions::imagenet(depth)
                     .with_in_channels(positive(args, "in_channels", 3))
                     .with_stem_channels(positive(args, "stem_channels", 64))
                     .with_base_channels(positive(args, "base_channels", 64))
                     .with_zero_init_residual(args.get<bool>("zero_init_residual", false));
  return std::make_shared<ResNet>(options);
}

ModulePtr build_mobilenet_v2(Args& args, const BuildContext&) {
  MobileNetV2Options options;
  options.widen_factor = args.get<double>("widen_factor", 1.0);
  if (options.widen_factor <= 0)
    args.fail("widen_factor", "must be positive, got " + std::to_string(options.widen_factor));
  options.in_channels = positive(args, "in_channels", 3);
  options.stem_stride = args.get<int64_t>("stem_stride", 2);
  if (options.stem_stride != 1 && options.stem_stride != 2) {
    args.fail("stem_stride", "must be 1 or 2, got " + std::to_string(options.stem_stride));
  }
  return std::make_shared<MobileNetV2>(options);
}

ModulePtr build_image_classifier(Args& args, const BuildContext& context) {
  Args backbone_args = args.sub("backbone");
  auto backbone = build_model_as<nn::Module>(backbone_args, context, "a backbone");
  std::shared_ptr<nn::Module> neck;
  if (args.has("neck")) {
    Args neck_args = args.sub("neck");
    neck = build_model_as<nn::Module>(neck_args, context, "a neck");
  }
  Args head_args = args.sub("head");
  auto head = build_model_as<ClsHead>(head_args, context, "a classification head");
  // A head of the wrong width would otherwise fail only at the first batch, as a matmul error.
  auto* typed_backbone = dynamic_cast<Backbone*>(backbone.get());
  auto* linear_head = dynamic_cast<LinearClsHead*>(head.get());
  if (typed_backbone && linear_head && dynamic_cast<GlobalAveragePooling*>(neck.get()) &&
      typed_backbone->out_channels() != linear_head->in_channels()) {
    args.fail("head.in_channels", "the head takes " + std::to_string(linear_head->in_channels()) +
                                      " channels but the backbone gives " +
                                      std::to_string(typed_backbone->out_channels()));
  }
  // A head of auxiliary features (DartsSubnetClsHead) needs a backbone that gives them.
  if (typed_backbone && head->aux_in_channels() > 0) {
    if (typed_backbone->aux_out_channels() == 0) {
      args.fail("head.aux_in_channels", "the head classifies auxiliary features but the "
                                        "backbone has none (DartsBackbone: auxliary = true)");
    }
    if (dynamic_cast<GlobalAveragePooling*>(neck.get()) &&
        typed_backbone->aux_out_channels() != head->aux_in_channels()) {
      args.fail("head.aux_in_channels",
                "the head takes " + std::to_string(head->aux_in_channels()) +
                    " auxiliary channels but the backbone gives " +
                    std::to_string(typed_backbone->aux_out_channels()));
    }
  }
  auto model = std::make_shared<ImageClassifier>(backbone, neck, head);
  if (args.has("train_cfg")) {
    Args train_cfg = args.sub("train_cfg");
    const auto num_classes = linear_head ? std::optional<int64_t>(linear_head->num_classes())
                                         : train_cfg.optional<int64_t>("num_classes");
    if (!num_classes) train_cfg.fail("num_classes", "the head does not say how many classes there are: give num_classes");
    if (linear_head && train_cfg.has("num_classes")) train_cfg.fail("num_classes", "the head already gives it");
    model->set_batch_augments(build_batch_augments(train_cfg, *num_classes));
  }
  nn::assign_paths(*model);
  return model;
}

/// The in/out channels and stride a searchable backbone passes to each candidate block.
struct BlockKwargs {
  int64_t in_channels, out_channels, stride;
};
BlockKwargs block_kwargs(Args& args) {
  return {positive(args, "in_channels", 1), positive(args, "out_channels", 1),
          positive(args, "stride", 1)};
}

ModulePtr build_shuffle_block(Args& args, const BuildContext&) {
  const auto kw = block_kwargs(args);
  return std::make_shared<ShuffleBlock>(kw.in_channels, kw.out_channels, kw.stride,
                                        args.require<int64_t>("kernel_size"));
}

ModulePtr build_shuffle_xception(Args& args, const BuildContext&) {
  const auto kw = block_kwargs(args);
  return std::make_shared<ShuffleXception>(kw.in_channels, kw.out_channels, kw.stride);
}

/// One block of a searchable backbone from its table: a mutable (`candidates`: it gets
/// MMRazor's `module_kwargs`) or a plain op (it gets in/out channels and stride).
std::shared_ptr<nn::Module> build_searchable_block(Json cfg, const std::string& where,
                                                   const std::shared_ptr<const Config>& config,
                                                   const BuildContext& context, int64_t in,
                                                   int64_t out, int64_t stride) {
  if (cfg.contains("candidates")) {
    cfg["module_kwargs"] = Json{{"in_channels", in}, {"out_channels", out}, {"stride", stride}};
  } else {
    for (const auto& [key, value] : {std::pair<const char*, int64_t>{"in_channels", in},
                                     {"out_channels", out}, {"stride", stride}}) {
      if (!cfg.contains(key)) cfg[key] = value;
    }
  }
  Args block_args(cfg, where, config);
  return build_model_as<nn::Module>(block_args, context, "a searchable block");
}

/// `arch_setting = [[channels, blocks], ...]`; a row may end with its own block table (for
/// every block of the stage) or a list of one table per block. A block table is a mutable
/// (`candidates = {...}`: it gets MMRazor's `module_kwargs`) or a plain op such as
/// `{type = "ShuffleBlock", kernel_size = 3}` (it gets in/out channels and stride), which is
/// how an exported subnet is written. Rows without a table use `mutable_cfg`.
ModulePtr build_searchable_shufflenet_v2(Args& args, const BuildContext& context) {
  SearchableShuffleNetV2Options options;
  const Json& rows = args.raw("arch_setting");
  if (!rows.is_array() || rows.empty()) args.fail("arch_setting", "must be a non-empty array of [channels, blocks] rows");
  std::vector<Json> row_cfgs;
  options.arch_setting.clear();
  for (size_t i = 0; i < rows.size(); ++i) {
    const Json& row = rows[i];
    bool ok = row.is_array() && (row.size() == 2 || row.size() == 3) && row[0].is_number_integer() &&
              row[1].is_number_integer();
    if (ok && row.size() == 3) {
      ok = row[2].is_object() || (row[2].is_array() && row[2].size() == row[1].get<size_t>() &&
                                  std::all_of(row[2].begin(), row[2].end(), [](const Json& t) { return t.is_object(); }));
    }
    if (!ok) {
      args.fail("arch_setting", "row " + std::to_string(i) +
                                    " must be [channels, blocks], [channels, blocks, {block table}] or "
                                    "[channels, blocks, [one table per block]], got " + row.dump());
    }
    options.arch_setting.emplace_back(row[0].get<int64_t>(), row[1].get<int64_t>());
    row_cfgs.push_back(row.size() == 3 ? row[2] : Json());
  }
  Json default_cfg;
  if (args.has("mutable_cfg")) default_cfg = args.raw("mutable_cfg");
  for (size_t i = 0; i < row_cfgs.size(); ++i) {
    if (row_cfgs[i].is_null() && default_cfg.is_null()) args.fail_missing("mutable_cfg");
  }
  options.in_channels = positive(args, "in_channels", 3);
  options.stem_channels = 16 * positive(args, "stem_multiplier", 1);
  options.stem_stride = args.get<int64_t>("stem_stride", 2);
  options.last_channels = positive(args, "last_channels", 1024);
  options.widen_factor = args.get<double>("widen_factor", 1.0);
  options.with_last_layer = args.get<bool>("with_last_layer", true);
  if (options.widen_factor <= 0) args.fail("widen_factor", "must be positive");
  if (options.stem_stride != 1 && options.stem_stride != 2) args.fail("stem_stride", "must be 1 or 2");
  const std::string base = args.path();
  auto config = args.config();
  auto blocks = [&](int64_t stage, int64_t block, int64_t in, int64_t out, int64_t stride) {
    const Json& row = row_cfgs[static_cast<size_t>(stage)];
    std::string where = base + ".mutable_cfg";
    Json cfg = default_cfg;
    if (row.is_object()) {
      cfg = row;
      where = base + ".arch_setting[" + std::to_string(stage) + "][2]";
    } else if (row.is_array()) {
      cfg = row[static_cast<size_t>(block)];
      where = base + ".arch_setting[" + std::to_string(stage) + "][2][" + std::to_string(block) + "]";
    }
    return build_searchable_block(cfg, where, config, context, in, out, stride);
  };
  return std::make_shared<SearchableShuffleNetV2>(options, blocks);
}

/// MMRazor's SearchableMobileNetV2: `arch_setting = [[channels, blocks, stride], ...]` (a
/// row may end with its own block table), `mutable_cfg` for rows without one. An
/// `Identity` candidate is dropped from blocks that change stride or width.
ModulePtr build_searchable_mobilenet_v2(Args& args, const BuildContext& context) {
  SearchableMobileNetV2Options options;
  const Json& rows = args.raw("arch_setting");
  if (!rows.is_array() || rows.empty()) args.fail("arch_setting", "must be a non-empty array of [channels, blocks, stride] rows");
  std::vector<Json> row_cfgs;
  options.arch_setting.clear();
  for (size_t i = 0; i < rows.size(); ++i) {
    const Json& row = rows[i];
    const bool ok = row.is_array() && (row.size() == 3 || row.size() == 4) && row[0].is_number_integer() &&
                    row[1].is_number_integer() && row[2].is_number_integer() &&
                    (row[2] == 1 || row[2] == 2) && (row.size() == 3 || row[3].is_object());
    if (!ok) {
      args.fail("arch_setting", "row " + std::to_string(i) +
                                    " must be [channels, blocks, stride (1 or 2)] or [channels, blocks, stride, "
                                    "{block table}], got " + row.dump());
    }
    options.arch_setting.push_back({row[0].get<int64_t>(), row[1].get<int64_t>(), row[2].get<int64_t>()});
    row_cfgs.push_back(row.size() == 4 ? row[3] : Json());
  }
  Json default_cfg;
  if (args.has("mutable_cfg")) default_cfg = args.raw("mutable_cfg");
  for (const auto& cfg : row_cfgs) {
    if (cfg.is_null() && default_cfg.is_null()) args.fail_missing("mutable_cfg");
  }
  options.in_channels = positive(args, "in_channels", 3);
  options.first_channels = positive(args, "first_channels", 32);
  options.last_channels = positive(args, "last_channels", 1280);
  options.stem_stride = args.get<int64_t>("stem_stride", 2);
  options.widen_factor = args.get<double>("widen_factor", 1.0);
  if (options.widen_factor <= 0) args.fail("widen_factor", "must be positive");
  if (options.stem_stride != 1 && options.stem_stride != 2) args.fail("stem_stride", "must be 1 or 2");
  const std::string base = args.path();
  auto config = args.config();
  auto blocks = [&](int64_t stage, int64_t, int64_t in, int64_t out, int64_t stride) {
    const Json& row = row_cfgs[static_cast<size_t>(stage)];
    Json cfg = row.is_null() ? default_cfg : row;
    const std::string where = row.is_null() ? base + ".mutable_cfg" : base + ".arch_setting[" + std::to_string(stage) + "][3]";
    if (cfg.contains("candidates") && (stride != 1 || in != out)) {
      Json kept = Json::object();
      for (const auto& item : cfg["candidates"].items()) {
        if (item.value().value("type", "") != "Identity") kept[item.key()] = item.value();
      }
      cfg["candidates"] = kept;
    }
    return build_searchable_block(cfg, where, config, context, in, out, stride);
  };
  return std::make_shared<SearchableMobileNetV2>(options, blocks);
}

ModulePtr build_mb_block(Args& args, const BuildContext&) {
  const auto kw = block_kwargs(args);
  const double expand = args.require<double>("expand_ratio");
  if (expand < 1) args.fail("expand_ratio", "must be >= 1");
  return std::make_shared<MBBlock>(kw.in_channels, kw.out_channels, kw.stride,
                                   args.require<int64_t>("kernel_size"), expand,
                                   args.get("activation", "ReLU6"));
}

/// The identity candidate of a searchable block (only where stride and width are kept).
ModulePtr build_identity_op(Args& args, const BuildContext&) {
  const auto kw = block_kwargs(args);
  if (kw.stride != 1 || kw.in_channels != kw.out_channels) {
    args.fail("type", "Identity cannot change stride or width (in " + std::to_string(kw.in_channels) +
                          ", out " + std::to_string(kw.out_channels) + ", stride " + std::to_string(kw.stride) + ")");
  }
  return std::make_shared<nn::Identity>();
}

}  // namespace

void register_architectures() {
  static bool done = false;
  if (done) return;
  done = true;
  register_foreign_names();
  auto& registry = model_registry();
  registry.add("ImageClassifier", build_image_classifier);
  registry.add("ResNet", build_resnet);
  registry.add("ResNet_CIFAR", build_resnet_cifar);
  registry.add("MobileNetV2", build_mobilenet_v2);
  registry.add("LeNet5", [](Args& args, const BuildContext&) -> ModulePtr {
    return std::make_shared<LeNet5>(positive(args, "in_channels", 1));
  });
  registry.add("GlobalAveragePooling", build_global_average_pooling);
  registry.add("ClsHead", build_cls_head);
  registry.add("LinearClsHead", build_linear_cls_head);
  registry.add("CrossEntropyLoss", build_cross_entropy);
  registry.add("LabelSmoothLoss", build_label_smooth);
  registry.add("DAFLGenerator", build_dafl_generator);
  registry.add("SearchableShuffleNetV2", build_searchable_shufflenet_v2);
  registry.add("ShuffleBlock", build_shuffle_block);
  registry.add("ShuffleXception", build_shuffle_xception);
  registry.add("SearchableMobileNetV2", build_searchable_mobilenet_v2);
  registry.add("MBBlock", build_mb_block);
  registry.add("Identity", build_identity_op);
  register_darts_architectures();
}

}  // namespace razor
