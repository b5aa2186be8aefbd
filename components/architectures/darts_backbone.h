#pragma once
// MMRazor's DartsBackbone (the DARTS supernet): a stem 3x3 conv + BN of
// stem_multiplier × base_channels, then `num_layers` cells, the ones at 1/3 and 2/3 of the
// depth reduction cells (stride 2, channels doubled). A cell preprocesses the outputs of the
// two previous cells (s0, s1), then each of its `num_nodes` nodes sums edges from every
// earlier tensor of the cell through a route (DiffChoiceRoute), each edge an op mutable
// (DiffMutableOP); the cell outputs the concatenated nodes.
//
// Names follow MMRazor: "cells.<i>.nodes.<j>.route._edges.<edge>._candidates.<op>". Node j
// of a normal cell has alias "normal_n<j+2>", its edge from input k "normal_n<j+2>_p<k>"
// ("reduce_..." in reduction cells), so every normal cell shares one α per edge and per node,
// and subnet files read `normal_n2: {chosen: [normal_n2_p0, normal_n2_p1]}`.
//
// `out_indices` (the last must be the last cell) and MMRazor's auxiliary head of DARTS
// (`auxliary`, its spelling; off in its search config, on when a genotype is retrained): after
// the cell at 2/3 of the depth, ReLU, 5x5 average pooling with stride 2 (MMRazor's; the paper
// uses stride 3, which gives the same 2x2 on CIFAR's 8x8 but 1x1 on Fashion-MNIST's 7x7),
// conv1x1 to aux_channels, BN, ReLU, conv2x2 to aux_out_channels, BN, ReLU. Its output is
// computed in training only and reaches the head as `BackboneOutputs::aux` (forward_outputs);
// forward returns the last cell's output, so evaluation and export see a single-output model.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "components/architectures/backbone.h"
#include "components/architectures/darts_ops.h"
#include "components/nn/sequential.h"

namespace razor {

struct DartsBackboneOptions {
  /// Image channels.
  int64_t in_channels = 3;
  /// Channels of the first cells (doubled at each reduction).
  int64_t base_channels = 16;
  /// Cells; reductions at num_layers / 3 and 2 * num_layers / 3.
  int64_t num_layers = 8;
  /// Nodes per cell (the cell's output has num_nodes × its channels).
  int64_t num_nodes = 4;
  /// The stem has stem_multiplier × base_channels channels.
  int64_t stem_multiplier = 3;
  /// Affine BatchNorms in the stem, the cells' preprocessing and the auxiliary head
  /// (MMRazor's norm_cfg).
  bool affine = true;
  /// Cells whose outputs forward_outputs returns, increasing; the last must be the last cell.
  /// Empty: {num_layers - 1}.
  std::vector<int64_t> out_indices;
  /// The auxiliary head after cell 2 * num_layers / 3, used in training only (MMRazor's
  /// `auxliary`).
  bool auxiliary = false;
  /// Channels of the auxiliary head's 1x1 conv.
  int64_t aux_channels = 128;
  /// Channels of the auxiliary head's output (its 2x2 conv).
  int64_t aux_out_channels = 768;
};

/// A node's edge from input `input` of its cell: (edge alias, channels, stride) -> module.
using DartsEdgeFactory =
    std::function<std::shared_ptr<nn::Module>(const std::string& alias, int64_t channels,
                                              int64_t stride)>;
/// A node's route over its edges, in input order: (node alias, edges) -> module taking the
/// list of the cell's tensors so far.
using DartsRouteFactory = std::function<std::shared_ptr<nn::Module>(
    const std::string& alias, std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>>)>;

/// One DARTS node: child "route" over the cell's earlier tensors.
class DartsNode : public nn::Module {
 public:
  explicit DartsNode(std::shared_ptr<nn::Module> route);

 protected:
  torch::Tensor forward_inputs(const nn::Inputs& inputs) override;

