"""Benchmarks for the inductive_bias chapter: our kernels against the standard peers doing the same job."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from benchmarks.harness import Benchmark
from sparsebook import inductive_bias as ib
from sparsebook.inductive_bias.kernels import _nll


def _gx2_case():
    rng = np.random.default_rng(0)
    w = rng.uniform(0.1, 1.0, 64) / 64
    lam = rng.uniform(0.0, 2.0, 64)
    k1 = float(np.sum(w * (1 + lam)))
    return w, lam, 0.6 * k1


def _mc_logcdf(w, lam, x, n=200_000):
    s = ib.sample_generalized_chi2(w, lam, n, np.random.default_rng(1))
    return float(np.log(np.mean(s <= x))), n


def _check_mc(ours, peer):
    lp_mc, n = peer
    p = np.exp(lp_mc)
    se = np.sqrt((1 - p) / (p * n))
    diff = abs(ours - lp_mc)
    if diff > 0.03 + 4 * se:
        raise AssertionError(f"saddlepoint {ours:.4g} vs Monte Carlo {lp_mc:.4g} (se {se:.2g})")
    return f"|Δ log P| {diff:.2g} (MC se {se:.1g})"


def _check_rel(ours, peer):
    rel = abs(ours / peer - 1)
    if rel > 1e-3:
        raise AssertionError(f"relative error {rel:.2g}")
    return f"rel err {rel:.1g}"


def _check_imhof(ours, peer):
    if abs(ours - peer) > 0.02:
        raise AssertionError(f"saddlepoint log P {ours:.6g} vs Imhof {peer:.6g}")
    return f"|Δ log P| {abs(ours - peer):.1g}"


def _fit_case():
    rng = np.random.default_rng(2)
    return 0.01 * stats.ncx2.rvs(40, 8, size=1000, random_state=rng)


def _scipy_fit(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, nc, _, s = stats.ncx2.fit(x, floc=0)
    return ib.ScaledNcx2(float(df), float(nc), float(s), "scipy")


def _check_fit(x):
    def check(ours, peer):
        a, b = _nll(ours, x) / x.size, _nll(peer, x) / x.size
        eps = float(np.quantile(x, 0.001))
        return (f"mean NLL ours {a:.5g} vs scipy {b:.5g}; bits at 0.1% quantile "
                f"{ours.bits(eps):.3g} vs {peer.bits(eps):.3g}")
    return check


def _cka_gram(x, y):
    """Kornblith et al.'s HSIC form: centred Gram matrices, tr(K H L H) / sqrt(...)."""
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))


def benchmarks() -> list[Benchmark]:
    w, lam, x = _gx2_case()
    k = 100
    xe = 0.2 * k * 0.5
    fit_x = _fit_case()
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2000, 256)), rng.standard_normal((2000, 128))
    b[:, :64] += a[:, :64]
    return [
        Benchmark("inductive_bias", "generalized_chi2_logcdf (64 terms)",
                  ours=lambda: ib.generalized_chi2_logcdf(x, w, lam),
                  peer=lambda: _mc_logcdf(w, lam, x), peer_name="Monte Carlo, 2·10^5 draws (NumPy)",
                  repeats=3, check=_check_mc),
        Benchmark("inductive_bias", "generalized_chi2_logcdf (equal weights)",
                  ours=lambda: ib.generalized_chi2_logcdf(xe, np.full(k, 0.2), np.full(k, 0.05)),
                  peer=lambda: float(stats.ncx2.logcdf(xe / 0.2, k, 0.05 * k)),
                  peer_name="scipy.stats.ncx2.logcdf (exact)", check=_check_rel),
        Benchmark("inductive_bias", "generalized_chi2_logcdf vs Imhof (64 terms, bulk)",
                  ours=lambda: ib.generalized_chi2_logcdf(x, w, lam),
                  peer=lambda: float(np.log(ib.generalized_chi2_cdf_imhof(x, w, lam))),
                  peer_name="Imhof's integral (scipy.integrate.quad, exact)", repeats=3,
                  check=lambda ours, peer: _check_imhof(ours, peer)),
        Benchmark("inductive_bias", "fit_scaled_ncx2 (n = 1000)",
                  ours=lambda: ib.fit_scaled_ncx2(fit_x), peer=lambda: _scipy_fit(fit_x),
                  peer_name="scipy.stats.ncx2.fit (default start)", repeats=3, check=_check_fit(fit_x)),
        Benchmark("inductive_bias", "linear_cka (2000 × 256 vs 128)",
                  ours=lambda: ib.linear_cka(a, b), peer=lambda: _cka_gram(a, b),
                  peer_name="centred-Gram HSIC form (NumPy)", check=_check_rel),
    ]
