#!/usr/bin/python3
"""Writes the PyTorch fixtures of razor's checkpoint-interop tests (tests/engine/pytorch_file_test.cpp,
tests/apps/pytorch_interop_test.cpp), with the logits PyTorch computes for them.

Run with Debian's python3-torch and python3-torchvision (never by the test suite):
    tests/data/pytorch/make_fixtures.py            # (re)writes the fixtures beside this script
    tests/data/pytorch/make_fixtures.py --check FILE.pth {resnet18,resnet50,mobilenet_v2}
                                                   # loads a file razor wrote, strictly, into the
                                                   # torchvision model and compares the logits
The models are torchvision's own classes at narrow widths (kilobytes, not the 45 MB of a real
ResNet-18), with random weights and BatchNorm statistics so that eval-mode BN is not an identity.
"""
import argparse
import collections
import os
import sys

import torch
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

HERE = os.path.dirname(os.path.abspath(__file__))


class NarrowResNet(ResNet):
    """torchvision's ResNet (its blocks, forward and names) with `base` channels instead of 64."""

    def __init__(self, block, layers, base, num_classes):
        torch.nn.Module.__init__(self)
        self._norm_layer = torch.nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = base, 1, 1, 64
        self.conv1 = torch.nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(base)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(base * 8 * block.expansion, num_classes)


def build(name):
    if name == "resnet18":
        return NarrowResNet(BasicBlock, [2, 2, 2, 2], base=4, num_classes=10)
    if name == "resnet50":
        return NarrowResNet(Bottleneck, [3, 4, 6, 3], base=4, num_classes=10)
    if name == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10)
    raise SystemExit(f"unknown model {name}")


def randomise(model, generator):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(7)
    return model.eval()


def inputs(generator):
    return torch.randn(2, 3, 32, 32, generator=generator)


def write_models():
    for seed, name in enumerate(["resnet18", "resnet50", "mobilenet_v2"]):
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = randomise(build(name), generator)
        x = inputs(generator)
        with torch.inference_mode():
            logits = model(x)
        torch.save(model.state_dict(), os.path.join(HERE, f"tv_{name}.pth"))
        torch.save({"input": x, "logits": logits}, os.path.join(HERE, f"tv_{name}_logits.pth"))
    return torch.load(os.path.join(HERE, "tv_resnet18.pth"))


class HistoryBuffer:
    """Stands for the Python objects (MMEngine's message hub) that checkpoints carry beside weights."""

    def __init__(self):
        self.values = [1.0, 2.0]


def write_containers(state_dict):
    def path(name):
        return os.path.join(HERE, name)

    # MMEngine / mmcls / MMRazor: the weights under "state_dict", beside metadata and objects.
    torch.save({"meta": {"epoch": 3, "mmengine_version": "0.7.0", "seed": 0},
                "state_dict": state_dict, "message_hub": HistoryBuffer(),
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9}]}},
               path("container_mmengine.pth"))
    # timm, torchvision's reference scripts: under "model", with an argparse.Namespace.
    torch.save({"model": state_dict, "epoch": 3, "args": argparse.Namespace(lr=0.1, model="resnet18")},
               path("container_timm.pth"))
    # A DistributedDataParallel model's names, and an entry only checkpoint_key finds.
    ddp = collections.OrderedDict(("module." + k, v) for k, v in state_dict.items())
    torch.save({"ema": ddp, "epoch": 3}, path("container_ema_ddp.pth"))
    # Every dtype razor reads, views of one storage, non-contiguous strides, 4-byte pickle protocol.
    base = torch.arange(24, dtype=torch.float32)
    views = collections.OrderedDict([
        ("rows", base[:6].view(2, 3)),            # a view at offset 0
        ("transposed", base[6:].view(3, 6).t()),  # offset 6, strides (1, 6)
        ("half", base.half()), ("bfloat16", base.bfloat16()), ("double", base.double()),
        ("long", torch.arange(5)), ("scalar", torch.tensor(2.5))])
    torch.save(views, path("dtypes_views.pth"), pickle_protocol=4)
    # What razor must refuse, each with its own message.
    small = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    torch.save(small.state_dict(), path("legacy_format.pth"), _use_new_zipfile_serialization=False)
    torch.save(small, path("pickled_module.pth"))
    torch.jit.save(torch.jit.script(small), path("torchscript.pt"))


def check(file, name):
    """A file razor wrote loads strictly into torchvision's model; prints the logits' agreement."""
    model = build(name).eval()
    state = torch.load(file)
    model.load_state_dict(state, strict=True)
    reference = torch.load(os.path.join(HERE, f"tv_{name}_logits.pth"))
    with torch.inference_mode():
        logits = model(reference["input"])
    error = ((logits - reference["logits"]).abs().max() / reference["logits"].abs().max()).item()
    print(f"{file}: loads strictly into torchvision's {name}; logits max relative error {error:.3g}")
    return 0 if error < 1e-5 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", nargs=2, metavar=("FILE", "MODEL"))
    args = parser.parse_args()
    if args.check:
        return check(*args.check)
    write_containers(write_models())
    return 0


if __name__ == "__main__":
    sys.exit(main())
