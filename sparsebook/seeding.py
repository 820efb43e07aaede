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