 private:
  std::shared_ptr<nn::Module> route_;
};

/// One cell: preproc0 (FactorizedReduce after a reduction cell, else ReLU-conv1x1-BN),
/// preproc1 (ReLU-conv1x1-BN), nodes "0".."num_nodes-1", and the concat of the nodes.
/// Called with {s0, s1}.
class DartsCell : public nn::Module {
 public:
  DartsCell(int64_t num_nodes, int64_t channels, int64_t prev_channels, int64_t prev_prev_channels,
            bool reduction, bool prev_reduction, bool affine, const DartsEdgeFactory& edges,
            const DartsRouteFactory& routes);
  bool reduction() const { return reduction_; }
  int64_t out_channels() const { return out_channels_; }

 protected:
  torch::Tensor forward_inputs(const nn::Inputs& inputs) override;

 private:
  bool reduction_;
  int64_t out_channels_;
  std::shared_ptr<nn::Module> preproc0_, preproc1_;
  std::shared_ptr<nn::Sequential> nodes_;  // a list: called node by node, never as a chain
  std::shared_ptr<nn::Concat> concat_;
};

/// DARTS's auxiliary head (MMRazor's AuxiliaryModule): "net" = ReLU, AvgPool2d(5, stride 2,
/// without the padding), conv1x1 (no bias), BN, ReLU, conv2x2 (no bias), BN, ReLU. A 6x6 or
/// 7x7 input gives 1x1; a smaller one is an error.
class DartsAuxiliaryHead : public nn::Module {
 public:
  DartsAuxiliaryHead(int64_t in_channels, int64_t mid_channels, int64_t out_channels,
                     bool affine = true);

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Sequential> net_;
};

class DartsBackbone : public Backbone {
 public:
  DartsBackbone(const DartsBackboneOptions& options, const DartsEdgeFactory& edges,
                const DartsRouteFactory& routes);
  int64_t out_channels() const override { return out_channels_; }
  int64_t aux_out_channels() const override {
    return options_.auxiliary ? options_.aux_out_channels : 0;
  }
  const DartsBackboneOptions& options() const { return options_; }
  DartsCell& cell(size_t index) const { return cells_->at<DartsCell>(index); }
  size_t num_cells() const { return cells_->size(); }
  /// The cell the auxiliary head reads (2 * num_layers / 3); -1 without it.
  int64_t auxiliary_index() const { return auxiliary_index_; }
  /// Null without the auxiliary head.
  DartsAuxiliaryHead* auxiliary_head() const { return aux_.get(); }

  /// Several out_indices, or the auxiliary head in training.
  bool has_multiple_outputs() const override;
  /// The cells' outputs at out_indices, and the auxiliary head's output in training.
  BackboneOutputs forward_outputs(const torch::Tensor& input) override;

 protected:
  /// The last cell's output.
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  /// One pass; the auxiliary head runs only with `with_aux`, the other outputs only with
  /// `all_outs` (forward keeps just the last).
  BackboneOutputs run(const torch::Tensor& input, bool all_outs, bool with_aux);

  DartsBackboneOptions options_;
  int64_t out_channels_ = 0;
  int64_t auxiliary_index_ = -1;
  std::shared_ptr<nn::Sequential> stem_;
  std::shared_ptr<nn::Sequential> cells_;  // a list, as nodes_
  std::shared_ptr<DartsAuxiliaryHead> aux_;  // "auxliary_module", as MMRazor names it
};

/// Registers DartsZero, DartsSkipConnect, DartsPoolBN, DartsSepConv, DartsDilConv and
/// DartsBackbone and DartsSubnetClsHead in the model registry (register_architectures calls
/// it). DartsBackbone's table holds MMRazor's keys: in_channels, base_channels, num_layers,
/// num_nodes, stem_multiplier, out_indices, auxliary, aux_channels, aux_out_channels,
/// `mutable_cfg` (an op mutable table whose candidates get in_channels, out_channels and
/// stride as module_kwargs, and the edge's alias), `route_cfg` (a route table; it gets `edges`
/// and the node's alias) and norm_cfg = {type = "BN", affine}.
void register_darts_architectures();

}  // namespace razor
