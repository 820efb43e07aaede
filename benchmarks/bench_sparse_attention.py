"""Benchmarks for the sparse_attention chapter.

- Block-sparse attention (each query block attends to its own and the previous key blocks, ``√L``-ish keys per
  query): our gather kernel (``block_gather_attention``: only the kept blocks are scored) against PyTorch's
  fused ``scaled_dot_product_attention`` given the same pattern as a boolean mask (every score computed, then
  masked).  Same outputs; the timing shows what skipping the masked blocks buys on a CPU at this length.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from benchmarks.harness import Benchmark
from sparsebook import sparse_attention as sa


def benchmarks() -> list[Benchmark]:
    L, d, block = 4096, 64, 64
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(L, d, generator=g) for _ in range(3))
    n = L // block
    m = max(1, int(round(math.sqrt(L) / block)) + 1)
    idx = torch.stack([torch.arange(a - m + 1, a + 1).clamp_min(0) for a in range(n)])
    bm = torch.zeros(n, n, dtype=torch.bool).scatter_(1, idx, True)
    mask = bm.repeat_interleave(block, 0).repeat_interleave(block, 1)
    # the first blocks gather block 0 several times: the peer's mask counts it once, so compare from block m on
    rows = slice((m - 1) * block, L)

    def check(a, b):
        err = float((a[rows] - b[rows]).abs().max())
        if err > 1e-4:
            raise AssertionError(f"outputs differ: {err}")
        return f"max abs difference {err:.1e} (rows past the first {m - 1} blocks)"

    return [Benchmark("sparse_attention", f"block-sparse attention, L={L}, block {block}, {m} blocks per query",
                      lambda: sa.block_gather_attention(q, k, v, idx, block),
                      lambda: F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=mask)[0],
                      "torch SDPA with a boolean block mask", repeats=5, check=check)]
