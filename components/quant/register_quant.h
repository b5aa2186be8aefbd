#pragma once
// The quantisation registries: "observers" and "fake_quants", filled by register_quant().
#include <memory>

#include "components/quant/fake_quantize.h"
#include "components/quant/observer.h"
#include "engine/args.h"
#include "engine/registry.h"

namespace razor::quant {

/// "observers": MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver,
/// MovingAveragePerChannelMinMaxObserver, HistogramObserver, PercentileObserver, MSEObserver,
/// LSQObserver, LSQPerChannelObserver. Every table takes the ObserverOptions keys `dtype`
/// ("quint8" | "qint8"), `qscheme` ("per_tensor_affine", "per_tensor_symmetric",
/// "per_channel_affine", "per_channel_symmetric"), `reduce_range`, `quant_min`, `quant_max`,
/// `eps`; the per-channel ones `ch_axis` and `num_channels` too; and their own:
/// `averaging_constant` (the moving averages, PercentileObserver), `bins`, `upsample_rate`
/// (HistogramObserver), `percentile` (PercentileObserver), `p`, `num_candidates` (MSEObserver).
Registry<Observer>& observer_registry();

/// "fake_quants": FakeQuantize, LearnableFakeQuantize (own keys `scale`, `zero_point`,
/// `use_grad_scaling`, `zero_point_trainable`). `observer` is an observers table (default
/// {type = "MovingAverageMinMaxObserver"}); every other key of the table goes on to the
/// observer, as torch's **observer_kwargs do (a key set in both places is an error).
/// LearnableFakeQuantize gives its observer the dtype's 8-bit range when none is set
/// (MMRazor's quant_min = 0, quant_max = 255 defaults), so it is always a custom range.
Registry<FakeQuantizer>& fake_quant_registry();

/// Fills both registries (once; later calls do nothing).
void register_quant();

/// The ObserverOptions keys of an observer table (`per_channel`: also ch_axis, num_channels).
ObserverOptions read_observer_options(Args& args, bool per_channel);

}  // namespace razor::quant
