#include "apps/register_all.h"

#include "components/distill/recorder.h"
#include "components/mutables/register_mutables.h"
#include "components/predictors/predictor_handler.h"
#include "components/quant/register_quant.h"

#include "engine/default_hooks.h"
#include "engine/loop.h"
#include "engine/metric.h"
#include "engine/optim_wrapper.h"
#include "engine/param_scheduler.h"

namespace razor {

void register_datasets();
void register_architectures();
void register_algorithms();
void register_distill_losses();

void register_all() {
  register_hooks();
  register_loops();
  register_metrics();
  register_optimizers();
  register_schedulers();
  register_datasets();
  register_mutables();
  register_architectures();
  register_distill_losses();
  register_recorders();
  register_predictors();
  quant::register_quant();
  register_algorithms();
}

}  // namespace razor
