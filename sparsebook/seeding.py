"""Seeding and thread pinning: one call makes an experiment reproducible on any machine.

The same seeded PyTorch training gives different numbers with 1 and with 2
intra-op threads (floating-point reductions are split differently), so the
thread count is part of the seed.  ``seed_everything`` pins it to one thread.
"""
from __future__ import annotations

import os
import random

import numpy as np

#: Intra-op threads used for every experiment (results depend on this number).
TORCH_THREADS = 1

#: Instruction sets pinned before PyTorch and XLA load, so that floating-point reductions
#: (matrix products, sums) take the same code path on every x86-64 machine with AVX2:
#: an AVX-512 machine would otherwise split reductions differently and a trained
#: network's numbers would drift in the last digits, then further over training.
ISA_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",     # PyTorch's own vectorised kernels
    "MKL_CBWR": "AVX2",                # MKL's conditional numerical reproducibility
    "ONEDNN_MAX_CPU_ISA": "AVX2",      # oneDNN (convolutions, some matmuls)
}
XLA_ISA_FLAG = "--xla_cpu_max_isa=AVX2"


def pin_instruction_sets() -> None:
    """Set :data:`ISA_ENV` and the XLA flag (x86-64 only), unless the user already chose values.

    Takes effect only for libraries not yet loaded: ``import sparsebook`` before ``torch`` and
    before JAX's first computation (``sparsebook/__init__`` calls this at import).
    """
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    for key, value in ISA_ENV.items():
        os.environ.setdefault(key, value)
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_max_isa" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + XLA_ISA_FLAG).strip()


def seed_everything(seed: int) -> "np.random.Generator":
    """Seed Python, NumPy and PyTorch, pin PyTorch to one thread, and return a NumPy Generator.

    JAX has no global state: derive keys with :func:`jax_key` (``jax.random.key(seed)``).
    XLA's CPU reductions are deterministic for a fixed program on one machine; JAX code in
    this package keeps results in integers or rounds them before printing.

    Parameters
    ----------
    seed : int, non-negative
        The experiment's seed.

    Returns
    -------
    numpy.random.Generator
        ``np.random.default_rng(seed)``, the generator experiment code should draw from.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int >= 0; got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        torch = None
    if torch is not None:
        torch.manual_seed(seed)
        if torch.get_num_threads() != TORCH_THREADS:
            torch.set_num_threads(TORCH_THREADS)
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def jax_key(seed: int):
    """``jax.random.key(seed)`` after the same argument checks as :func:`seed_everything`."""
    seed_everything(seed)
    import jax

    return jax.random.key(int(seed))
