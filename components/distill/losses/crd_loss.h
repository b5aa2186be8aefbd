#pragma once
// CRDLoss, Contrastive Representation Distillation (MMRazor crd_loss.py, after RepDistiller):
// two memory banks of sample_n embeddings (memory_v1 holds student embeddings, memory_v2
// teacher ones). For each sample, its own bank row (the positive) and neg_num random rows
// (negatives) are scored against the other side's embedding, exp(<m, f> / temperature) / Z,
// with Z fixed at the first call to mean(score) * sample_n; the NCE loss of the student side
// plus that of the teacher side is returned. Afterwards the rows of the batch's samples move
// towards the new embeddings: m <- normalize(momentum * m + (1 - momentum) * f).
//
// State lives in registered buffers, so that checkpoints keep it: memory_v1, memory_v2,
// normalizers (Z_s, Z_t; -1 until set) and sampler_state (seed, number of draws). Negatives
// are drawn uniformly (MMRazor's alias sampler over uniform unigrams) from a CPU torch
// generator seeded from (seed, draws), so a resumed run draws what the uninterrupted run
// would have.
//
// Unlike MMRazor, which stores loss_weight but never applies it, razor multiplies the loss by
// loss_weight (MMRazor configs that set it, e.g. 0.8 in crd_neck_r50_r18, were silently
// running at weight 1).
#include <cstdint>
#include <memory>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

struct CRDLossOptions {
  /// Multiplies the loss (applied by razor, unlike MMRazor).
  double loss_weight = 1.0;
  /// Temperature of the scores.
  double temperature = 0.07;
  /// Negatives per sample (K).
  int64_t neg_num = 16384;
  /// Size of the dataset: rows of each memory bank.
  int64_t sample_n = 50000;
  /// Embedding size (the CRDConnector's dim_out).
  int64_t dim_out = 128;
  /// Memory update momentum.
  double momentum = 0.5;
  /// Added to the NCE denominators.
  double eps = 1e-7;
  /// Seeds the memory initialisation and the negative sampling (the run's seed when built
  /// from a config).
  uint64_t seed = 0;

  // clang-format off
  CRDLossOptions& with_loss_weight(double v) { loss_weight = v; return *this; }
  CRDLossOptions& with_temperature(double v) { temperature = v; return *this; }
  CRDLossOptions& with_neg_num(int64_t v) { neg_num = v; return *this; }
  CRDLossOptions& with_sample_n(int64_t v) { sample_n = v; return *this; }
  CRDLossOptions& with_dim_out(int64_t v) { dim_out = v; return *this; }
  CRDLossOptions& with_momentum(double v) { momentum = v; return *this; }
  CRDLossOptions& with_eps(double v) { eps = v; return *this; }
  CRDLossOptions& with_seed(uint64_t v) { seed = v; return *this; }
  // clang-format on
};

/// Arguments: s_feats, t_feats (N x dim_out embeddings, L2-normalised by CRDConnector),
/// data_samples (the N dataset indices of the batch, int64; MMRazor passes data samples
/// carrying `sample_idx`), and optionally contrast_sample_idxs (N x (neg_num + 1) bank rows
/// to score, column 0 the positive; drawn at random when absent).
class CRDLoss : public DistillLoss {
 public:
  explicit CRDLoss(CRDLossOptions options = {});
  static std::shared_ptr<DistillLoss> from_args(Args& args, const BuildContext& context);

  std::vector<LossArgument> arguments() const override;
  torch::Tensor forward(const LossInputs& inputs) override;
  const CRDLossOptions& options() const { return options_; }

  const torch::Tensor& memory_v1() const { return memory_v1_; }
  const torch::Tensor& memory_v2() const { return memory_v2_; }
  /// (Z_s, Z_t), -1 until the first call sets them.
  const torch::Tensor& normalizers() const { return normalizers_; }

 private:
  torch::Tensor draw_negatives(int64_t batch_size);
  torch::Tensor contrast_loss(const torch::Tensor& scores) const;

  CRDLossOptions options_;
  torch::Tensor memory_v1_, memory_v2_, normalizers_, sampler_state_;
};

}  // namespace razor::distill
