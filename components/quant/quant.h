#pragma once
// Umbrella header of razor's quantisation building blocks: observers, fake quantisers, the
// qconfig parser and the registries.
#include "components/quant/fake_quantize.h"
#include "components/quant/histogram_observer.h"
#include "components/quant/learnable_fake_quantize.h"
#include "components/quant/lsq_observers.h"
#include "components/quant/minmax_observers.h"
#include "components/quant/mse_observer.h"
#include "components/quant/observer.h"
#include "components/quant/percentile_observer.h"
#include "components/quant/qconfig.h"
#include "components/quant/qscheme.h"
#include "components/quant/quantizer.h"
#include "components/quant/register_quant.h"
