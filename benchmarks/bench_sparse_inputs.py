"""Benchmarks for the sparse_inputs chapter.

- Multigrid transfer on MgNO's grids (16 samples × 8 channels × 33 nodes): our ``restrict`` /
  ``prolong`` (3 taps stacked into one matrix product) against ``torch.nn.functional.conv1d`` /
  ``conv_transpose1d`` (oneDNN), forward and backward, the work of one MgNO level.
- AUC of 100,000 scores with ties: our mid-rank Mann-Whitney ``auc`` against
  ``sklearn.metrics.roc_auc_score``.
- Mini-batch aware L2 against L2 on the whole table, one regularised update of a 10⁶ × 8
  table: not the same penalty, the same job (regularise the embeddings in one step); the
  agreement column gives the bytes of gradient each writes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from benchmarks.harness import Benchmark
from sparsebook import sparse_inputs as si
from sparsebook.seeding import seed_everything


def benchmarks() -> list[Benchmark]:
    seed_everything(0)
    k = torch.randn(8, 8, 3, requires_grad=True)
    x = torch.randn(16, 8, 33, requires_grad=True)
    y = torch.randn(16, 8, 17, requires_grad=True)

    def transfer(restrict, prolong):
        def run():
            out = (restrict(x, k) ** 2).sum() + (prolong(y, k) ** 2).sum()
            g = torch.autograd.grad(out, (x, y, k))
            return [out.detach()] + [t.detach() for t in g]
        return run

    ours = transfer(si.restrict, si.prolong)
    peer = transfer(lambda a, w: F.conv1d(a, w, stride=2, padding=1),
                    lambda a, w: F.conv_transpose1d(a, w, stride=2, padding=1))

    def check_close(a, b):
        err = max(float((u - v).abs().max() / v.abs().max().clamp(min=1e-30)) for u, v in zip(a, b))
        if err > 1e-4:
            raise AssertionError(f"transfer operators differ: rel err {err:.2g}")
        return f"max rel err {err:.1g} (float32)"

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 100_000)
    scores = np.round(rng.random(100_000) + 0.3 * labels, 3)

    def check_auc(a, b):
        if abs(a - b) > 1e-12:
            raise AssertionError(f"AUC differs: {a} vs {b}")
        return f"|diff| {abs(a - b):.1g}"

    V, d = 1_000_000, 8
    table = torch.nn.Parameter(torch.randn(V, d) * 0.1)
    rows = torch.unique(torch.as_tensor(rng.integers(0, V, 256 * 11)))
    counts = torch.ones(V)
    nbytes = {}

    def mba():
        table.grad = None
        si.mba_l2(table, rows, counts, 0.1).backward()
        with torch.no_grad():
            table.add_(table.grad, alpha=-1e-3)
        nbytes["ours"] = si.sparse_grad_bytes(table.grad)
        return nbytes["ours"]

    def full():
        table.grad = None
        si.full_l2(table, 0.1).backward()
        with torch.no_grad():
            table.add_(table.grad, alpha=-1e-3)
        nbytes["peer"] = si.sparse_grad_bytes(table.grad)
        return nbytes["peer"]

    def check_bytes(a, b):
        return f"gradient bytes: MBA {a:,} (sparse), full-table L2 {b:,} (dense)"

    return [
        Benchmark("sparse_inputs", "restrict + prolong, fwd + bwd, 16x8x33", ours, peer,
                  "torch conv1d / conv_transpose1d", repeats=21, check=check_close),
        Benchmark("sparse_inputs", "AUC, 100,000 scores with ties", lambda: si.auc(scores, labels),
                  lambda: float(roc_auc_score(labels, scores)), "sklearn roc_auc_score", repeats=7, check=check_auc),
        Benchmark("sparse_inputs", "embedding L2 step, 1e6 x 8 table", mba, full,
                  "full-table L2 (dense gradient)", repeats=7, check=check_bytes),
    ]
