#include "components/distill/losses/crd_loss.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {

// splitmix64: decorrelates the seeds of consecutive draws.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

at::Generator generator_for(uint64_t seed, uint64_t step) {
  return at::make_generator<at::CPUGeneratorImpl>(mix(seed ^ mix(step)));
}

}  // namespace

CRDLoss::CRDLoss(CRDLossOptions options)
    : DistillLoss("CRDLoss", options.loss_weight), options_(options) {
  RAZOR_CHECK(options_.neg_num > 0, "CRDLoss: neg_num must be positive, got ", options_.neg_num);
  RAZOR_CHECK(options_.sample_n > 0, "CRDLoss: sample_n must be positive, got ",
              options_.sample_n);
  RAZOR_CHECK(options_.dim_out > 0, "CRDLoss: dim_out must be positive, got ", options_.dim_out);
  RAZOR_CHECK(options_.temperature > 0, "CRDLoss: temperature must be positive, got ",
              options_.temperature);
  const double stdv = 1.0 / std::sqrt(options_.dim_out / 3.0);
  auto gen = generator_for(options_.seed, ~uint64_t(0));
  auto init = [&] {
    return torch::rand({options_.sample_n, options_.dim_out}, gen, torch::kFloat) * (2 * stdv) -
           stdv;
  };
  memory_v1_ = register_buffer("memory_v1", init());
  memory_v2_ = register_buffer("memory_v2", init());
  normalizers_ = register_buffer("normalizers", torch::full({2}, -1.0, torch::kFloat));
  sampler_state_ = register_buffer(
      "sampler_state", torch::tensor({static_cast<int64_t>(options_.seed), int64_t(0)}, torch::kLong));
}

std::shared_ptr<DistillLoss> CRDLoss::from_args(Args& args, const BuildContext& context) {
  CRDLossOptions options;
  options.loss_weight = args.get<double>("loss_weight", options.loss_weight);
  options.temperature = args.get<double>("temperature", options.temperature);
  if (options.temperature <= 0) args.fail("temperature", "must be positive");
  options.neg_num = args.get<int64_t>("neg_num", options.neg_num);
  if (options.neg_num <= 0) args.fail("neg_num", "must be positive");
  options.sample_n = args.get<int64_t>("sample_n", options.sample_n);
  if (options.sample_n <= 0) args.fail("sample_n", "must be positive (the dataset size)");
  options.dim_out = args.get<int64_t>("dim_out", options.dim_out);
  if (options.dim_out <= 0) args.fail("dim_out", "must be positive");
  options.momentum = args.get<double>("momentum", options.momentum);
  options.eps = args.get<double>("eps", options.eps);
  options.seed = context.seed;
  return std::make_shared<CRDLoss>(options);
}

std::vector<LossArgument> CRDLoss::arguments() const {
  return {{"s_feats"}, {"t_feats"}, {"data_samples"}, {"contrast_sample_idxs", false}};
}

torch::Tensor CRDLoss::draw_negatives(int64_t batch_size) {
  auto state = sampler_state_.to(torch::kCPU);
  const auto seed = static_cast<uint64_t>(state[0].item<int64_t>());
  const auto step = static_cast<uint64_t>(state[1].item<int64_t>());
  auto gen = generator_for(seed, step);
  sampler_state_[1].add_(1);
  return torch::randint(0, options_.sample_n, {batch_size, options_.neg_num + 1}, gen,
                        torch::kLong);
}

torch::Tensor CRDLoss::contrast_loss(const torch::Tensor& scores) const {
  const int64_t batch_size = scores.size(0);
  const int64_t m = scores.size(1) - 1;
  const double noise = static_cast<double>(m) / static_cast<double>(options_.sample_n);
  auto positive = scores.select(1, 0);
  auto log_d1 = torch::log(positive / (positive + noise + options_.eps));
  auto negative = scores.narrow(1, 1, m);
  auto log_d0 = torch::log(noise / (negative + noise + options_.eps));
  return -(log_d1.sum() + log_d0.sum()) / static_cast<double>(batch_size);
}

torch::Tensor CRDLoss::forward(const LossInputs& inputs) {
  const auto& s_feats = loss_input(inputs, "s_feats", name());
  const auto& t_feats = loss_input(inputs, "t_feats", name());
  const int64_t bsz = s_feats.size(0);
  const int64_t dim = options_.dim_out, k1 = options_.neg_num + 1;
  auto s = s_feats.reshape({bsz, -1});
  auto t = t_feats.reshape({bsz, -1});
  RAZOR_CHECK(s.size(1) == dim && t.sizes() == s.sizes(), "CRDLoss: expected N x dim_out (", dim,
              ") embeddings, got ", s_feats.sizes(), " and ", t_feats.sizes());
  const auto device = memory_v1_.device();
  auto idx = loss_input(inputs, "data_samples", name()).reshape({-1}).to(device, torch::kLong);
  RAZOR_CHECK(idx.size(0) == bsz, "CRDLoss: data_samples holds ", idx.size(0),
              " indices for a batch of ", bsz);
  RAZOR_CHECK(idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < options_.sample_n,
              "CRDLoss: a data_samples index is outside [0, sample_n = ", options_.sample_n, ")");

  torch::Tensor sample_idx = optional_input(inputs, "contrast_sample_idxs");
  if (sample_idx.defined()) {
    sample_idx = sample_idx.to(device, torch::kLong);
    RAZOR_CHECK(sample_idx.dim() == 2 && sample_idx.size(0) == bsz && sample_idx.size(1) == k1,
                "CRDLoss: contrast_sample_idxs must be N x (neg_num + 1) = ", bsz, " x ", k1,
                ", got ", sample_idx.sizes());
  } else {
    sample_idx = draw_negatives(bsz).to(device);
    sample_idx.select(1, 0).copy_(idx);
  }

  auto flat_idx = sample_idx.reshape({-1});
  auto w_s = memory_v1_.index_select(0, flat_idx).view({bsz, k1, dim}).to(t.scalar_type());
  auto w_t = memory_v2_.index_select(0, flat_idx).view({bsz, k1, dim}).to(s.scalar_type());
  auto out_t = torch::exp(w_s.bmm(t.view({bsz, dim, 1})) / options_.temperature);
  auto out_s = torch::exp(w_t.bmm(s.view({bsz, dim, 1})) / options_.temperature);

  {
    torch::NoGradGuard no_grad;
    if (normalizers_[0].item<double>() < 0) {
      normalizers_[0].fill_(out_s.mean().item<double>() * options_.sample_n);
    }
    if (normalizers_[1].item<double>() < 0) {
      normalizers_[1].fill_(out_t.mean().item<double>() * options_.sample_n);
    }
  }
  out_s = out_s / normalizers_[0].item<double>();
  out_t = out_t / normalizers_[1].item<double>();

  {
    torch::NoGradGuard no_grad;
    const double mu = options_.momentum;
    auto update = [&](torch::Tensor& memory, const torch::Tensor& feats) {
      auto rows = memory.index_select(0, idx) * mu + feats.detach().to(memory.scalar_type()) * (1 - mu);
      rows = rows / rows.pow(2).sum(1, true).sqrt();
      memory.index_copy_(0, idx, rows);
    };
    update(memory_v1_, s);
    update(memory_v2_, t);
  }
  return loss_weight_ * (contrast_loss(out_s) + contrast_loss(out_t));
}

}  // namespace razor::distill
