#!/usr/bin/env python3
"""W1-W7 written in plain PyTorch, as BENCHMARKS.md defines them: the references that
razor's figures are divided by. Needs Debian's python3-torch (the same LibTorch 1.13 as razor).

    /usr/bin/python3 scripts/reference/bench_pytorch.py [--workloads W1,W2,W3,W4] [--repeats 3] [--threads 2]
        [--channels-last] [--full]

The default list is W1-W4; W5 and W6 run when named (--workloads W5,W6).
W5 "ptq": ResNet-20 with torch.ao eager-mode QAT modules as simulated quantisation (conv+BN fused, BN
folded as ConvBn2d does, per-channel symmetric int8 weight fake quant on every conv and the linear, one
uint8 min-max FakeQuantize on the input of every conv and linear, nothing else): calibrate on 32 batches
of 128 training images, then evaluate the 10,000 test images; ptq_seconds (lower is better) and top1.
With --full the float model is first trained for one epoch and float_top1, top1, top1_drop are reported
(several minutes); without it the weights are random and only the time means anything.
W6 "qat": the same fake-quantised model trained (observers on, BN in training mode, straight-through),
SGD lr 0.01; train_images_per_s.
W7 "prune": ResNet-20 inference at batch 256 (eval, inference_mode), the unpruned model and the one
configs/pruning/l1_resnet20_fmnist.toml's L1 pruning leaves (every width of the three stages 8, 24, 48),
built at those widths;
inference_images_per_s of the pruned model, the unpruned one's and their ratio.
"""
import argparse
import gzip
import json
import random
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (FakeQuantize, MinMaxObserver, PerChannelMinMaxObserver, QConfig,
                                   disable_observer, fuse_modules_qat, prepare_qat)

try:
    import torch.ao.nn.intrinsic as nni
except ImportError:  # torch < 2.0 keeps the fused modules under torch.nn.intrinsic
    import torch.nn.intrinsic as nni

