#include "components/architectures/darts_backbone.h"

#include <torch/torch.h>

#include <algorithm>

#include "components/architectures/darts_subnet_head.h"
#include "components/mutables/choice_route.h"
#include "components/nn/activation.h"
#include "components/nn/pooling.h"
#include "components/nn/conv.h"
#include "engine/error.h"
#include "engine/model.h"

namespace razor {

DartsNode::DartsNode(std::shared_ptr<nn::Module> route) : nn::Module("DartsNode") {
  route_ = register_module("route", std::move(route));
}

torch::Tensor DartsNode::forward_inputs(const nn::Inputs& inputs) { return (*route_)(inputs); }

DartsCell::DartsCell(int64_t num_nodes, int64_t channels, int64_t prev_channels,
                     int64_t prev_prev_channels, bool reduction, bool prev_reduction, bool affine,
                     const DartsEdgeFactory& edges, const DartsRouteFactory& routes)
    : nn::Module("DartsCell"), reduction_(reduction), out_channels_(channels * num_nodes) {
  // After a reduction cell, s0 has twice the resolution of s1.
  if (prev_reduction) {
    preproc0_ = register_module(
        "preproc0", std::make_shared<FactorizedReduce>(prev_prev_channels, channels, affine));
  } else {
    preproc0_ = register_module(
        "preproc0", std::make_shared<StandardConv>(prev_prev_channels, channels, 1, 1, 0, affine));
  }
  preproc1_ = register_module(
      "preproc1", std::make_shared<StandardConv>(prev_channels, channels, 1, 1, 0, affine));
  nodes_ = register_module("nodes", std::make_shared<nn::Sequential>());
  const std::string kind = reduction ? "reduce" : "normal";
  for (int64_t depth = 2; depth < num_nodes + 2; ++depth) {
    const std::string node_id = kind + "_n" + std::to_string(depth);
    std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>> node_edges;
    for (int64_t i = 0; i < depth; ++i) {
      // A reduction cell's edges from its two inputs halve the resolution.
      const int64_t stride = reduction && i < 2 ? 2 : 1;
      const std::string edge_id = node_id + "_p" + std::to_string(i);
      node_edges.emplace_back(edge_id, edges(edge_id, channels, stride));
    }
    nodes_->push_back(std::make_shared<DartsNode>(routes(node_id, std::move(node_edges))));
  }
  concat_ = register_module("concat", std::make_shared<nn::Concat>(1));
}

torch::Tensor DartsCell::forward_inputs(const nn::Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() == 2);
  nn::Inputs tensors = {(*preproc0_)(inputs[0]), (*preproc1_)(inputs[1])};
  for (const auto& node : *nodes_) tensors.push_back((*node)(tensors));
  return (*concat_)(nn::Inputs(tensors.begin() + 2, tensors.end()));
}

DartsAuxiliaryHead::DartsAuxiliaryHead(int64_t in_channels, int64_t mid_channels,
                                       int64_t out_channels, bool affine)
    : nn::Module("DartsAuxiliaryHead") {
  RAZOR_CHECK(in_channels > 0 && mid_channels > 0 && out_channels > 0,
              "DartsAuxiliaryHead: channels must be positive");
  net_ = register_module("net", std::make_shared<nn::Sequential>());
  net_->push_back(std::make_shared<nn::ReLU>());
  net_->push_back(std::make_shared<nn::AvgPool2d>(
      nn::Pool2dOptions(5).with_stride(2).with_count_include_pad(false)));
  net_->push_back(std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions(in_channels, mid_channels, 1).with_bias(false)));
  net_->push_back(std::make_shared<nn::BatchNorm2d>(mid_channels, 1e-5, 0.1, affine));
  net_->push_back(std::make_shared<nn::ReLU>());
  net_->push_back(std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions(mid_channels, out_channels, 2).with_bias(false)));
  net_->push_back(std::make_shared<nn::BatchNorm2d>(out_channels, 1e-5, 0.1, affine));
  net_->push_back(std::make_shared<nn::ReLU>());
}

