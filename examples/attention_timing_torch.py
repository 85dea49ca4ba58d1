#!/usr/bin/python3
"""PyTorch's time for nn.MultiheadAttention forward + backward at the shape of
examples/attention_timing.ts (batch_first self-attention, need_weights=False), the
median of 10 steps after 2 warm-up steps, on the CPU with the threads given (default 2)."""

import statistics
import sys
import time

import torch
import torch.nn as nn

BATCH, SEQ_LEN, EMBED_DIM, NUM_HEADS = 32, 128, 256, 8

if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(EMBED_DIM, NUM_HEADS, batch_first=True)
    x = torch.randn(BATCH, SEQ_LEN, EMBED_DIM, requires_grad=True)
    times = []
    for i in range(12):
        start = time.perf_counter()
        mha.zero_grad()
        x.grad = None
        out, _ = mha(x, x, x, need_weights=False)
        out.sum().backward()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}: {statistics.median(times):.2f} ms")
