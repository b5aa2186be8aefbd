#include "engine/pickle.h"

#include <cstring>
#include <map>
#include <unordered_map>

#include <ATen/ATen.h>

#include "engine/error.h"

namespace razor::pickle {

ValuePtr Value::find(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  for (size_t i = 0; i + 1 < items.size(); i += 2) {
    if (items[i]->is(Kind::String) && items[i]->text == key) return items[i + 1];
  }
  return nullptr;
}

std::string Value::type_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Tensor: return "torch.Tensor";
    case Kind::Storage: return "torch storage";
    case Kind::Global: return "the Python name " + text;
    case Kind::Object: return text + " object";
  }
  return "?";
}

namespace {

using Kind = Value::Kind;

ValuePtr make(Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

ValuePtr make_int(int64_t x) {
  auto v = make(Kind::Int);
  v->integer = x;
  return v;
}

ValuePtr make_text(Kind kind, std::string text) {
  auto v = make(kind);
  v->text = std::move(text);
  return v;
}

const std::map<std::string, at::ScalarType>& storage_types() {
  static const std::map<std::string, at::ScalarType> types = {
      {"DoubleStorage", at::kDouble}, {"FloatStorage", at::kFloat}, {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort}, {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool}};
  return types;
}

class Machine {
 public:
  Machine(const std::string& bytes, const StorageLoader& load_storage, const std::string& origin)
      : bytes_(bytes), load_storage_(load_storage), origin_(origin) {}

  ValuePtr run() {
    while (true) {
      const size_t at = pos_;
      const auto op = static_cast<uint8_t>(byte());
      if (op == '.') break;  // STOP
      step(op, at);
    }
    if (stack_.size() != 1) fail(pos_, "the pickle ends with ", stack_.size(), " values on its stack");
    return stack_.back();
  }

 private:
  template <class... Parts>
  [[noreturn]] void fail(size_t at, Parts&&... parts) const {
    throw runtime_error(origin_, ": malformed pickle at byte ", at, ": ", std::forward<Parts>(parts)...);
  }

  char byte() {
    if (pos_ >= bytes_.size()) fail(pos_, "it ends before its STOP opcode");
    return bytes_[pos_++];
  }
  const char* take(uint64_t n) {
    if (n > bytes_.size() - pos_) fail(pos_, "a value of ", n, " bytes runs past its end");
    const char* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint64_t unsigned_le(int n) {
    const auto* p = reinterpret_cast<const uint8_t*>(take(n));
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; --i) x = (x << 8) | p[i];
    return x;
  }
  std::string line() {
    const size_t end = bytes_.find('\n', pos_);
    if (end == std::string::npos) fail(pos_, "a text argument has no end of line");
    std::string out = bytes_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }

  ValuePtr pop() {
    if (stack_.size() <= floor()) fail(pos_, "an opcode takes a value from an empty stack");
    ValuePtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    if (stack_.size() <= floor()) fail(pos_, "an opcode needs a value on an empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // The values since the last MARK, which is removed.
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail(pos_, "an opcode needs a MARK that is not there");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> out(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return out;
  }

  void memo_put(uint64_t index) {
    if (index > bytes_.size()) fail(pos_, "memo index ", index, " is out of range");
    if (memo_.size() <= index) memo_.resize(index + 1);
    memo_[index] = top();
  }
  ValuePtr memo_get(uint64_t index, size_t at) const {
    if (index >= memo_.size() || !memo_[index]) fail(at, "memo entry ", index, " was never stored");
    return memo_[index];
  }

  void add_items(ValuePtr& target, const std::vector<ValuePtr>& items, size_t at) {
    if (target->is(Kind::Dict)) {
      if (items.size() % 2) fail(at, "a dict is given an odd number of keys and values");
      target->items.insert(target->items.end(), items.begin(), items.end());
    } else if (target->is(Kind::Object)) {
      // A dict subclass (defaultdict, ConfigDict): its items kept as its state.
      if (!target->state) target->state = make(Kind::Dict);
      target->state->items.insert(target->state->items.end(), items.begin(), items.end());
    } else {
      fail(at, "items are added to a ", target->type_name());
    }
  }
  void append_items(ValuePtr& target, const std::vector<ValuePtr>& items, size_t at) {
    if (target->is(Kind::List)) {
      target->items.insert(target->items.end(), items.begin(), items.end());
    } else if (!target->is(Kind::Object)) {
      fail(at, "elements are appended to a ", target->type_name());
    }
  }

  ValuePtr storage(const ValuePtr& pid, size_t at) {
    if (!pid->is(Kind::Tuple) || pid->items.size() < 5 || !pid->items[0]->is(Kind::String) ||
        pid->items[0]->text != "storage") {
      fail(at, "a persistent id that is not a torch storage");
    }
    const ValuePtr& type = pid->items[1];
    const ValuePtr& key = pid->items[2];
    const ValuePtr& numel = pid->items[4];
    if (!type->is(Kind::Global) || !key->is(Kind::String) || !numel->is(Kind::Int) || numel->integer < 0) {
      fail(at, "a torch storage with a malformed persistent id");
    }
    const std::string name = type->text.substr(type->text.rfind('.') + 1);
    auto dtype = storage_types().find(name);
    if (dtype == storage_types().end()) {
      throw runtime_error(origin_, ": holds a tensor of storage type ", type->text,
                          ", which razor does not read (it reads float64/32/16, bfloat16 and integer tensors)");
    }
    auto cached = storages_.find(key->text);
    if (cached != storages_.end()) return cached->second;  // views share their storage
    auto v = make(Kind::Storage);
    v->tensor = load_storage_(key->text, dtype->second, numel->integer);
    storages_.emplace(key->text, v);
    return v;
  }

  std::vector<int64_t> ints(const ValuePtr& v, const char* what, size_t at) const {
    if (!v->is(Kind::Tuple) && !v->is(Kind::List)) fail(at, "a tensor's ", what, " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& item : v->items) {
      if (!item->is(Kind::Int)) fail(at, "a tensor's ", what, " holds a ", item->type_name());
      out.push_back(item->integer);
    }
    return out;
  }

  ValuePtr rebuild_tensor(const std::vector<ValuePtr>& args, size_t at) {
    if (args.size() < 4 || !args[0]->is(Kind::Storage) || !args[1]->is(Kind::Int)) {
      fail(at, "torch._utils._rebuild_tensor_v2 with malformed arguments");
    }
    const at::Tensor& storage = args[0]->tensor;
    const int64_t offset = args[1]->integer;
    const auto size = ints(args[2], "size", at);
    const auto stride = ints(args[3], "stride", at);
    if (size.size() != stride.size()) fail(at, "a tensor's size and stride differ in length");
    // Every element the view reaches must lie inside its storage.
    int64_t last = offset;
    bool empty = false;
    for (size_t i = 0; i < size.size(); ++i) {
      if (size[i] < 0 || stride[i] < 0) fail(at, "a tensor with a negative size or stride");
      if (size[i] == 0) empty = true;
      last += (size[i] - 1) * stride[i];
    }
    if (offset < 0 || (!empty && last >= storage.numel())) {
      throw runtime_error(origin_, ": is corrupt: a tensor of size [", args[2]->items.size(),
                          " dims] at offset ", offset, " reaches past its storage of ", storage.numel(),
                          " elements");
    }
    auto v = make(Kind::Tensor);
    v->tensor = empty ? at::empty(size, storage.options()) : storage.as_strided(size, stride, offset);
    return v;
  }

  // REDUCE and NEWOBJ: the few callables that build plain values; any other is an Object.
  ValuePtr call(const ValuePtr& callable, const ValuePtr& args, size_t at) {
    if (!args->is(Kind::Tuple)) fail(at, "a call's arguments are not a tuple");
    const std::vector<ValuePtr>& a = args->items;
    const std::string name = callable->is(Kind::Global) ? callable->text : "";
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      auto v = make(Kind::Dict);
      if (!a.empty() && a[0]->is(Kind::List)) {
        for (const auto& pair : a[0]->items) {
          if (pair->is(Kind::Tuple) && pair->items.size() == 2) {
            v->items.push_back(pair->items[0]);
            v->items.push_back(pair->items[1]);
          }
        }
      }
      return v;
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      return rebuild_tensor(a, at);
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || !a[0]->is(Kind::Tensor)) fail(at, name, " of something that is not a tensor");
      return a[0];
    }
    if (name == "torch.jit._pickle.restore_type_tag" && !a.empty()) return a[0];  // LibTorch's typed containers
    if (name == "_codecs.encode" && !a.empty() && a[0]->is(Kind::String)) {
      return make_text(Kind::Bytes, a[0]->text);  // protocol 2's bytes: latin-1 code points
    }
    if ((name == "builtins.set" || name == "builtins.frozenset")) {
      auto v = make(Kind::List);
      if (!a.empty() && a[0]->is(Kind::List)) v->items = a[0]->items;
      return v;
    }
    auto v = make_text(Kind::Object, name.empty() ? "a " + callable->type_name() + " call" : name);
    v->items = a;
    return v;
  }

  void step(uint8_t op, size_t at) {
    switch (op) {
      case 0x80: byte(); return;              // PROTO
      case 0x95: take(8); return;             // FRAME
      case '(': marks_.push_back(stack_.size()); return;
      case '0': pop(); return;
      case '1': pop_mark(); return;
      case '2': stack_.push_back(top()); return;
      case 'N': stack_.push_back(make(Kind::None)); return;
      case 0x88:
      case 0x89: {
        auto v = make(Kind::Bool);
        v->boolean = op == 0x88;
        stack_.push_back(v);
        return;
      }
      case 'J': stack_.push_back(make_int(static_cast<int32_t>(unsigned_le(4)))); return;
      case 'K': stack_.push_back(make_int(static_cast<int64_t>(unsigned_le(1)))); return;
      case 'M': stack_.push_back(make_int(static_cast<int64_t>(unsigned_le(2)))); return;
      case 0x8a:
      case 0x8b: {  // LONG1, LONG4: little-endian two's complement
        const uint64_t n = op == 0x8a ? unsigned_le(1) : unsigned_le(4);
        if (n > 8) fail(at, "an integer of ", n, " bytes (razor reads up to 64 bits)");
        const auto* p = reinterpret_cast<const uint8_t*>(take(n));
        uint64_t x = 0;
        for (uint64_t i = n; i > 0; --i) x = (x << 8) | p[i - 1];
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) x |= ~uint64_t{0} << (8 * n);
        stack_.push_back(make_int(static_cast<int64_t>(x)));
        return;
      }
      case 'I': {
        const std::string text = line();
        if (text == "01" || text == "00") {
          auto v = make(Kind::Bool);
          v->boolean = text == "01";
          stack_.push_back(v);
        } else {
          stack_.push_back(make_int(std::stoll(text)));
        }
        return;
      }
      case 'L': {
        std::string text = line();
        if (!text.empty() && text.back() == 'L') text.pop_back();
        stack_.push_back(make_int(std::stoll(text)));
        return;
      }
      case 'G': {
        const auto* p = reinterpret_cast<const uint8_t*>(take(8));
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian
        auto v = make(Kind::Float);
        std::memcpy(&v->real, &bits, sizeof bits);
        stack_.push_back(v);
        return;
      }
      case 'F': {
        auto v = make(Kind::Float);
        v->real = std::stod(line());
        stack_.push_back(v);
        return;
      }
      case 'X': case 'T': case 'B': { const uint64_t n = unsigned_le(4); push_text(op == 'B' ? Kind::Bytes : Kind::String, n); return; }
      case 0x8c: case 'U': case 'C': { const uint64_t n = unsigned_le(1); push_text(op == 'C' ? Kind::Bytes : Kind::String, n); return; }
      case 0x8d: case 0x8e: case 0x96: { const uint64_t n = unsigned_le(8); push_text(op == 0x8d ? Kind::String : Kind::Bytes, n); return; }
      case ']': stack_.push_back(make(Kind::List)); return;
      case ')': stack_.push_back(make(Kind::Tuple)); return;
      case '}': stack_.push_back(make(Kind::Dict)); return;
      case 0x8f: stack_.push_back(make(Kind::List)); return;  // EMPTY_SET
      case 'l': case 't': case 0x91: {
        auto v = make(op == 't' ? Kind::Tuple : Kind::List);
        v->items = pop_mark();
        stack_.push_back(v);
        return;
      }
      case 'd': {
        auto v = make(Kind::Dict);
        auto items = pop_mark();
        add_items(v, items, at);
        stack_.push_back(v);
        return;
      }
      case 0x85: case 0x86: case 0x87: {
        const size_t n = op - 0x84;
        auto v = make(Kind::Tuple);
        v->items.resize(n);
        for (size_t i = n; i > 0; --i) v->items[i - 1] = pop();
        stack_.push_back(v);
        return;
      }
      case 'a': {
        ValuePtr item = pop();
        append_items(top(), {item}, at);
        return;
      }
      case 'e': case 0x90: {
        auto items = pop_mark();
        append_items(top(), items, at);
        return;
      }
      case 's': {
        ValuePtr value = pop();
        ValuePtr key = pop();
        add_items(top(), {key, value}, at);
        return;
      }
      case 'u': {
        auto items = pop_mark();
        add_items(top(), items, at);
        return;
      }
      case 'c': {
        std::string module = line();
        std::string name = line();
        stack_.push_back(make_text(Kind::Global, module + "." + name));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        ValuePtr name = pop();
        ValuePtr module = pop();
        if (!name->is(Kind::String) || !module->is(Kind::String)) fail(at, "STACK_GLOBAL of non-strings");
        stack_.push_back(make_text(Kind::Global, module->text + "." + name->text));
        return;
      }
      case 'R': case 0x81: {
        ValuePtr args = pop();
        ValuePtr callable = pop();
        stack_.push_back(call(callable, args, at));
        return;
      }
      case 0x92: {  // NEWOBJ_EX: keyword arguments are dropped
        pop();
        ValuePtr args = pop();
        ValuePtr callable = pop();
        stack_.push_back(call(callable, args, at));
        return;
      }
      case 'b': {
        ValuePtr state = pop();
        ValuePtr& target = top();
        if (target->is(Kind::Dict) || target->is(Kind::Object)) target->state = state;
        return;
      }
      case 'Q': {
        ValuePtr pid = pop();
        stack_.push_back(storage(pid, at));
        return;
      }
      case 'P': fail(at, "a text persistent id (not written by torch.save)");
      case 'p': memo_put(std::stoull(line())); return;
      case 'q': memo_put(unsigned_le(1)); return;
      case 'r': memo_put(unsigned_le(4)); return;
      case 0x94: memo_put(memo_next_++); return;
      case 'g': stack_.push_back(memo_get(std::stoull(line()), at)); return;
      case 'h': stack_.push_back(memo_get(unsigned_le(1), at)); return;
      case 'j': stack_.push_back(memo_get(unsigned_le(4), at)); return;
      default: fail(at, "unknown opcode 0x", std::hex, static_cast<int>(op));
    }
  }

  void push_text(Kind kind, uint64_t n) {
    const char* p = take(n);
    stack_.push_back(make_text(kind, std::string(p, n)));
  }

  const std::string& bytes_;
  const StorageLoader& load_storage_;
  const std::string& origin_;
  size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::vector<ValuePtr> memo_;
  uint64_t memo_next_ = 0;
  std::unordered_map<std::string, ValuePtr> storages_;
};

}  // namespace

ValuePtr load(const std::string& bytes, const StorageLoader& load_storage, const std::string& origin) {
  try {
    return Machine(bytes, load_storage, origin).run();
  } catch (const std::invalid_argument&) {
    throw runtime_error(origin, ": malformed pickle: a number that does not parse");
  } catch (const std::out_of_range&) {
    throw runtime_error(origin, ": malformed pickle: a number out of range");
  }
}

}  // namespace razor::pickle
