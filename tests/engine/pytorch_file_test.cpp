// Files written by Python's torch.save (fixtures from tests/data/pytorch/make_fixtures.py):
// dtypes, views and strides read as PyTorch wrote them, every container form yields its state
// dict, a state dict razor writes reads back bit for bit, and each file razor cannot read is
// refused with an error that says what it is.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/pytorch_file.h"
#include "tests/datasets/temp_dir.h"

using namespace razor;
using namespace razor::test;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(RAZOR_TEST_DATA_DIR) + "/pytorch/";

std::map<std::string, torch::Tensor> as_map(const StateDict& tensors) {
  return std::map<std::string, torch::Tensor>(tensors.begin(), tensors.end());
}

// The error `work` throws (it must throw a razor::Error).
Error error_of(const std::function<void()>& work) {
  try {
    work();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no error was thrown");
  return config_error("unreachable");
}

}  // namespace

TEST_CASE("torch.save files: every dtype, views of one storage and non-contiguous strides", "[checkpoint][pytorch]") {
  const std::string path = kData + "dtypes_views.pth";
  REQUIRE(inspect_checkpoint(path) == CheckpointFormat::TorchSave);
  const auto t = as_map(read_pytorch_state_dict(path));
  const torch::Tensor base = torch::arange(24, torch::kFloat);

  CHECK(t.at("rows").sizes() == torch::IntArrayRef({2, 3}));
  CHECK(torch::equal(t.at("rows"), base.slice(0, 0, 6).view({2, 3})));
  // base[6:].view(3, 6).t(): offset 6 into the same storage, strides (1, 6).
  CHECK(t.at("transposed").sizes() == torch::IntArrayRef({6, 3}));
  CHECK(t.at("transposed").strides() == torch::IntArrayRef({1, 6}));
  CHECK(torch::equal(t.at("transposed"), base.slice(0, 6).view({3, 6}).t()));
  CHECK(t.at("rows").storage().data() == t.at("transposed").storage().data());

  CHECK(t.at("half").dtype() == torch::kHalf);
  CHECK(t.at("bfloat16").dtype() == torch::kBFloat16);
  CHECK(t.at("double").dtype() == torch::kDouble);
  CHECK(t.at("long").dtype() == torch::kLong);
  for (const char* name : {"half", "bfloat16", "double"}) CHECK(torch::equal(t.at(name).to(torch::kFloat), base));
  CHECK(torch::equal(t.at("long"), torch::arange(5)));
  CHECK(t.at("scalar").dim() == 0);
  CHECK(t.at("scalar").item<float>() == 2.5f);
}

TEST_CASE("torch.save containers: a plain state dict, MMEngine's, timm's, and one named by checkpoint_key",
          "[checkpoint][pytorch]") {
  const auto plain = read_pytorch_state_dict(kData + "tv_resnet18.pth");
  REQUIRE(plain.size() == 122);  // torchvision's ResNet-18: 62 parameters, 3 buffers for each of its 20 BNs
  CHECK(plain.front().first == "conv1.weight");
  CHECK(plain.back().first == "fc.bias");

  // MMEngine's {"meta", "state_dict", "message_hub" (a Python object), "optimizer"}; timm's
  // {"model", "epoch", "args" (an argparse.Namespace)}: the same tensors.
  for (const char* file : {"container_mmengine.pth", "container_timm.pth"}) {
    INFO(file);
    const auto loaded = read_pytorch_state_dict(kData + file);
    REQUIRE(loaded.size() == plain.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      CHECK(loaded[i].first == plain[i].first);
      CHECK(torch::equal(loaded[i].second, plain[i].second));
    }
  }
  // {"ema": <DDP names>, "epoch"}: no default entry, so checkpoint_key must name it.
  const Error missing = error_of([] { read_pytorch_state_dict(kData + "container_ema_ddp.pth"); });
  CHECK(missing.kind() == Error::Kind::Config);
  CHECK_THAT(missing.what(), Catch::Contains("holds no state dict") && Catch::Contains("[ema, epoch]") &&
                                 Catch::Contains("checkpoint_key"));
  const auto ema = read_pytorch_state_dict(kData + "container_ema_ddp.pth", "ema");
  CHECK(ema.size() == plain.size());
  CHECK(ema.front().first == "module.conv1.weight");
  CHECK_THAT(error_of([] { read_pytorch_state_dict(kData + "container_ema_ddp.pth", "emma"); }).what(),
             Catch::Contains("checkpoint_key = \"emma\" is not in the file") && Catch::Contains("did you mean \"ema\""));

  // CheckpointReader takes either format.
  CheckpointReader reader(kData + "container_timm.pth");
  CHECK(reader.from_pytorch());
  CHECK(reader.contents().model.size() == plain.size());
}

