#pragma once
// A restricted reader of Python pickles, for the data.pkl of files that Python's torch.save
// wrote. It runs the pickle machine over plain values (None, bool, int, float, str, bytes,
// list, tuple, dict) and rebuilds tensors from their storages; every other class becomes an
// inert Object that names its class, so that a checkpoint whose metadata holds Python
// objects (MMEngine's message hub, timm's argparse.Namespace) still yields its state dict.
// Nothing in a pickle is ever executed.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace razor::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

/// One Python value. `items` holds a list's or tuple's elements, and a dict's keys and
/// values alternately; an Object's constructor arguments are in `items` and the state its
/// BUILD set in `state`.
struct Value {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Tensor, Storage, Global, Object };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;  // String, Bytes; the dotted class name of a Global or Object
  std::vector<ValuePtr> items;
  ValuePtr state;     // an Object's or dict's BUILD state (an OrderedDict's _metadata)
  at::Tensor tensor;  // Tensor, Storage (a 1-D tensor over the whole storage)

  bool is(Kind k) const { return kind == k; }
  /// The value under string key `key` of a dict, or null.
  ValuePtr find(const std::string& key) const;
  /// "dict", "str", "torch.Tensor", "collections.Counter object", ... for messages.
  std::string type_name() const;
};

/// Returns the storage `key` of `dtype` with `numel` elements (a torch.save file's data/<key>).
using StorageLoader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;

/// Runs the pickle in `bytes` (protocols 2 to 5). A malformed pickle is a razor::Error of the
/// runtime kind naming `origin` and the offset; `load_storage` is called once per storage.
ValuePtr load(const std::string& bytes, const StorageLoader& load_storage, const std::string& origin);

}  // namespace razor::pickle
