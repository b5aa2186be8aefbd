#!/usr/bin/env python3
"""W1 and W2 written in plain PyTorch, as BENCHMARKS.md defines them: the references that
razor's figures are divided by. Needs Debian's python3-torch (the same LibTorch 1.13 as razor).

    /usr/bin/python3 scripts/reference/bench_pytorch.py [--workloads W1,W2] [--repeats 3] [--threads 2]
"""
import argparse
import gzip
import json
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


def throughput(step, warmup=10, timed=100, batch=128):
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(warmup, warmup + timed):
        step(i)
    return timed * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", default="W1,W2")
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
    for workload in args.workloads.split(","):
        values = []
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