TEST_CASE("A state dict razor writes for torch.load reads back bit for bit, and is written atomically",
          "[checkpoint][pytorch]") {
  TempDir dir;
  torch::manual_seed(3);
  StateDict tensors = {{"a.weight", torch::randn({4, 3, 3, 3})},
                       {"a.bias", torch::randn({7}).slice(0, 1, 5)},  // a view is written as itself
                       {"t", torch::randn({3, 5}).t()},
                       {"n", torch::tensor(int64_t{7})},
                       {"h", torch::randn({6}).to(torch::kHalf)}};
  const std::string path = dir / "out.pth";
  write_pytorch_state_dict(path, tensors);
  CHECK_FALSE(fs::exists(path + ".tmp"));
  REQUIRE(inspect_checkpoint(path) == CheckpointFormat::TorchSave);
  const auto back = read_pytorch_state_dict(path);
  REQUIRE(back.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    CHECK(back[i].first == tensors[i].first);
    CHECK(back[i].second.dtype() == tensors[i].second.dtype());
    CHECK(torch::equal(back[i].second, tensors[i].second));
  }
}

TEST_CASE("Files razor cannot read are refused with what they are, and nothing is allocated for forged sizes",
          "[checkpoint][pytorch]") {
  TempDir dir;
  auto reading = [](const std::string& path) { return error_of([&] { CheckpointReader reader(path); }); };

  Error e = reading(kData + "legacy_format.pth");
  CHECK(e.kind() == Error::Kind::Config);
  CHECK_THAT(e.what(), Catch::Contains("legacy format") && Catch::Contains("torch.save(torch.load("));

  e = reading(kData + "pickled_module.pth");
  CHECK(e.kind() == Error::Kind::Config);
  CHECK_THAT(e.what(), Catch::Contains("pickled Python object of class torch.nn.modules.container.Sequential") &&
                           Catch::Contains("model.state_dict()"));

  e = reading(kData + "torchscript.pt");
  CHECK(e.kind() == Error::Kind::Config);
  CHECK_THAT(e.what(), Catch::Contains("TorchScript archive (torch.jit.save)"));

  // Cut short: the zip directory at its end is gone.
  const std::string cut = dir / "cut.pth";
  fs::copy_file(kData + "tv_resnet18.pth", cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  e = reading(cut);
  CHECK(e.kind() == Error::Kind::Runtime);
  CHECK_THAT(e.what(), Catch::Contains("corrupt or truncated") && Catch::Contains(cut));

  // An entry whose directory record claims 2 GiB: refused from the directory, before any read.
  const std::string forged = dir / "forged.pth";
  fs::copy_file(kData + "tv_resnet18.pth", forged);
  {
    std::fstream f(forged, std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t entry = bytes.find("PK\x01\x02");
    REQUIRE(entry != std::string::npos);
    const char huge[4] = {'\xff', '\xff', '\xff', '\x7f'};
    f.seekp(static_cast<std::streamoff>(entry + 20));
    f.write(huge, 4);  // compressed size
    f.write(huge, 4);  // uncompressed size
  }
  e = reading(forged);
  CHECK(e.kind() == Error::Kind::Runtime);
  CHECK_THAT(e.what(), Catch::Contains("claims 2147483647 bytes"));

  std::ofstream(dir / "empty.pth").close();
  CHECK_THAT(reading(dir / "empty.pth").what(), Catch::Contains("is empty"));
  std::ofstream(dir / "text.pth") << "not a checkpoint at all";
  CHECK_THAT(reading(dir / "text.pth").what(), Catch::Contains("not a checkpoint"));
  CHECK_THAT(reading(dir / "absent.pth").what(), Catch::Contains("checkpoint not found"));
}