torch::Tensor DartsAuxiliaryHead::forward(const torch::Tensor& input) {
  RAZOR_CHECK(input.dim() == 4 && input.size(2) >= 7 && input.size(3) >= 7,
              "DartsAuxiliaryHead: needs a feature map of at least 7x7 after cell 2/3 of the "
              "depth (5x5 pooling with stride 2, then a 2x2 conv), got ",
              input.sizes());
  return (*net_)(input);
}

DartsBackbone::DartsBackbone(const DartsBackboneOptions& options, const DartsEdgeFactory& edges,
                             const DartsRouteFactory& routes)
    : Backbone("DartsBackbone"), options_(options) {
  const auto& o = options;
  RAZOR_CHECK(o.in_channels > 0 && o.base_channels > 0 && o.stem_multiplier > 0,
              "DartsBackbone: in_channels, base_channels and stem_multiplier must be positive");
  RAZOR_CHECK(o.num_layers >= 1, "DartsBackbone: num_layers must be >= 1, got ", o.num_layers);
  RAZOR_CHECK(o.num_nodes >= 1, "DartsBackbone: num_nodes must be >= 1, got ", o.num_nodes);
  if (options_.out_indices.empty()) options_.out_indices = {o.num_layers - 1};
  const auto& indices = options_.out_indices;
  for (size_t i = 0; i < indices.size(); ++i) {
    const bool increasing = i == 0 || indices[i] > indices[i - 1];
    RAZOR_CHECK(indices[i] >= 0 && indices[i] < o.num_layers && increasing,
                "DartsBackbone: out_indices must be increasing cell indices in [0, ", o.num_layers,
                ")");
  }
  RAZOR_CHECK(indices.back() == o.num_layers - 1,
              "DartsBackbone: the last of out_indices must be the last cell, ", o.num_layers - 1,
              " (MMRazor asserts it too), got ", indices.back());
  if (o.auxiliary) {
    RAZOR_CHECK(o.aux_channels > 0 && o.aux_out_channels > 0,
                "DartsBackbone: aux_channels and aux_out_channels must be positive");
    auxiliary_index_ = 2 * o.num_layers / 3;
  }
  const int64_t stem_channels = o.stem_multiplier * o.base_channels;
  stem_ = register_module("stem", std::make_shared<nn::Sequential>());
  stem_->push_back(std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions(o.in_channels, stem_channels, 3).with_padding(1).with_bias(false)));
  // MMRazor builds the stem's BN with the backbone's norm_cfg (its affine=True copy is unused).
  stem_->push_back(std::make_shared<nn::BatchNorm2d>(stem_channels, 1e-5, 0.1, o.affine));

  cells_ = register_module("cells", std::make_shared<nn::Sequential>());
  int64_t prev_prev = stem_channels, prev = stem_channels, channels = o.base_channels;
  bool reduction = false;
  for (int64_t i = 0; i < o.num_layers; ++i) {
    const bool prev_reduction = reduction;
    reduction = i == o.num_layers / 3 || i == 2 * o.num_layers / 3;
    if (reduction) channels *= 2;
    auto cell = cells_->push_back(std::make_shared<DartsCell>(
        o.num_nodes, channels, prev, prev_prev, reduction, prev_reduction, o.affine, edges, routes));
    prev_prev = prev;
    prev = cell->out_channels();
    if (i == auxiliary_index_) {
      aux_ = register_module("auxliary_module",
                             std::make_shared<DartsAuxiliaryHead>(prev, o.aux_channels,
                                                                  o.aux_out_channels, o.affine));
    }
  }
  out_channels_ = prev;
}

bool DartsBackbone::has_multiple_outputs() const {
  return options_.out_indices.size() > 1 || (aux_ && is_training());
}

BackboneOutputs DartsBackbone::forward_outputs(const torch::Tensor& input) {
  return run(input, /*all_outs=*/true, /*with_aux=*/aux_ && is_training());
}

torch::Tensor DartsBackbone::forward(const torch::Tensor& input) {
  return run(input, /*all_outs=*/false, /*with_aux=*/false).outs.back();
}

