#include "components/nn/module.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor::nn {

void HookHandle::remove() {
  if (remover_ && !owner_.expired()) remover_();
  remover_ = nullptr;
}

Module::Module() : hooks_(std::make_shared<Hooks>()) {}

Module::Module(const std::string& name) : torch::nn::Module(name), hooks_(std::make_shared<Hooks>()) {}

torch::Tensor Module::operator()(const torch::Tensor& input) {
  if (hooks_->pre.empty() && hooks_->post.empty()) return forward(input);
  return call_hooked({input}, /*unary=*/true);
}

torch::Tensor Module::operator()(Inputs inputs) {
  if (hooks_->pre.empty() && hooks_->post.empty()) return forward_inputs(inputs);
  return call_hooked(std::move(inputs), /*unary=*/false);
}

torch::Tensor Module::call_hooked(Inputs inputs, bool unary) {
  // Copy the lists: a hook may remove itself (or others) while running.
  const auto pre = hooks_->pre;
  for (const auto& item : pre) item.hook(*this, inputs);
  torch::Tensor output = unary ? forward(inputs.at(0)) : forward_inputs(inputs);
  const auto post = hooks_->post;
  for (const auto& item : post) item.hook(*this, inputs, output);
  return output;
}

torch::Tensor Module::forward(const torch::Tensor& input) {
  throw std::logic_error("module " + name() + " at '" + path_ + "' does not take one input");
  (void)input;
}

torch::Tensor Module::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() == 1);
  return forward(inputs[0]);
}

template <class Hook>
HookHandle Module::add_hook(std::vector<Registered<Hook>> Hooks::*list, Hook hook, bool keeps_tensors) {
  const int64_t id = hooks_->next_id++;
  ((*hooks_).*list).push_back({id, std::move(hook), keeps_tensors});
  std::weak_ptr<Hooks> weak = hooks_;
  return HookHandle(hooks_, [weak, list, id] {
    if (auto hooks = weak.lock()) {
      auto& entries = (*hooks).*list;
      entries.erase(std::remove_if(entries.begin(), entries.end(), [id](const auto& e) { return e.id == id; }),
                    entries.end());
    }
  });
}

HookHandle Module::add_forward_pre_hook(PreHook hook, bool keeps_tensors) {
  return add_hook(&Hooks::pre, std::move(hook), keeps_tensors);
}

HookHandle Module::add_forward_hook(PostHook hook, bool keeps_tensors) {
  return add_hook(&Hooks::post, std::move(hook), keeps_tensors);
}

size_t Module::num_hooks() const { return hooks_->pre.size() + hooks_->post.size(); }

size_t Module::num_tensor_hooks() const {
  const auto keeping = [](const auto& e) { return e.keeps_tensors; };
  return std::count_if(hooks_->pre.begin(), hooks_->pre.end(), keeping) +
         std::count_if(hooks_->post.begin(), hooks_->post.end(), keeping);
}

// Never include_self: that needs shared_from_this, which a module on the stack lacks.
void assign_paths(torch::nn::Module& root) {
  if (auto* module = dynamic_cast<Module*>(&root)) module->set_path("");
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    if (auto* module = dynamic_cast<Module*>(item.value().get())) module->set_path(item.key());
  }
}

std::vector<std::string> module_paths(torch::nn::Module& root) {
  std::vector<std::string> out;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    if (dynamic_cast<Module*>(item.value().get())) out.push_back(item.key());
  }
  return out;
}

Module& find_module(torch::nn::Module& root, const std::string& path) {
  if (path.empty()) {
    if (auto* module = dynamic_cast<Module*>(&root)) return *module;
    throw config_error("the root module is not a razor module and cannot be hooked");
  }
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    if (item.key() == path) {
      if (auto* module = dynamic_cast<Module*>(item.value().get())) return *module;
      throw config_error("module \"", path, "\" is not a razor module and cannot be hooked");
    }
  }
  const auto paths = module_paths(root);
  // Suggest the few closest names: a typo is usually within a few edits.
  std::vector<std::pair<size_t, std::string>> ranked;
  for (const auto& candidate : paths) ranked.emplace_back(edit_distance(path, candidate), candidate);
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> closest;
  for (size_t i = 0; i < ranked.size() && i < 5; ++i) closest.push_back(ranked[i].second);
  throw config_error("no module named \"", path, "\" in the model; nearest: ", join(closest, ", "));
}

}  // namespace razor::nn
