"""Seeding, thread pinning, and running an experiment over several seeds.

The same seeded PyTorch training gives different numbers with 1 and with 2
intra-op threads (floating-point reductions are split differently), so the
thread count is part of the seed.  ``seed_everything`` pins it to one thread.
That makes a re-run on the same machine identical; it does not make another
machine (another CPU, instruction set or BLAS) give the same bits, which nothing
can promise: results are compared across machines within their uncertainty
(:mod:`sparsebook.stats`).

:func:`over_seeds` runs ``fn(seed)`` for K seeds on a pool of single-thread worker
processes; the results do not depend on the number of workers.
"""
from __future__ import annotations

import os
import random
from typing import Any, Callable, Sequence

import numpy as np

#: Intra-op threads used for every experiment (results depend on this number).  The portability
#: test sets ``SPARSEBOOK_TORCH_THREADS=2`` to perturb the order of sums as another machine would.
TORCH_THREADS = int(os.environ.get("SPARSEBOOK_TORCH_THREADS", "1"))

def _deterministic_aten(torch) -> None:
    """ATen's deterministic-algorithms flag (warn only), as ``torch.use_deterministic_algorithms(True,
    warn_only=True)`` sets it.  The public function also sets ``torch._inductor.config.deterministic``,
    which imports the whole compiler stack (2-5 s per process, paid by every worker and every notebook
    kernel); nothing in this package compiles, so the ATen flag alone is set when the private setter
    exists, and the public function is the fallback."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # pragma: no cover - older or newer PyTorch without the private setter
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


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
    # deterministic cuBLAS on a GPU (read when CUDA starts; without it the deterministic flag below
    # makes every cuBLAS call warn); no effect on a CPU
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        torch = None
    if torch is not None:
        torch.manual_seed(seed)
        if torch.get_num_threads() != TORCH_THREADS:
            torch.set_num_threads(TORCH_THREADS)
        if not (torch.are_deterministic_algorithms_enabled()
                and torch.is_deterministic_algorithms_warn_only_enabled()):
            _deterministic_aten(torch)
        if torch.cuda.is_available():
            # the fused attention kernels (flash, memory-efficient, cuDNN) have non-deterministic
            # backward passes, and the deterministic flag above only warns: scaled_dot_product_attention
            # falls back to its math kernel (no effect on a CPU, whose kernels are deterministic)
            torch.backends.cuda.enable_flash_sdp(False)
            torch.backends.cuda.enable_mem_efficient_sdp(False)
            torch.backends.cuda.enable_cudnn_sdp(False)
    return np.random.default_rng(seed)


def jax_key(seed: int):
    """``jax.random.key(seed)`` after the same argument checks as :func:`seed_everything`."""
    seed_everything(seed)
    import jax

    return jax.random.key(int(seed))


# ---------------------------------------------------------------------------
# several seeds at once
# ---------------------------------------------------------------------------
_POOLS: dict = {}


def default_workers() -> int:
    """Worker processes for :func:`over_seeds`: ``SPARSEBOOK_WORKERS`` if set, else the CPU count.

    The notebook regression runs two chapters at once and sets ``SPARSEBOOK_WORKERS=1``.
    """
    env = os.environ.get("SPARSEBOOK_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"SPARSEBOOK_WORKERS must be an int >= 1; got {env!r}") from None
        if n < 1:
            raise ValueError(f"SPARSEBOOK_WORKERS must be an int >= 1; got {n}")
        return n
    return max(1, os.cpu_count() or 1)


def _worker_init():
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent (a kernel being shut down) handles Ctrl-C
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(TORCH_THREADS)
    except ImportError:  # pragma: no cover
        pass


def _pool(workers: int):
    """A persistent pool of ``workers`` spawned single-thread processes (started once per session)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = _POOLS.get(workers)
    if pool is None:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                   initializer=_worker_init)
        _POOLS[workers] = pool
        import atexit

        atexit.register(pool.shutdown, wait=True)  # before interpreter teardown, not during it
    return pool


class _Deferred:
    """``fn(*args, **kwargs)`` computed in this process when :meth:`result` is first called (the
    one-process stand-in for a :class:`concurrent.futures.Future`)."""

    def __init__(self, fn, args, kwargs):
        self._call, self._done, self._value = (fn, args, kwargs), False, None

    def result(self):
        if not self._done:
            fn, args, kwargs = self._call
            self._value, self._done = fn(*args, **kwargs), True
        return self._value


def in_background(fn: Callable[..., Any], *args, **kwargs):
    """Start ``fn(*args, **kwargs)`` beside the caller and return an object whose ``.result()`` gives its value.

    With more than one worker (:func:`default_workers`) it runs at once in a spare single-thread
    worker process (a persistent pool of one, like :func:`over_seeds`' workers); with one worker
    (the notebook regression sets ``SPARSEBOOK_WORKERS=1``) it runs in this process when its result
    is first asked for.  Either way the same single-thread computation, so the same numbers: a
    notebook starts its independent experiments early and collects them where it shows them.
    ``fn`` must be importable by name (a module-level function) and seed itself."""
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    if default_workers() == 1:
        return _Deferred(fn, args, kwargs)
    return _pool(1).submit(fn, *args, **kwargs)


def over_seeds(fn: Callable[..., Any], seeds: Sequence[int], *args, workers: int | None = None,
               batch: int | None = None, **kwargs) -> list:
    """``[fn(seed, *args, **kwargs) for seed in seeds]``, computed on a pool of worker processes.

    ``fn`` must seed itself from its first argument (the runners ``run_<experiment>(config, seed)``
    call :func:`seed_everything`) and be importable (a module-level function of the package, not
    a lambda or a notebook function) so that spawned workers can load it.  Each worker runs one
    PyTorch thread, so a seed's result is the same whatever the number of workers, and the same
    as a sequential call in a process pinned by :func:`seed_everything`.

    ``workers``: processes to use (default :func:`default_workers`); with 1, or with a single
    task, everything runs here, sequentially.  The list is in the order of ``seeds``.

    ``batch``: when set, ``fn`` is a batched runner: it takes a *list* of seeds and returns one
    result per seed (e.g. a :func:`sparsebook.train.fit_seeds` training).  The seeds are cut into
    consecutive chunks of ``batch`` (a fixed layout, so results do not depend on ``workers``) and
    the chunks are spread over the workers: 5 seeds with ``batch=3`` on 2 workers run as one
    batch of 3 and one of 2 side by side (benchmarks/results.md).
    A distributed engine (e.g. Ray) can take this function's place for full-scale sweeps: the
    contract is only ``fn(seed, ...)`` -> picklable result.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"every seed must be an int >= 0; got {s!r}")
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    seeds = [int(s) for s in seeds]
    if batch is None:
        tasks = seeds
    else:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1 or None; got {batch!r}")
        tasks = [seeds[i:i + batch] for i in range(0, len(seeds), batch)]
    workers = min(workers, len(tasks))
    if workers == 1:
        results = [fn(t, *args, **kwargs) for t in tasks]
    else:
        pool = _pool(workers)
        futures = [pool.submit(fn, t, *args, **kwargs) for t in tasks]
        results = [f.result() for f in futures]
    if batch is None:
        return results
    out = []
    for t, r in zip(tasks, results):
        r = list(r)
        if len(r) != len(t):
            raise ValueError(f"a batched fn must return one result per seed; got {len(r)} for {len(t)} seeds")
        out.extend(r)
    return out
