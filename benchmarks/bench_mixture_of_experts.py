"""Benchmarks for the mixture_of_experts chapter.

- One MoE layer forward (4,096 tokens, d = h = 64, 8 experts, top-2): our index dispatch
  (``moe_dispatch``: per-expert buffers, ``E · C`` expert evaluations) against the plain
  dense-dispatch peer (``moe_dense_reference``: every expert on every token, masked by the gate
  matrix, ``E · T`` evaluations).  megablocks (block-sparse GPU kernels) needs a GPU and is not
  compared here.  The agreement column gives the largest output difference.
- The same with a capacity factor of 1.25 (tokens past capacity dropped by both).
"""
from __future__ import annotations

import torch

from benchmarks.harness import Benchmark
from sparsebook import mixture_of_experts as moe
from sparsebook.seeding import seed_everything

T, D, H, E, K = 4096, 64, 64, 8, 2


def _setup():
    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, T, D, generator=g)
    ex = {"w1": torch.randn(1, E, D, H, generator=g) / 8, "b1": torch.zeros(1, E, H),
          "w2": torch.randn(1, E, H, D, generator=g) / 8, "b2": torch.zeros(1, E, D)}
    _, idx, gates = moe.top_k_routing(torch.randn(1, T, E, generator=g), K)
    return x, ex, idx, gates


def _check(a, b) -> str:
    err = float((a - b).abs().max())
    if err > 1e-4:
        raise AssertionError(f"outputs differ by {err}")
    return f"max abs diff {err:.1e}"


def benchmarks() -> list[Benchmark]:
    x, ex, idx, gates = _setup()
    out = []
    for factor in (None, 1.25):
        cap = moe.expert_capacity(T, E, K, factor) if factor else None
        _, kept = moe.moe_dispatch(x, ex, idx, gates, cap)
        gm = moe.gate_matrix(idx, gates, E, kept)

        def ours(cap=cap):
            with torch.no_grad():
                return moe.moe_dispatch(x, ex, idx, gates, cap)[0]

        def peer(gm=gm):
            with torch.no_grad():
                return moe.moe_dense_reference(x, ex, gm)

        name = "MoE layer forward, index dispatch" + (f" (capacity factor {factor})" if factor else " (no drops)")
        out.append(Benchmark("mixture_of_experts", name, ours, peer, "dense-masked dispatch (every expert on every token)",
                             check=_check))
    return out
