#include "engine/data_parallel.h"

#include <unordered_map>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/logger.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/torch.h>

#include "engine/dist.h"
#include "engine/error.h"
#include "engine/optim_wrapper_dict.h"

namespace razor {

namespace {

// As DistributedDataParallel: a small first bucket so that communication starts early.
constexpr int64_t kFirstBucketBytes = 1024 * 1024;

}  // namespace

GradientSync::GradientSync(std::vector<torch::Tensor> parameters, std::vector<std::string> names,
                           const DataParallelOptions& options)
    : find_unused_(options.find_unused_parameters) {
  RAZOR_ASSERT(dist::process_group());
  const int64_t cap = options.bucket_cap_mb * 1024 * 1024;
  // Gradients become ready roughly in reverse order of the parameters: bucket them so.
  std::vector<int64_t> order(parameters.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(order.size() - 1 - i);
  std::vector<bool> sparse(parameters.size(), false);
  auto assignment = c10d::compute_bucket_assignment_by_size(
      parameters, {static_cast<size_t>(kFirstBucketBytes), static_cast<size_t>(cap)}, sparse, order);
  std::unordered_map<size_t, std::string> param_names;
  for (size_t i = 0; i < names.size(); ++i) param_names[i] = names[i];
  reducer_ = std::make_shared<c10d::Reducer>(std::move(parameters), std::get<0>(assignment),
                                             std::get<1>(assignment), dist::process_group(), sparse, cap,
                                             find_unused_, /*gradient_as_bucket_view=*/false,
                                             std::move(param_names), kFirstBucketBytes);
  logger_ = std::make_shared<c10d::Logger>(reducer_);
  reducer_->set_logger(logger_);
}

// The Logger goes first: its destructor reads the Reducer.
GradientSync::~GradientSync() { logger_.reset(); }

void GradientSync::backward(const torch::Tensor& loss) {
  try {
    reducer_->prepare_for_forward();
    // Only with find_unused_parameters does the Reducer walk the graph from the outputs.
    reducer_->prepare_for_backward(find_unused_ ? std::vector<torch::Tensor>{loss}
                                                : std::vector<torch::Tensor>{});
  } catch (const c10::Error& e) {
    throw runtime_error("data-parallel gradient sync: ", e.what_without_backtrace(),
                        "\nIf some parameters get no gradient in an iteration (a one-shot NAS subnet, an unused "
                        "head), set model_wrapper_cfg.find_unused_parameters = true");
  }
  try {
    loss.backward();
  } catch (const Error&) {
    throw;  // already described (a SyncBatchNorm collective)
  } catch (const std::exception& e) {
    throw runtime_error(dist::describe_failure("the gradient all-reduce", e.what()));
  }
}

void broadcast_module_states(torch::nn::Module& model) {
  std::vector<torch::Tensor> tensors;
  for (auto& p : model.parameters()) tensors.push_back(p.data());
  for (auto& b : model.buffers()) tensors.push_back(b);
  dist::broadcast(tensors, 0);
}

DataParallel::DataParallel(torch::nn::Module& model, const DataParallelOptions& options, bool sync_bn)
    : model_(model), options_(options) {
  for (auto& module : model.modules(/*include_self=*/true)) {
    if (auto* norm = dynamic_cast<CrossRankNorm*>(module.get())) norm->set_sync_across_ranks(sync_bn);
  }
  if (sync_bn) options_.broadcast_buffers = false;
  broadcast_module_states(model);
  if (options_.broadcast_buffers) {
    for (auto& b : model.buffers()) buffers_.push_back(b);
  }
}

void DataParallel::attach(OptimWrapper& optim) {
  if (auto* dict = dynamic_cast<OptimWrapperDict*>(&optim)) {
    for (const auto& item : dict->items()) attach(*item.second);
    return;
  }
  std::unordered_map<const void*, std::string> names;
  for (const auto& item : model_.named_parameters()) names[item.value().unsafeGetTensorImpl()] = item.key();
  std::vector<torch::Tensor> parameters;
  std::vector<std::string> parameter_names;
  for (const auto& p : optim.parameters()) {
    if (!p.requires_grad()) continue;
    parameters.push_back(p);
    auto it = names.find(p.unsafeGetTensorImpl());
    parameter_names.push_back(it == names.end() ? std::string("?") : it->second);
  }
  if (parameters.empty()) return;
  auto sync = std::make_shared<GradientSync>(parameters, parameter_names, options_);
  optim.set_gradient_sync(sync);
  syncs_.push_back(sync);
}

void DataParallel::before_train_step() {
  if (buffers_.empty()) return;
  dist::broadcast(buffers_, 0);
}

}  // namespace razor
