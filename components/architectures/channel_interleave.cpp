#include "components/architectures/channel_interleave.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include "engine/error.h"

namespace razor {

namespace {

/// Floats per task: below this, waking the second thread costs more than it saves.
constexpr int64_t kGrain = 32768;

/// Whether the fused kernels handle x: CPU float32, 4-d, channels adjacent in memory.
bool fused_applies(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.layout() == torch::kStrided &&
         x.dim() == 4 && (x.stride(1) == 1 || x.size(1) == 1);
}

/// Calls f(pixel, n, h, w) for every pixel of an N x H x W grid, in parallel chunks of
/// about kGrain floats (`floats_per_pixel` each).
template <class F>
void for_each_pixel(int64_t n, int64_t h, int64_t w, int64_t floats_per_pixel, const F& f) {
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, floats_per_pixel));
  at::parallel_for(0, n * h * w, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) f(p, p / (h * w), (p / w) % h, p % w);
  });
}

/// The forward kernel: a fresh channels_last N x 2C x H x W tensor.
torch::Tensor interleave_kernel(const torch::Tensor& a, const torch::Tensor& b) {
  const int64_t n = a.size(0), c = a.size(1), h = a.size(2), w = a.size(3);
  torch::Tensor out = torch::empty({n, 2 * c, h, w}, a.options().memory_format(torch::MemoryFormat::ChannelsLast));
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const auto as = a.strides(), bs = b.strides();
  for_each_pixel(n, h, w, 2 * c, [&](int64_t p, int64_t i, int64_t y, int64_t x) {
    const float* ra = pa + i * as[0] + y * as[2] + x * as[3];
    const float* rb = pb + i * bs[0] + y * bs[2] + x * bs[3];
    float* ro = po + p * 2 * c;
    for (int64_t j = 0; j < c; ++j) {
      ro[2 * j] = ra[j];
      ro[2 * j + 1] = rb[j];
    }
  });
  return out;
}

/// The backward kernel: the even and the odd channels of g as two channels_last tensors.
std::pair<torch::Tensor, torch::Tensor> split_kernel(const torch::Tensor& g) {
  const int64_t n = g.size(0), c = g.size(1) / 2, h = g.size(2), w = g.size(3);
  const auto options = g.options().memory_format(torch::MemoryFormat::ChannelsLast);
  torch::Tensor ga = torch::empty({n, c, h, w}, options), gb = torch::empty({n, c, h, w}, options);
  const float* pg = g.data_ptr<float>();
  float* pa = ga.data_ptr<float>();
  float* pb = gb.data_ptr<float>();
  const auto gs = g.strides();
  for_each_pixel(n, h, w, 2 * c, [&](int64_t p, int64_t i, int64_t y, int64_t x) {
    const float* rg = pg + i * gs[0] + y * gs[2] + x * gs[3];
    float* ra = pa + p * c;
    float* rb = pb + p * c;
    for (int64_t j = 0; j < c; ++j) {
      ra[j] = rg[2 * j];
      rb[j] = rg[2 * j + 1];
    }
  });
  return {ga, gb};
}

struct InterleaveChannels : torch::autograd::Function<InterleaveChannels> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& a, const torch::Tensor& b) {
    return interleave_kernel(a, b);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grad) {
    const torch::Tensor& g = grad[0];
    if (fused_applies(g)) {
      auto [ga, gb] = split_kernel(g);
      return {ga, gb};
    }
    const torch::Tensor pairs = g.reshape({g.size(0), g.size(1) / 2, 2, g.size(2), g.size(3)});
    return {pairs.select(2, 0), pairs.select(2, 1)};
  }
};

/// ATen's copies into the two interleaved views of the output, in a's memory format.
torch::Tensor interleave_by_copies(const torch::Tensor& a, const torch::Tensor& b) {
  const int64_t n = a.size(0), c = a.size(1), h = a.size(2), w = a.size(3);
  torch::Tensor out = torch::empty({n, 2 * c, h, w}, a.options().memory_format(a.suggest_memory_format()));
  // Splitting the channel dimension into (c, 2) is a view in either memory format.
  const torch::Tensor pairs = out.view({n, c, 2, h, w});
  pairs.select(2, 0).copy_(a);
  pairs.select(2, 1).copy_(b);
  return out;
}

}  // namespace

torch::Tensor interleave_channels(const torch::Tensor& a, const torch::Tensor& b) {
  RAZOR_ASSERT(a.dim() == 4 && a.sizes() == b.sizes());
  const bool fused =
      fused_applies(a) && fused_applies(b) && a.suggest_memory_format() == torch::MemoryFormat::ChannelsLast;
  if (!fused) return interleave_by_copies(a, b);
  if (torch::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad())) {
    return InterleaveChannels::apply(a, b);
  }
  return interleave_kernel(a, b);
}

}  // namespace razor
