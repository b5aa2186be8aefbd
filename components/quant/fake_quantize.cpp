#include "components/quant/fake_quantize.h"

#include <ATen/ops/fake_quantize_per_channel_affine.h>
#include <ATen/ops/fake_quantize_per_tensor_affine.h>

#include "components/quant/fake_quant_kernel.h"
#include "engine/error.h"

namespace razor::quant {

namespace detail {

bool FlagView::get(const torch::Tensor& flag) const {
  const void* data = flag.data_ptr();
  const int64_t version = flag._version();
  if (data != data_ || version != version_) {
    value_ = flag.item<uint8_t>() != 0;
    data_ = data;
    version_ = version;
  }
  return value_;
}

void FlagView::set(torch::Tensor& flag, bool value) {
  {
    torch::NoGradGuard no_grad;
    flag.fill_(value ? 1 : 0);
  }
  value_ = value;
  data_ = flag.data_ptr();
  version_ = flag._version();
}

}  // namespace detail

FakeQuantizer::FakeQuantizer(const std::string& type_name, std::shared_ptr<Observer> observer)
    : nn::Module(type_name), type_name_(type_name), observer_(std::move(observer)) {
  RAZOR_ASSERT(observer_ != nullptr);
  fake_quant_enabled_ = register_buffer("fake_quant_enabled", torch::ones({1}, torch::kUInt8));
  observer_enabled_ = register_buffer("observer_enabled", torch::ones({1}, torch::kUInt8));
  register_module("activation_post_process", observer_);
}

int64_t FakeQuantizer::axis_for(int64_t dim) const {
  const int64_t axis = observer_->ch_axis();
  return axis < 0 ? axis + dim : axis;
}

int64_t FakeQuantizer::initial_qparams_size() const {
  return per_channel() && observer_->num_channels() > 0 ? observer_->num_channels() : 1;
}

void FakeQuantizer::reset_statistics() { observer_->reset(); }

void FakeQuantizer::pretty_print(std::ostream& stream) const {
  stream << type_name_ << "(dtype=" << to_string(dtype()) << ", qscheme=" << to_string(qscheme())
         << ", quant_min=" << quant_min() << ", quant_max=" << quant_max();
  if (per_channel()) stream << ", ch_axis=" << ch_axis();
  stream << ")";
}

FakeQuantize::FakeQuantize(std::shared_ptr<Observer> observer)
    : FakeQuantizer("FakeQuantize", std::move(observer)) {
  const int64_t n = initial_qparams_size();
  scale_ = register_buffer("scale", torch::ones({n}, torch::kFloat));
  zero_point_ = register_buffer("zero_point", torch::zeros({n}, torch::kInt));
}

QParams FakeQuantize::calculate_qparams() { return observer().calculate_qparams(); }

void FakeQuantize::reset_statistics() {
  FakeQuantizer::reset_statistics();
  torch::NoGradGuard no_grad;
  scale_.fill_(1.0);
  zero_point_.zero_();
}

void FakeQuantizer::check_input(const torch::Tensor& x) const {
  RAZOR_CHECK(x.scalar_type() == torch::kFloat, type_name_, ": fake quantisation computes in float32, got a ",
              c10::toString(x.scalar_type()), " input; quantise with dtype = \"float32\" in the config");
}

torch::Tensor FakeQuantize::forward(const torch::Tensor& x) {
  check_input(x);
  if (observer_enabled()) {
    torch::NoGradGuard no_grad;
    observer().observe(x.detach());
    const QParams qp = observer().calculate_qparams();
    if (!scale_.sizes().equals(qp.scale.sizes())) {
      scale_.resize_(qp.scale.sizes());
      zero_point_.resize_(qp.zero_point.sizes());
    }
    scale_.copy_(qp.scale);
    zero_point_.copy_(qp.zero_point);
  }
  if (!fake_quant_enabled()) return x;
  if (per_channel()) {
    return at::fake_quantize_per_channel_affine(x, scale_, zero_point_, axis_for(x.dim()),
                                                quant_min(), quant_max());
  }
  if (fused_fake_quant_applies(x)) return fake_quantize_per_tensor(x, scale_, zero_point_, quant_min(), quant_max());
  return at::fake_quantize_per_tensor_affine(x, scale_, zero_point_, quant_min(), quant_max());
}

std::vector<FakeQuantizer*> fake_quantizers(torch::nn::Module& root) {
  std::vector<FakeQuantizer*> out;
  if (auto* self = dynamic_cast<FakeQuantizer*>(&root)) out.push_back(self);
  // Never include_self: that needs shared_from_this, which a module on the stack lacks.
  for (const auto& module : root.modules(/*include_self=*/false)) {
    if (auto* fq = dynamic_cast<FakeQuantizer*>(module.get())) out.push_back(fq);
  }
  return out;
}

void enable_observer(torch::nn::Module& root, bool on) {
  for (auto* fq : fake_quantizers(root)) fq->enable_observer(on);
}

void enable_fake_quant(torch::nn::Module& root, bool on) {
  for (auto* fq : fake_quantizers(root)) fq->enable_fake_quant(on);
}

void reset_statistics(torch::nn::Module& root) {
  for (auto* fq : fake_quantizers(root)) fq->reset_statistics();
}

}  // namespace razor::quant
