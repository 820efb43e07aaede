"""Five seeds for the price of how many?  The multi-seed paths of sparsebook measured side by side.

A 64-256-256-10 MLP on scikit-learn's digits, 300 Adam steps, batch 128 (the issue's reference
workload).  Timed in one process, each path once after a warm-up, on this machine's cores:

- one seed (``fit``), the unit;
- five seeds one after the other;
- five seeds on the worker pool (``over_seeds``, 2 single-thread processes, pool already started);
- five seeds batched into one computation (``fit_seeds``: vmap), on 1 and on 2 threads;
- both at once: ``over_seeds(..., batch=3)`` runs a batch of 3 seeds and one of 2 on the two workers.

``python -m benchmarks.seeds_runner`` prints a Markdown table (appended to results.md by make bench).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from sparsebook.data import digits
from sparsebook.models import accuracy, mlp
from sparsebook.seeding import over_seeds, seed_everything
from sparsebook.train import fit, fit_seeds

SIZES = (64, 256, 256, 10)
STEPS = 300
SEEDS = (0, 1, 2, 3, 4)


def _make():
    return mlp(SIZES)


def train_one(seed: int) -> float:
    """Train the reference MLP with ``seed`` and return its test accuracy."""
    d = digits()
    seed_everything(seed)
    model = _make()
    fit(model, d["x_train"], d["y_train"], steps=STEPS, lr=1e-3, seed=seed)
    return accuracy(model, torch.as_tensor(d["x_test"]), torch.as_tensor(d["y_test"]))


def train_batch(seeds) -> list[float]:
    """Train the reference MLP for every seed in ``seeds`` as one batched computation (``fit_seeds``)."""
    d = digits()
    out = fit_seeds(_make, d["x_train"], d["y_train"], list(seeds), steps=STEPS, lr=1e-3)
    logits = out["predict"](torch.as_tensor(d["x_test"]))
    y = torch.as_tensor(d["y_test"])
    return [int((logits[k].argmax(-1) == y).sum()) / len(y) for k in range(len(seeds))]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure() -> list[dict]:
    d = digits()
    rows = []
    train_one(0)
    t1, a1 = _timed(lambda: train_one(0))
    rows.append({"path": "one seed (fit)", "seconds": t1, "acc": [a1]})
    t, a = _timed(lambda: [train_one(s) for s in SEEDS])
    rows.append({"path": "5 seeds, sequential", "seconds": t, "acc": a})
    over_seeds(train_one, [0, 1], workers=2)  # start the pool (once per session)
    t, a = _timed(lambda: over_seeds(train_one, SEEDS, workers=2))
    rows.append({"path": "5 seeds, over_seeds (2 workers)", "seconds": t, "acc": a})
    over_seeds(train_batch, [0, 1], workers=2, batch=1)
    t, a = _timed(lambda: over_seeds(train_batch, SEEDS, workers=2, batch=3))
    rows.append({"path": "5 seeds, over_seeds(batch=3): fit_seeds batches of 3 and 2 on 2 workers",
                 "seconds": t, "acc": a})
    for threads in (1, 2):
        def batched():
            out = fit_seeds(_make, d["x_train"], d["y_train"], SEEDS, steps=STEPS, lr=1e-3)
            torch.set_num_threads(threads)
            logits = out["predict"](torch.as_tensor(d["x_test"]))
            return [float((logits[k].argmax(-1) == torch.as_tensor(d["y_test"])).double().mean())
                    for k in range(len(SEEDS))]

        def with_threads():
            seed_everything(0)
            torch.set_num_threads(threads)
            return batched()

        # fit_seeds calls seed_everything (1 thread) for each member's init; set threads after
        import sparsebook.seeding as sd
        old = sd.TORCH_THREADS
        sd.TORCH_THREADS = threads
        try:
            with_threads()
            t, a = _timed(with_threads)
        finally:
            sd.TORCH_THREADS = old
        rows.append({"path": f"5 seeds, fit_seeds (vmap, {threads} thread{'s' * (threads > 1)})",
                     "seconds": t, "acc": a})
    for r in rows:
        r["ratio"] = r["seconds"] / t1
    return rows


def table(rows) -> str:
    head = "| path | wall time | × one seed | test accuracy per seed |\n|---|---:|---:|---|\n"
    return head + "".join(f"| {r['path']} | {r['seconds']:.2f} s | {r['ratio']:.2f}× | "
                          f"{', '.join(f'{a:.3f}' for a in r['acc'])} |\n" for r in rows)


if __name__ == "__main__":
    print(table(measure()))