ROOT = "/usr/share/datasets/fashion-mnist"


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNetCifar(nn.Module):
    def __init__(self, depth=20, in_channels=1, num_classes=10, widths=(16, 32, 64)):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, cout in enumerate(widths):
            for b in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and b == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def conv_bn(cin, cout, k, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def channel_shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleBlock(nn.Module):
    """SPOS's ShuffleBlock (kernel k) or ShuffleXception (xception=True), as in MMRazor."""

    def __init__(self, cin, cout, stride, k=3, xception=False):
        super().__init__()
        mid, self.stride = cout // 2, stride
        if stride > 1:
            kb = 3 if xception else k
            self.branch1 = nn.Sequential(conv_bn(cin, cin, kb, stride, cin, False), conv_bn(cin, mid, 1))
        main_in = cin if stride > 1 else mid
        if xception:
            self.branch2 = nn.Sequential(
                conv_bn(main_in, main_in, 3, stride, main_in, False), conv_bn(main_in, mid, 1),
                conv_bn(mid, mid, 3, 1, mid, False), conv_bn(mid, mid, 1),
                conv_bn(mid, mid, 3, 1, mid, False), conv_bn(mid, mid, 1))
        else:
            self.branch2 = nn.Sequential(conv_bn(main_in, mid, 1), conv_bn(mid, mid, k, stride, mid, False),
                                         conv_bn(mid, mid, 1))

    def forward(self, x):
        if self.stride > 1:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        else:
            x1, x2 = x.chunk(2, 1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        return channel_shuffle(out)


class SposSupernet(nn.Module):
    """The small SPOS ShuffleNetV2 supernet of BENCHMARKS.md; `choices` picks each block's op."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16, 3)
        blocks, cin = [], 16
        for cout, n in [(64, 2), (128, 2), (256, 2)]:
            for b in range(n):
                stride = 2 if b == 0 else 1
                blocks.append(nn.ModuleList([ShuffleBlock(cin, cout, stride, 3), ShuffleBlock(cin, cout, stride, 5),
                                             ShuffleBlock(cin, cout, stride, 7),
                                             ShuffleBlock(cin, cout, stride, xception=True)]))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.last = conv_bn(256, 512, 1)
        self.fc = nn.Linear(512, 10)
        self.choices = [0] * len(blocks)

    def forward(self, x):
        x = self.stem(x)
        for block, choice in zip(self.blocks, self.choices):
            x = block[choice](x)
        x = self.last(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def calibrate_bn(model, batches):
    """MMRazor's calibrate_bn_statistics: per-batch mean and unbiased variance of every BN's
    input, averaged weighted by batch size, written into the running statistics."""
    sums = {}

    def hook(module, inputs):
        x = inputs[0]
        n = x.size(0)
        mean, var = x.mean((0, 2, 3)) * n, x.var((0, 2, 3), unbiased=True) * n
        if module in sums:
            sums[module][0].add_(mean), sums[module][1].add_(var)
            sums[module][2] += n
        else:
            sums[module] = [mean, var, n]

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for h in handles:
        h.remove()
    for module, (mean, var, n) in sums.items():
        module.running_mean.copy_(mean / n)
        module.running_var.copy_(var / n)


QCONFIG = QConfig(
    activation=FakeQuantize.with_args(observer=MinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                                      qscheme=torch.per_tensor_affine),
    weight=FakeQuantize.with_args(observer=PerChannelMinMaxObserver, quant_min=-127, quant_max=127,
                                  dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0))


def quantise_input(module, inputs):
    return (module.input_fake_quant(inputs[0]),) + tuple(inputs[1:])


def fake_quantise(model):
    """W5/W6's simulated quantisation of a ResNetCifar, in place: every conv+BN pair fused as
    ConvBn2d (BN folded into the per-channel int8 weight fake quant), the linear with the same
    weight fake quant, and one uint8 min-max FakeQuantize on the input of every conv and linear."""
    model.train()  # fuse_modules_qat and prepare_qat want training mode
    pairs = [["conv1", "bn1"]]
    for i, block in enumerate(model.layers):
        pairs += [[f"layers.{i}.conv1", f"layers.{i}.bn1"], [f"layers.{i}.conv2", f"layers.{i}.bn2"]]
        if block.downsample is not None:
            pairs.append([f"layers.{i}.downsample.0", f"layers.{i}.downsample.1"])
    fuse_modules_qat(model, pairs, inplace=True)
    for m in model.modules():
        if isinstance(m, (nni.ConvBn2d, nn.Linear)):
            m.qconfig = QCONFIG
    prepare_qat(model, inplace=True)
    targets = []
    for m in list(model.modules()):
        # prepare_qat observes each QAT module's output (a forward hook): drop those, only inputs are
        # quantised (a FakeQuantize's own activation_post_process is its observer and stays)
        if hasattr(m, "activation_post_process") and not isinstance(m, FakeQuantize):
            del m.activation_post_process
            m._forward_hooks.clear()
        if hasattr(m, "weight_fake_quant"):
            targets.append(m)
    for m in targets:
        m.input_fake_quant = QCONFIG.activation()
        m.register_forward_pre_hook(quantise_input)
    return model


def top1(model, batches):
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for x, y in batches:
            correct += (model(x).argmax(1) == y).sum().item()
            total += y.numel()
    return 100.0 * correct / total  # percent, as razor reports accuracy/top1


def throughput(step, warmup=10, timed=100, batch=128):
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(warmup, warmup + timed):
        step(i)
    return timed * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true", help="NHWC weights and inputs (razor's CPU default)")
    parser.add_argument("--full", action="store_true",
                        help="W5: train the float model one epoch first and report float_top1, top1, top1_drop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    images = torch.from_numpy(read_idx(f"{ROOT}/train-images-idx3-ubyte.gz", 16).copy()).view(-1, 1, 28, 28)
    labels = torch.from_numpy(read_idx(f"{ROOT}/train-labels-idx1-ubyte.gz", 8).copy()).long()
    data = (images.float() / 255.0 - 0.2860) / 0.3530
    batch = 128
    test_images = torch.from_numpy(read_idx(f"{ROOT}/t10k-images-idx3-ubyte.gz", 16).copy()).view(-1, 1, 28, 28)
    test_labels = torch.from_numpy(read_idx(f"{ROOT}/t10k-labels-idx1-ubyte.gz", 8).copy()).long()
    test_data = (test_images.float() / 255.0 - 0.2860) / 0.3530
    memory_format = "channels_last" if args.channels_last else "contiguous"
    for workload in args.workloads.split(","):
        values = []
        if workload == "W7":
            batch_x = torch.randn(256, 1, 28, 28).contiguous(memory_format=fmt)
            models = [ResNetCifar(widths=(8, 24, 48)), ResNetCifar()]
            figures = [[], []]
            for r in range(args.repeats):
                for m, model in enumerate(models):
                    model = model.to(memory_format=fmt).eval()
                    with torch.inference_mode():
                        for _ in range(3):
                            model(batch_x)
                        start = time.perf_counter()
                        for _ in range(20):
                            model(batch_x)
                        figures[m].append(20 * 256 / (time.perf_counter() - start))
            pruned, unpruned = statistics.median(figures[0]), statistics.median(figures[1])
            print(json.dumps({"workload": "W7", "metric": "inference_images_per_s", "value": pruned,
                              "unpruned": unpruned, "speedup": pruned / unpruned, "batch": 256, "device": "cpu",
                              "threads": args.threads, "repeats": figures[0], "unpruned_repeats": figures[1],
                              "implementation": "pytorch", "memory_format": memory_format}))
            continue
        if workload in ("W5", "W6"):
            top1s, float_top1s = [], []
            for r in range(args.repeats):
                torch.manual_seed(r)
                perm = torch.randperm(data.size(0))
                model = ResNetCifar(depth=20).to(memory_format=fmt)
                if workload == "W5":
                    evals = [(test_data[i:i + 256].contiguous(memory_format=fmt), test_labels[i:i + 256])
                             for i in range(0, test_data.size(0), 256)]
                    if args.full:
                        model.train()
                        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
                        for i in range(0, data.size(0), batch):
                            idx = perm[i:i + batch]
                            x = data.index_select(0, idx).contiguous(memory_format=fmt)
                            loss = F.cross_entropy(model(x), labels.index_select(0, idx))
                            opt.zero_grad()
                            loss.backward()
                            opt.step()
                        float_top1s.append(top1(model, evals))
                    fake_quantise(model).to(memory_format=fmt)
                    model.eval()  # BN uses (and keeps) its running statistics: folded, as at inference
                    calib = [data.index_select(0, perm[i * 128:(i + 1) * 128]).contiguous(memory_format=fmt)
                             for i in range(32)]
                    start = time.perf_counter()
                    with torch.no_grad():
                        for x in calib:
                            model(x)
                    model.apply(disable_observer)
                    top1s.append(top1(model, evals))
                    values.append(time.perf_counter() - start)
                else:
                    fake_quantise(model).to(memory_format=fmt)
                    model.train()
                    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

                    def step(i):
                        idx = perm[i * batch:(i + 1) * batch]
                        x = data.index_select(0, idx).contiguous(memory_format=fmt)
                        loss = F.cross_entropy(model(x), labels.index_select(0, idx))
                        opt.zero_grad()
                        loss.backward()
                        opt.step()

                    values.append(throughput(step))
            result = {"workload": workload, "metric": "ptq_seconds" if workload == "W5" else "train_images_per_s",
                      "value": statistics.median(values), "device": "cpu", "threads": args.threads,
                      "repeats": values, "implementation": "pytorch", "memory_format": memory_format}
            if workload == "W5":
                result["top1"] = statistics.median(top1s)
                if args.full:
                    result["float_top1"] = statistics.median(float_top1s)
                    result["top1_drop"] = result["float_top1"] - result["top1"]
            print(json.dumps(result))
            continue
        if workload in ("W3", "W4"):
            for r in range(args.repeats):
                torch.manual_seed(r)
                random.seed(r)
                perm = torch.randperm(data.size(0))
                model = SposSupernet().to(memory_format=fmt)
                if workload == "W3":
                    model.train()
                    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

                    def step(i):
                        model.choices = [random.randrange(4) for _ in model.choices]
                        idx = perm[i * batch:(i + 1) * batch]
                        x = data.index_select(0, idx).contiguous(memory_format=fmt)
                        loss = F.cross_entropy(model(x), labels.index_select(0, idx))
                        opt.zero_grad()
                        loss.backward()
                        opt.step()

                    values.append(throughput(step))
                else:
                    calib = [data.index_select(0, perm[i * 128:(i + 1) * 128]).contiguous(memory_format=fmt)
                             for i in range(8)]
                    evals = [(test_data[i:i + 256].contiguous(memory_format=fmt), test_labels[i:i + 256])
                             for i in range(0, 2048, 256)]

                    def score():
                        model.choices = [random.randrange(4) for _ in model.choices]
                        calibrate_bn(model, calib)
                        model.eval()
                        correct = 0
                        with torch.no_grad():
                            for x, y in evals:
                                correct += (model(x).argmax(1) == y).sum().item()
                        return correct / 2048

                    for _ in range(2):
                        score()
                    start = time.perf_counter()
                    for _ in range(20):
                        score()
                    values.append(20 / (time.perf_counter() - start))
            metric = "train_images_per_s" if workload == "W3" else "candidates_per_s"
            print(json.dumps({"workload": workload, "metric": metric, "value": statistics.median(values),
                              "device": "cpu", "threads": args.threads, "repeats": values,
                              "implementation": "pytorch",
                              "memory_format": "channels_last" if args.channels_last else "contiguous"}))
            continue
        for r in range(args.repeats):
            torch.manual_seed(r)
            perm = torch.randperm(data.size(0))
            student = ResNetCifar(depth=20 if workload == "W1" else 8).to(memory_format=fmt)
            student.train()
            opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
            teacher = None
            if workload == "W2":
                teacher = ResNetCifar(depth=32).to(memory_format=fmt).eval()
                for p in teacher.parameters():
                    p.requires_grad_(False)

            def step(i):
                idx = perm[i * batch:(i + 1) * batch]
                x, y = data.index_select(0, idx).contiguous(memory_format=fmt), labels.index_select(0, idx)
                logits = student(x)
                loss = F.cross_entropy(logits, y)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(x)
                    tau = 4.0
                    loss = loss + tau * tau * F.kl_div(F.log_softmax(logits / tau, 1), F.softmax(t_logits / tau, 1),
                                                       reduction="batchmean")
                opt.zero_grad()
                loss.backward()
                opt.step()

            values.append(throughput(step))
        print(json.dumps({"workload": workload, "metric": "train_images_per_s", "value": statistics.median(values),
                          "device": "cpu", "threads": args.threads, "repeats": values, "implementation": "pytorch",
                          "memory_format": "channels_last" if args.channels_last else "contiguous"}))


if __name__ == "__main__":
    main()
