"""information_compression: our binning and KDE estimators against scikit-learn's KSG estimators
(mutual_info_classif / mutual_info_regression) on Gaussian data with known mutual information, and
against plain NumPy implementations on the same activations."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
from scipy import integrate, stats
from scipy.special import logsumexp
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

from benchmarks.harness import Benchmark
from sparsebook import information_compression as ic

LN2 = math.log(2.0)
N = 4096                         # the chapter's sample size: one row per input of the 12-bit task


def _bi_awgn_bits(delta: float) -> float:
    """I(T;Y) for Y ~ Bernoulli(1/2), T = ±delta/2 + N(0, 1), by numerical integration (bits)."""
    def f(t):
        p0, p1 = stats.norm.pdf(t, -delta / 2), stats.norm.pdf(t, delta / 2)
        m = 0.5 * (p0 + p1)
        return 0.5 * p0 * math.log2(p0 / m) + 0.5 * p1 * math.log2(p1 / m) if m > 0 else 0.0
    return integrate.quad(f, -delta - 12, delta + 12, limit=200)[0]


def _channel(delta=2.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    t = (y - 0.5) * delta + rng.normal(size=N)
    return t, y, _bi_awgn_bits(delta)


def _gaussian_pair(rho=0.8, n=20_000, seed=1):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=n)
    v = rho * u + math.sqrt(1 - rho ** 2) * rng.normal(size=n)
    return u, v, -0.5 * math.log2(1 - rho ** 2)


def _layer(width=5, seed=2):
    """A tanh layer of random weights on the 12-bit inputs, (4096, width)."""
    X, y = ic.tishby_dataset()
    w = np.random.default_rng(seed).normal(size=(12, width)) / math.sqrt(12)
    return np.tanh(X @ w * 3.0), y


def _numpy_binning_loop(t, y, n_bins=30):
    """Plain NumPy/Python: fixed-width bins over the layer's range, bin patterns counted in a dict."""
    lo, hi = t.min(), t.max()
    idx = np.clip(np.floor((t - lo) / (hi - lo) * n_bins).astype(int), 0, n_bins - 1)
    pt, pty, py = Counter(), Counter(), Counter()
    for row, label in zip(map(tuple, idx), y):
        pt[row] += 1
        pty[(row, label)] += 1
        py[label] += 1

    def h(c):
        p = np.array(list(c.values()), float) / len(y)
        return float(-(p * np.log2(p)).sum())

    return h(pt), h(pt) + h(py) - h(pty)


def _numpy_kde(t, y, var=1e-3):
    """The Kolchinsky–Tracey bound with one N×N matrix and scipy's logsumexp."""
    def h(a):
        d2 = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
        return -np.mean(logsumexp(-d2 / (2 * var), axis=1) - math.log(len(a)))
    hh = h(t)
    hc = sum((y == c).mean() * h(t[y == c]) for c in np.unique(y))
    return hh / LN2, (hh - hc) / LN2


def benchmarks() -> list[Benchmark]:
    t, y, exact_ty = _channel()
    u, v, exact_uv = _gaussian_pair()
    layer, labels = _layer()
    kde_layer, kde_y = layer[:1024], labels[:1024]

    def check_channel(ours, peer):
        ksg = float(peer[0]) / LN2
        if abs(ours[1] - exact_ty) > 0.05 or abs(ksg - exact_ty) > 0.05:
            raise AssertionError(f"exact {exact_ty:.3f}, ours {ours[1]:.3f}, KSG {ksg:.3f} bits")
        return f"I(T;Y) exact {exact_ty:.3f}, ours {ours[1]:.3f}, KSG {ksg:.3f} bits"

    def check_pair(ours, peer):
        ksg = float(peer[0]) / LN2
        if abs(ours - exact_uv) > 0.06 or abs(ksg - exact_uv) > 0.06:
            raise AssertionError(f"exact {exact_uv:.3f}, ours {ours:.3f}, KSG {ksg:.3f} bits")
        return f"I(U;V) exact {exact_uv:.3f}, ours {ours:.3f}, KSG {ksg:.3f} bits"

    def check_equal(ours, peer):
        diff = float(np.max(np.abs(np.asarray(ours) - np.asarray(peer))))
        if diff > 1e-9:
            raise AssertionError(f"max |diff| {diff:.2e} bits")
        return f"max |diff| {diff:.1e} bits"

    return [
        Benchmark("information_compression", f"layer_information adaptive, binary Gaussian channel (N={N})",
                  ours=lambda: ic.layer_information(t, y, 30, "adaptive"),
                  peer=lambda: mutual_info_classif(t[:, None], y, random_state=0),
                  peer_name="sklearn mutual_info_classif (KSG)", check=check_channel),
        Benchmark("information_compression", "pair_information adaptive, Gaussian pair ρ=0.8 (N=20,000)",
                  ours=lambda: ic.pair_information(u, v, 30, "adaptive"),
                  peer=lambda: mutual_info_regression(u[:, None], v, random_state=0),
                  peer_name="sklearn mutual_info_regression (KSG)", check=check_pair, repeats=3),
        Benchmark("information_compression", f"layer_information fixed, 5-unit tanh layer (N={N})",
                  ours=lambda: ic.layer_information(layer, labels, 30, "fixed"),
                  peer=lambda: _numpy_binning_loop(layer, labels, 30),
                  peer_name="NumPy binning + Python dict counts", check=check_equal),
        Benchmark("information_compression", "kde_information σ²=1e-3, 5-unit tanh layer (N=1024)",
                  ours=lambda: ic.kde_information(kde_layer, kde_y, 1e-3),
                  peer=lambda: _numpy_kde(kde_layer, kde_y, 1e-3),
                  peer_name="NumPy N×N matrix + scipy logsumexp", check=check_equal, repeats=3),
    ]
