#include "components/channel/group_fisher_channel_unit.h"

#include <torch/torch.h>

#include "components/nn/conv.h"
#include "components/nn/linear.h"
#include "components/nn/weighted_op.h"
#include "engine/dist.h"
#include "engine/error.h"

namespace razor::channel {

GroupFisherChannelUnit::GroupFisherChannelUnit(ChannelUnitSpec spec, MutableChannelUnitOptions options)
    : L1MutableChannelUnit(std::move(spec), std::move(options)) {
  fisher_ = torch::zeros({num_channels()}, torch::kDouble);
  // Both sides' convs and linears: inputs and gradients where the unit's channels are read,
  // output shapes for what a channel costs.
  for (const auto* side : {&this->spec().output_related, &this->spec().input_related}) {
    for (const auto& c : *side) {
      if (!dynamic_cast<nn::WeightedOp*>(c.module)) continue;
      records_.push_back({c.module, c.is_output, c.start, c.expand_ratio, {}});
    }
  }
}

GroupFisherChannelUnit::~GroupFisherChannelUnit() { end_record(); }

bool GroupFisherChannelUnit::is_mutable() const {
  if (options().mutate_linear) return true;
  for (const auto& c : spec().input_related) {
    if (dynamic_cast<nn::Linear*>(c.module)) return false;
  }
  return true;
}

void GroupFisherChannelUnit::start_record() {
  end_record();
  for (auto& record : records_) {
    Record* r = &record;
    handles_.push_back(r->module->add_forward_hook([r](nn::Module&, const nn::Inputs& inputs, torch::Tensor& output) {
      auto call = std::make_shared<Call>();
      call->in_shape = inputs.at(0).sizes().vec();
      call->out_shape = output.sizes().vec();
      if (!r->is_output && inputs.at(0).requires_grad()) {
        call->input = inputs.at(0).detach();
        // The loss's gradient at this input, when backward reaches it.
        std::weak_ptr<Call> weak = call;
        inputs.at(0).register_hook([weak](const torch::Tensor& grad) {
          if (auto alive = weak.lock()) alive->grad = grad.detach();
        });
      }
      r->calls.push_back(std::move(call));
    }));
  }
}

void GroupFisherChannelUnit::end_record() {
  for (auto& handle : handles_) handle.remove();
  handles_.clear();
}

void GroupFisherChannelUnit::reset_recorded() {
  for (auto& record : records_) record.calls.clear();
}

torch::Tensor GroupFisherChannelUnit::batch_fisher() const {
  torch::NoGradGuard no_grad;
  torch::Tensor per_sample;  // [N, C]: F summed over the ops reading the unit
  for (const auto& r : records_) {
    if (r.is_output) continue;
    auto* op = dynamic_cast<nn::WeightedOp*>(r.module);
    for (const auto& call : r.calls) {
      if (!call->input.defined() || !call->grad.defined()) continue;
      torch::Tensor f = (call->input * call->grad).to(torch::kDouble);
      if (f.dim() == 4) f = f.sum({2, 3});
      // The op computed with its active inputs: back to its full input, then this unit's range.
      const int64_t n = f.size(0);
      torch::Tensor full = torch::zeros({n, op->in_width()}, f.options());
      const torch::Tensor& active = op->active_in();
      if (active.defined()) {
        full.index_copy_(1, active.to(f.device()), f);
      } else {
        full.copy_(f);
      }
      const torch::Tensor mine =
          full.narrow(1, r.start, num_channels() * r.expand_ratio).reshape({n, num_channels(), r.expand_ratio}).sum(2);
      per_sample = per_sample.defined() ? per_sample + mine : mine;
    }
  }
  if (!per_sample.defined()) return torch::zeros({num_channels()}, torch::kDouble);
  return per_sample.pow(2).sum(0).cpu();
}

double GroupFisherChannelUnit::delta_flops() const {
  double delta = 0;
  for (const auto& r : records_) {
    for (const auto& call : r.calls) {
      if (auto* conv = dynamic_cast<nn::Conv2d*>(r.module)) {
        const auto& o = conv->options();
        const double hw = static_cast<double>(call->out_shape[2] * call->out_shape[3]);
        const double kernel = static_cast<double>(o.kernel_size * o.kernel_size);
        if (conv->depthwise()) {
          delta += hw * kernel;
        } else {
          // An output channel reads every active input; an input channel feeds every output.
          delta += hw * kernel * static_cast<double>(r.is_output ? call->in_shape[1] : call->out_shape[1]);
        }
      } else {
        delta += static_cast<double>(r.is_output ? call->in_shape.back() : call->out_shape.back());
      }
    }
  }
  return delta;
}

double GroupFisherChannelUnit::delta_memory() const {
  double delta = 0;
  for (const auto& r : records_) {
    if (!r.is_output) continue;
    for (const auto& call : r.calls) {
      delta += call->out_shape.size() == 4 ? static_cast<double>(call->out_shape[2] * call->out_shape[3]) : 1.0;
    }
  }
  return delta;
}

void GroupFisherChannelUnit::update_fisher(const torch::Tensor& kept, bool across_ranks) {
  torch::Tensor batch = batch_fisher();
  if (across_ranks && dist::world_size() > 1) dist::all_reduce(batch);
  const std::string& type = options().normalization_type;
  if (type == "flops") {
    const double delta = delta_flops();
    RAZOR_CHECK(delta > 0, name(), ": no recorded call gives the FLOPs of a channel");
    batch = batch / (delta / 1e9);
  } else if (type == "act") {
    const double delta = delta_memory();
    RAZOR_CHECK(delta > 0, name(), ": no recorded call gives the activations of a channel");
    batch = batch / (delta / 1e6);
  }
  // Pruned channels record nothing: their Fisher stays.
  fisher_ = fisher_ + batch.masked_fill(kept.logical_not(), 0.0);
}

void GroupFisherChannelUnit::reset_fisher() { fisher_.zero_(); }

void GroupFisherChannelUnit::set_accumulated(const torch::Tensor& fisher) {
  RAZOR_CHECK(fisher.dim() == 1 && fisher.size(0) == num_channels(), name(), ": expected ", num_channels(),
              " Fisher values, got ", fisher.sizes());
  fisher_ = fisher.to(torch::kDouble).cpu().clone();
}

torch::Tensor GroupFisherChannelUnit::fisher_importance(const torch::Tensor& kept) const {
  torch::Tensor importance = fisher_.clone();
  return importance.masked_fill_(kept.logical_not(), importance.max().item<double>() + 1);
}

Json GroupFisherChannelUnit::init_args() const {
  Json args = SequentialMutableChannelUnit::init_args();
  args["normalization_type"] = options().normalization_type;
  args["mutate_linear"] = options().mutate_linear;
  return args;
}

}  // namespace razor::channel
