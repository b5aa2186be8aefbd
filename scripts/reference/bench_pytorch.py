#!/usr/bin/env python3
"""W1-W4 written in plain PyTorch, as BENCHMARKS.md defines them: the references that
razor's figures are divided by. Needs Debian's python3-torch (the same LibTorch 1.13 as razor).

    /usr/bin/python3 scripts/reference/bench_pytorch.py [--workloads W1,W2,W3,W4] [--repeats 3] [--threads 2]
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
    def __init__(self, depth=20, in_channels=1, num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate([16, 32, 64]):
            for b in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and b == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

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
    for workload in args.workloads.split(","):
        values = []
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
