"""What did pinning PyTorch, MKL and XLA to AVX2 cost on an AVX-512 CPU?  (Measured once, for issue 11.)

Until the notebook regression compared measurements within their uncertainty, ``import sparsebook``
set ``ATEN_CPU_CAPABILITY=avx2``, ``MKL_CBWR=AVX2``, ``ONEDNN_MAX_CPU_ISA=AVX2`` and
``--xla_cpu_max_isa=AVX2``.  This script times three workloads on one thread; run it twice, with
and without those variables (``python -m benchmarks.isa_cost``), and compare the medians.
"""
from __future__ import annotations

import torch

from benchmarks.harness import median_time


def _median(fn, repeats):
    return median_time(fn, repeats)[0]


def measure() -> dict:
    import jax
    import jax.numpy as jnp

    from benchmarks.seeds_runner import train_one

    torch.set_num_threads(1)
    a = torch.randn(1024, 1024)
    x = jnp.ones((1024, 1024))
    f = jax.jit(lambda x: (x @ x).sum())
    return {
        "digits MLP, 300 Adam steps (s)": _median(lambda: train_one(0), 3),
        "torch 1024² matmul ×10 (s)": _median(lambda: [a @ a for _ in range(10)], 5),
        "XLA 1024² matmul ×10 (s)": _median(lambda: [f(x).block_until_ready() for _ in range(10)], 5),
        "ATen capability": torch.backends.cpu.get_cpu_capability(),
    }


if __name__ == "__main__":
    for k, v in measure().items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