BackboneOutputs DartsBackbone::run(const torch::Tensor& input, bool all_outs, bool with_aux) {
  BackboneOutputs out;
  torch::Tensor s0 = (*stem_)(input);
  torch::Tensor s1 = s0;
  size_t next_out = 0;  // out_indices are increasing
  const auto& indices = options_.out_indices;
  for (size_t i = 0; i < cells_->size(); ++i) {
    torch::Tensor next = (*cells_)[i](nn::Inputs{s0, s1});
    s0 = std::move(s1);
    s1 = std::move(next);
    if (all_outs && next_out < indices.size() && indices[next_out] == static_cast<int64_t>(i)) {
      out.outs.push_back(s1);
      ++next_out;
    }
    if (with_aux && static_cast<int64_t>(i) == auxiliary_index_) out.aux = (*aux_)(s1);
  }
  if (!all_outs) out.outs.push_back(s1);
  return out;
}

namespace {

using DartsModulePtr = std::shared_ptr<torch::nn::Module>;

/// `norm_cfg = {type = "BN", affine = false}` (MMRazor's); only BN exists here.
bool darts_affine(Args& args) {
  if (!args.has("norm_cfg")) return true;
  Args norm = args.sub("norm_cfg");
  const std::string type = norm.get("type", "BN");
  if (type != "BN") norm.fail("type", "only \"BN\" is supported, got \"" + type + "\"");
  const bool affine = norm.get<bool>("affine", true);
  norm.finish();
  return affine;
}

/// The keys every DARTS op takes: module_kwargs' in_channels, out_channels, stride, and
/// norm_cfg, use_drop_path (with mmcv's drop probability 0.1 unless `drop_prob` says).
DartsOpOptions darts_op_options(Args& args) {
  DartsOpOptions options(args.require<int64_t>("in_channels"),
                         args.require<int64_t>("out_channels"), args.get<int64_t>("stride", 1));
  if (options.in_channels <= 0) args.fail("in_channels", "must be positive");
  if (options.out_channels <= 0) args.fail("out_channels", "must be positive");
  if (options.stride != 1 && options.stride != 2) args.fail("stride", "must be 1 or 2");
  options.affine = darts_affine(args);
  const bool drop_path = args.get<bool>("use_drop_path", false);
  const double drop_prob = args.get<double>("drop_prob", 0.1);
  if (drop_prob < 0 || drop_prob >= 1) args.fail("drop_prob", "must be in [0, 1)");
  options.drop_path_prob = drop_path ? drop_prob : 0.0;
  return options;
}

int64_t darts_kernel(Args& args) {
  const auto k = args.require<int64_t>("kernel_size");
  if (k != 3 && k != 5) args.fail("kernel_size", "must be 3 or 5, got " + std::to_string(k));
  return k;
}

DartsModulePtr build_darts_backbone(Args& args, const BuildContext& context) {
  DartsBackboneOptions options;
  options.in_channels = args.get<int64_t>("in_channels", options.in_channels);
  options.base_channels = args.get<int64_t>("base_channels", options.base_channels);
  options.num_layers = args.get<int64_t>("num_layers", options.num_layers);
  options.num_nodes = args.get<int64_t>("num_nodes", options.num_nodes);
  options.stem_multiplier = args.get<int64_t>("stem_multiplier", options.stem_multiplier);
  for (const char* key : {"in_channels", "base_channels", "num_layers", "num_nodes",
                          "stem_multiplier"}) {
    if (args.get<int64_t>(key, 1) <= 0) args.fail(key, "must be positive");
  }
  options.affine = darts_affine(args);
  // Checked by the constructor (the registry names this table in its errors).
  options.out_indices = args.get<std::vector<int64_t>>("out_indices", {});
  if (args.has("out_indices") && options.out_indices.empty()) {
    args.fail("out_indices", "must name at least the last cell");
  }
  options.auxiliary = args.get<bool>("auxliary", false);  // MMRazor's spelling
  options.aux_channels = args.get<int64_t>("aux_channels", options.aux_channels);
  options.aux_out_channels = args.get<int64_t>("aux_out_channels", options.aux_out_channels);
  if (args.has("act_cfg")) {
    Args act = args.sub("act_cfg");
    const std::string type = act.require<std::string>("type");
    if (type != "ReLU") act.fail("type", "only \"ReLU\" is supported, got \"" + type + "\"");
    act.finish();
  }
  const Json mutable_cfg = args.raw("mutable_cfg");
  const Json route_cfg = args.raw("route_cfg");
  if (!mutable_cfg.is_object()) args.fail("mutable_cfg", "must be an op mutable table");
  if (!route_cfg.is_object()) args.fail("route_cfg", "must be a route table");
  const std::string base = args.path();
  auto config = args.config();

  auto edges = [&](const std::string& alias, int64_t channels, int64_t stride) {
    Json cfg = mutable_cfg;
    cfg["module_kwargs"] = Json{{"in_channels", channels}, {"out_channels", channels},
                                {"stride", stride}};
    cfg["alias"] = alias;
    Args edge_args(cfg, base + ".mutable_cfg", config);
    return build_model_as<nn::Module>(edge_args, context, "a DARTS edge (an op mutable)");
  };
  auto routes = [&](const std::string& alias,
                    Candidates node_edges) -> std::shared_ptr<nn::Module> {
    Json cfg = route_cfg;
    Args route(cfg, base + ".route_cfg", config);
    const std::string type = route.require<std::string>("type");
    const bool with_arch_param = route.get<bool>("with_arch_param", true);
    // Node n2 has only its two inputs: it keeps both whatever num_chosen says.
    const auto num_chosen = std::min<int64_t>(route.get<int64_t>("num_chosen", 2),
                                              static_cast<int64_t>(node_edges.size()));
    std::shared_ptr<nn::Module> out;
    if (type == "DiffChoiceRoute") {
      out = std::make_shared<DiffChoiceRoute>(std::move(node_edges), with_arch_param, num_chosen,
                                              alias);
    } else if (type == "GumbelChoiceRoute") {
      const double tau = route.get<double>("tau", 1.0);
      const bool hard = route.get<bool>("hard", true);
      out = std::make_shared<GumbelChoiceRoute>(std::move(node_edges), tau, hard, with_arch_param,
                                                num_chosen, alias);
    } else {
      route.fail("type", "expected \"DiffChoiceRoute\" or \"GumbelChoiceRoute\", got \"" + type +
                             "\"");
    }
    route.finish();
    return out;
  };
  return std::make_shared<DartsBackbone>(options, edges, routes);
}

}  // namespace

