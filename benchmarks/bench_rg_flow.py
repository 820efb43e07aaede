"""rg_flow: kernel/vertex recursions (JAX scan) and the Monte Carlo ensemble (batched PyTorch) against
straightforward NumPy implementations of the same computations.

neural-tangents (analytic NNGP/NTK) would be the natural peer for the kernels, but it needs an old JAX and
TensorFlow, so it is not installed here; the optional ``make crosscheck-nt`` compares against it from a separate
``.venv-nt`` (benchmarks/crosscheck_neural_tangents.py), and tests/test_rg_flow.py checks closed forms.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import erf as sp_erf

from benchmarks.harness import Benchmark
from sparsebook import rg_flow as rg
from sparsebook.rg_flow.kernels import _flows, _trapezoid_nodes

DEPTH = 1000


def _numpy_flow(sigma, dsigma, c_b, c_w, k1, depth, n_nodes=rg.N_NODES):
    """The same recursions (K, V and the NTK, so χ∥ and χ⊥ too) with the same trapezoidal nodes, as a
    plain NumPy loop; ``dsigma`` is σ' written by hand (ours uses autodiff)."""
    x, w = _trapezoid_nodes(n_nodes)
    k, v, th = k1, 0.0, (k1 - c_b) / c_w
    ks, vs, ths = np.empty(depth), np.empty(depth), np.empty(depth)
    for l in range(depth):
        ks[l], vs[l], ths[l] = k, v, th
        z = math.sqrt(k) * x
        s2 = sigma(z) ** 2
        m2, m4 = np.dot(w, s2), np.dot(w, s2 * s2)
        chi = c_w * np.dot(w, s2 * (z * z - k)) / (2 * k * k)
        perp = c_w * np.dot(w, dsigma(z) ** 2)
        k, v, th = c_b + c_w * m2, c_w * c_w * (m4 - m2 * m2) + chi * chi * v, m2 + perp * th
    return ks, vs, ths


def _numpy_ensemble(c_w, width, depth, n_networks, seed=0):
    """Real random tanh networks with NumPy's generator: Σz² and Σz⁴ per network and layer."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_networks, depth, 2))
    for i in range(n_networks):
        h = np.ones(width)
        for l in range(depth):
            W = rng.standard_normal((width, width), dtype=np.float32) * np.float32(math.sqrt(c_w / width))
            z = (W @ h.astype(np.float32)).astype(np.float64)
            out[i, l] = (z * z).sum(), (z ** 4).sum()
            h = np.tanh(z)
    return out


def _agree_flow(ours, peer):
    k_rel = np.max(np.abs(ours[0] - peer[0]) / peer[0])
    v_rel = np.max(np.abs(ours[1][1:] - peer[1][1:]) / np.abs(peer[1][1:]))
    t_rel = np.max(np.abs(ours[2] - peer[2]) / peer[2])
    if max(k_rel, v_rel, t_rel) > 1e-9:
        raise AssertionError(f"flows disagree: K {k_rel:.1e}, V {v_rel:.1e}, NTK {t_rel:.1e}")
    return f"max rel diff K {k_rel:.0e}, V {v_rel:.0e}, NTK {t_rel:.0e}"


def _agree_mc(ours, peer):
    n = 32
    a = rg.fourth_cumulant_estimate(ours, n)
    b = rg.fourth_cumulant_estimate(peer, n)
    z = np.abs(a["eps"][1:] - b["eps"][1:]) / np.hypot(a["eps_se"][1:], b["eps_se"][1:])
    if z.max() > 5:
        raise AssertionError(f"ensembles disagree: max z {z.max():.1f}")
    return f"Cov(z_i², z_j²)/K² agree, max |z| {z.max():.1f} (different random draws)"


def benchmarks() -> list[Benchmark]:
    erf = lambda z: sp_erf(z)  # noqa: E731
    derf = lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z)  # noqa: E731
    return [
        Benchmark("rg_flow", f"K, V and NTK flows (erf, {DEPTH} layers, {rg.N_NODES} nodes)",
                  ours=lambda: _flows("erf", 0.0, math.pi / 4, 1.0, DEPTH),
                  peer=lambda: _numpy_flow(erf, derf, 0.0, math.pi / 4, 1.0, DEPTH),
                  peer_name="NumPy loop (same nodes)", repeats=5, check=_agree_flow),
        Benchmark("rg_flow", "sample_layer_moments (tanh, 2000 networks, n=32, L=8)",
                  ours=lambda: rg.sample_layer_moments("tanh", 0.0, 1.0, 32, 8, 2000, seed=0),
                  peer=lambda: _numpy_ensemble(1.0, 32, 8, 2000, seed=1),
                  peer_name="NumPy loop over networks", repeats=3, check=_agree_mc),
    ]
