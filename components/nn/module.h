#pragma once
// The base of every razor op and block: a torch::nn::Module that knows its dotted name in
// the model and runs forward pre/post hooks. LibTorch has no forward hooks; these are what
// recorders, channel masks and fake quantisers attach to, by module name.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace razor::nn {

class Module;
struct OpDescription;

/// The inputs of one call. Unary ops see one tensor; Add, Concat, Mul and losses see several.
using Inputs = std::vector<torch::Tensor>;

/// Runs before forward; may replace the inputs.
using PreHook = std::function<void(Module& module, Inputs& inputs)>;
/// Runs after forward; sees the inputs and may replace the output.
using PostHook = std::function<void(Module& module, const Inputs& inputs, torch::Tensor& output)>;

/// Removes its hook when `remove()` is called (not on destruction: a hook outlives the
/// handle unless removed, as in PyTorch). Safe to call twice or after the module is gone.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<void> owner, std::function<void()> remover)
      : owner_(std::move(owner)), remover_(std::move(remover)) {}
  void remove();

 private:
  std::weak_ptr<void> owner_;
  std::function<void()> remover_;
};

class Module : public torch::nn::Module {
 public:
  Module();
  explicit Module(const std::string& name);

  /// Unary call: pre hooks -> forward -> post hooks.
  torch::Tensor operator()(const torch::Tensor& input);
  /// N-ary call (Add, Concat, Mul, losses): pre hooks -> forward_inputs -> post hooks.
  torch::Tensor operator()(Inputs inputs);

  /// `keeps_tensors` = false declares a hook that neither keeps nor changes the tensors it
  /// is given (BN re-estimation, which reads the BN's statistics): ops may then overwrite
  /// those tensors in place.
  HookHandle add_forward_pre_hook(PreHook hook, bool keeps_tensors = true);
  HookHandle add_forward_hook(PostHook hook, bool keeps_tensors = true);
  size_t num_hooks() const;
  /// The hooks that may keep or change the tensors they see.
  size_t num_tensor_hooks() const;

  /// Dotted path in the model, e.g. "backbone.layer1.0.conv1" ("" for the root or a
  /// module not yet named by `assign_paths`).
  const std::string& path() const { return path_; }
  void set_path(std::string path) { path_ = std::move(path); }

  /// What this op is to the passes that read the op graph (components/nn/op_description.h),
  /// written beside each op; null for blocks and for ops no pass knows.
  virtual const OpDescription* description() const { return nullptr; }

 protected:
  /// Unary ops and blocks implement this.
  virtual torch::Tensor forward(const torch::Tensor& input);
  /// N-ary ops implement this; the default calls forward(inputs[0]).
  virtual torch::Tensor forward_inputs(const Inputs& inputs);

 private:
  torch::Tensor call_hooked(Inputs inputs, bool unary);

  template <class Hook>
  struct Registered {
    int64_t id;
    Hook hook;
    bool keeps_tensors;
  };
  struct Hooks {
    std::vector<Registered<PreHook>> pre;
    std::vector<Registered<PostHook>> post;
    int64_t next_id = 0;
  };
  /// Appends to one of hooks_'s lists; the handle removes that entry again.
  template <class Hook>
  HookHandle add_hook(std::vector<Registered<Hook>> Hooks::*list, Hook hook, bool keeps_tensors);
  std::shared_ptr<Hooks> hooks_;
  std::string path_;
};

/// Sets `path()` of every razor::nn::Module under `root` to its dotted name from `root`.
void assign_paths(torch::nn::Module& root);

/// The razor module at dotted `path` under `root`. A missing name is a config error listing
/// the nearest module names.
Module& find_module(torch::nn::Module& root, const std::string& path);

/// All razor module paths under `root`, in registration order.
std::vector<std::string> module_paths(torch::nn::Module& root);

}  // namespace razor::nn