void register_darts_architectures() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = model_registry();
  registry.add("DartsZero", [](Args& args, const BuildContext&) -> DartsModulePtr {
    return std::make_shared<DartsZero>(darts_op_options(args));
  });
  registry.add("DartsSkipConnect", [](Args& args, const BuildContext&) -> DartsModulePtr {
    return std::make_shared<DartsSkipConnect>(darts_op_options(args));
  });
  registry.add("DartsPoolBN", [](Args& args, const BuildContext&) -> DartsModulePtr {
    auto options = darts_op_options(args);
    const std::string pool_type = args.require<std::string>("pool_type");
    if (pool_type != "max" && pool_type != "avg") {
      args.fail("pool_type", "must be \"max\" or \"avg\", got \"" + pool_type + "\"");
    }
    return std::make_shared<DartsPoolBN>(options, pool_type, args.get<int64_t>("kernel_size", 3));
  });
  registry.add("DartsSepConv", [](Args& args, const BuildContext&) -> DartsModulePtr {
    auto options = darts_op_options(args);
    return std::make_shared<DartsSepConv>(options, darts_kernel(args));
  });
  registry.add("DartsDilConv", [](Args& args, const BuildContext&) -> DartsModulePtr {
    auto options = darts_op_options(args);
    return std::make_shared<DartsDilConv>(options, darts_kernel(args));
  });
  registry.add("DartsBackbone", build_darts_backbone);
  register_darts_subnet_head();
}

}  // namespace razor
