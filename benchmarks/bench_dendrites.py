"""dendrites: exact false-match probabilities against scipy.stats.hypergeom.sf; JAX Monte Carlo against NumPy."""
from __future__ import annotations

import numpy as np
from scipy.stats import hypergeom

from benchmarks.harness import Benchmark
from sparsebook import dendrites as dd

# the optimal-threshold grid of the chapter: n 10k-190k, 0.5-3% active, s 20-50, θ 1-20
N, SP, S, TH = np.meshgrid(np.arange(10_000, 190_001, 20_000), [0.005, 0.01, 0.015, 0.02, 0.025, 0.03],
                           np.arange(20, 51, 5), np.arange(1, 21), indexing="ij")
A = np.rint(N * SP).astype(np.int64)


def _agree(ours, peer):
    ok = peer > 1e-280          # scipy's own accuracy is limited far in the tail
    rel = np.max(np.abs(ours[ok] - peer[ok]) / peer[ok])
    return f"max rel diff {rel:.1e} on {ok.sum()} of {ok.size} points"


def _numpy_monte_carlo(n, a, s, theta, side, seed=0):
    """The same block algorithm as sparsebook.dendrites, in NumPy: random subsets by argpartition, overlaps by matmul."""
    rng = np.random.default_rng(seed)

    def subsets(size):
        idx = np.argpartition(rng.random((side, n)), size, axis=1)[:, :size]
        m = np.zeros((side, n), np.float32)
        np.put_along_axis(m, idx, 1.0, axis=1)
        return m

    return int(np.sum(subsets(a) @ subsets(s).T >= theta))


def benchmarks() -> list[Benchmark]:
    side = 1024
    return [
        Benchmark("dendrites", f"false_match_probability ({N.size:,} grid points)",
                  ours=lambda: dd.false_match_probability(N, A, S, TH),
                  peer=lambda: hypergeom.sf(TH - 1, N, A, S), peer_name="scipy.stats.hypergeom.sf",
                  check=_agree),
        Benchmark("dendrites", f"simulate_false_match ({side * side:,} trials, n=2000)",
                  ours=lambda: dd.simulate_false_match(2000, 64, 24, 6, trials=side * side, seed=0).hits,
                  peer=lambda: _numpy_monte_carlo(2000, 64, 24, 6, side), peer_name="NumPy (same algorithm)",
                  repeats=5),
    ]
