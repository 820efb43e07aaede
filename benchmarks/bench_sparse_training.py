"""Benchmarks for the sparse_training chapter.

- Ridge probe of five seeds' features at once (``ridge_probe``: one batched float64 solve in
  PyTorch) against scikit-learn's ``RidgeClassifier`` fitted seed by seed, the library the
  kernel is tested against.
- Per-row top-k masks (``row_topk_mask``, ``torch.topk``) against a stable ``argsort`` of every row.
- The Gaussian KL of mean-field VI (``gaussian_kl``, closed form) against
  ``torch.distributions.kl_divergence``.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.harness import Benchmark
from sparsebook import sparse_training as st


def benchmarks() -> list[Benchmark]:
    from sklearn.linear_model import RidgeClassifier

    g = torch.Generator().manual_seed(0)
    x, xt = torch.randn(5, 1347, 512, generator=g), torch.randn(5, 450, 512, generator=g)
    y = torch.randint(0, 10, (5, 1347), generator=g)

    def peer_ridge():
        return np.stack([RidgeClassifier(alpha=1.0).fit(x[k].numpy(), y[k].numpy()).predict(xt[k].numpy()) for k in range(5)])

    def check_ridge(a, b):
        agree = float((np.asarray(a) == b).mean())
        if agree < 0.999:
            raise AssertionError(f"predictions differ on {1 - agree:.2%} of rows")
        return f"same predictions on {agree:.1%} of 2,250 test rows"

    scores = torch.randn(5, 128, 128, generator=g)

    def peer_topk():
        keep = st.n_keep(128, 0.8)
        order = torch.argsort(scores, dim=-1, stable=True)
        m = torch.zeros_like(scores, dtype=torch.bool)
        return m.scatter_(-1, order[..., -keep:], True)

    def check_equal(a, b):
        if not torch.equal(a, b):
            raise AssertionError("masks differ")
        return f"identical masks, {int(a.sum())} kept"

    mu, sigma = torch.randn(5, 128, 64, generator=g), torch.rand(5, 128, 64, generator=g) + 0.01

    def peer_kl():
        return torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0))

    def check_close(a, b):
        err = float((a - b).abs().max())
        if err > 1e-4:
            raise AssertionError(f"max abs error {err}")
        return f"max abs err {err:.1e}"

    return [
        Benchmark("sparse_training", "ridge probe, 5 seeds × 1347×512 features", lambda: st.ridge_probe(x, y, xt, 10, 1.0).numpy(),
                  peer_ridge, "sklearn RidgeClassifier per seed", repeats=3, check=check_ridge),
        Benchmark("sparse_training", "per-row top-k mask, 5×128×128, s=0.8", lambda: st.row_topk_mask(scores, 0.8), peer_topk,
                  "stable argsort per row", repeats=7, check=check_equal),
        Benchmark("sparse_training", "Gaussian KL, 5×128×64", lambda: st.gaussian_kl(mu, sigma, 1.0), peer_kl,
                  "torch.distributions.kl_divergence", repeats=7, check=check_close),
    ]
