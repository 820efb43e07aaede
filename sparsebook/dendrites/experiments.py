"""Experiments of the dendrites chapter: the config (``DendritesConfig.preset("ci"|"full")``) and the runners.

Each ``run_*`` evaluates the exact probabilities of :mod:`sparsebook.dendrites.kernels` over the
configured grids (``run_monte_carlo`` also runs the Monte Carlo estimators) and returns the
arrays that the figures and the chapter's claims read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from sparsebook.dendrites.kernels import (false_match_probability, false_negative_probability,
                                          log_false_match_probability, loglog_slope, simulate_false_match,
                                          simulate_false_negative, simulate_union_false_match,
                                          union_false_match_probability, union_synapse_count)

# ---------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DendritesConfig:
    """Parameters of the chapter's experiments (defaults follow the paper's figures).

    ``preset("ci")`` runs in seconds on a laptop; ``preset("full")`` uses the paper's
    Monte Carlo budget (1e8 trials a point) and finer grids.
    """

    scale: str = "ci"
    # false match against n (paper: a = 64, 128, 256; s = 24, θ = 12)
    n_values: tuple = tuple(int(x) for x in np.unique(np.rint(np.logspace(np.log10(500), np.log10(50_000), 25))))
    a_values: tuple = (64, 128, 256)
    s: int = 24
    theta: int = 12
    dense_fraction: float = 0.5
    sparse_fraction: float = 0.02
    # false match against s with θ = s/2
    s_values: tuple = tuple(range(2, 65, 2))
    n_for_s: int = 10_000
    a_for_s: int = 200
    # subsampling: segment of s synapses on a large pattern of a cells out of n
    n_sub: int = 200_000
    a_sub_values: tuple = (500, 2000, 8000)
    s_sub_values: tuple = tuple(range(2, 41, 2))
    sub_tolerance: float = 1e-9
    # noise
    a_noise: int = 64
    s_noise: int = 24
    n_noise: int = 10_000
    theta_noise_values: tuple = (6, 9, 12, 15, 18)
    # union
    n_union: int = 10_000
    a_union: int = 64
    s_union: int = 24
    theta_union: int = 12
    m_values: tuple = tuple(range(1, 41))
    union_tolerance: float = 1e-6
    # optimal threshold grid (paper: n 10k-190k, sparsity 0.5%-3%, s 20-50)
    grid_n: tuple = tuple(range(10_000, 190_001, 20_000))
    grid_sparsity: tuple = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03)
    grid_s: tuple = tuple(range(20, 51, 5))
    grid_theta: tuple = tuple(range(1, 21))
    optimum_noise: float = 0.25
    optimum_noise_values: tuple = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
    # Monte Carlo: (n, a, s, θ) false-match points, (a, s, θ, v) false-negative points,
    # (n, a, s, m, θ) union points
    mc_trials: int = 4_000_000
    mc_false_match: tuple = ((1000, 50, 24, 8), (2000, 64, 24, 6), (1000, 100, 24, 10), (4000, 128, 16, 5))
    mc_false_negative: tuple = ((64, 24, 12, 16), (64, 24, 12, 24), (64, 24, 12, 32), (128, 32, 20, 40))
    mc_union: tuple = ((2000, 40, 20, 5, 6), (2000, 40, 20, 10, 8))

    @classmethod
    def preset(cls, scale: str) -> "DendritesConfig":
        from sparsebook.scales import check_scale

        check_scale(scale)
        if scale == "ci":
            return cls(scale="ci")
        return cls(scale="full", mc_trials=100_000_000,
                   n_values=tuple(int(x) for x in np.unique(np.rint(np.logspace(np.log10(500), 5, 60)))),
                   grid_n=tuple(range(10_000, 190_001, 10_000)),
                   grid_sparsity=tuple(np.round(np.arange(0.005, 0.0301, 0.0025), 4)),
                   grid_s=tuple(range(20, 51, 2)),
                   mc_false_match=cls.mc_false_match + ((10_000, 200, 24, 6), (5_000, 128, 24, 7)),
                   mc_false_negative=cls.mc_false_negative + ((256, 48, 24, 96),))


def run_scaling(cfg: DendritesConfig) -> dict:
    """False match against n (several a), at fixed sparsity (dense and sparse), against s with θ = s/2,
    and under subsampling (s < a).  Returns arrays for the figures and the fitted exponents."""
    n = np.asarray(cfg.n_values)
    out = {"n": n, "fm_vs_n": {a: false_match_probability(n, a, cfg.s, cfg.theta) for a in cfg.a_values}}
    large = n >= 0.5 * n.max()
    out["slope_vs_n"] = {a: loglog_slope(n[large], out["fm_vs_n"][a][large]) for a in cfg.a_values}
    for name, frac in (("dense", cfg.dense_fraction), ("sparse", cfg.sparse_fraction)):
        a = np.rint(frac * n).astype(int)
        keep = a >= cfg.theta                     # fewer active cells than θ can never match
        out[f"n_{name}"] = n[keep]
        out[f"fm_{name}"] = false_match_probability(n[keep], a[keep], cfg.s, cfg.theta)
        # n → ∞ at fixed a/n = p: the hypergeometric tail tends to the binomial tail
        out[f"fm_{name}_limit"] = float(binom.sf(cfg.theta - 1, cfg.s, frac))
    s = np.asarray(cfg.s_values)
    out["s"] = s
    out["log10_fm_vs_s"] = log_false_match_probability(cfg.n_for_s, cfg.a_for_s, s, s // 2) / np.log(10)
    fit = np.polyfit(s, out["log10_fm_vs_s"], 1, full=True)
    resid = fit[1][0] if len(fit[1]) else 0.0
    ss_tot = float(np.sum((out["log10_fm_vs_s"] - out["log10_fm_vs_s"].mean()) ** 2))
    out["s_slope"] = float(fit[0][0])
    ssub = np.asarray(cfg.s_sub_values)
    out["s_min_sub"] = {a: int(ssub[out_sub <= cfg.sub_tolerance].min()) if np.any(out_sub <= cfg.sub_tolerance) else None
                        for a, out_sub in ((a, false_match_probability(cfg.n_sub, a, np.asarray(cfg.s_sub_values),
                                                                       np.asarray(cfg.s_sub_values) // 2))
                                           for a in cfg.a_sub_values)}
    out["s_r2"] = 1.0 - float(resid) / ss_tot
    out["s_sub"] = ssub
    out["fm_sub"] = {a: false_match_probability(cfg.n_sub, a, ssub, ssub // 2) for a in cfg.a_sub_values}
    return out


def run_noise(cfg: DendritesConfig) -> dict:
    """False negatives against the fraction of the pattern replaced, for several θ, with each θ's
    false-match rate at ``n_noise``."""
    v = np.arange(cfg.a_noise + 1)
    thetas = np.asarray(cfg.theta_noise_values)
    fn = false_negative_probability(cfg.a_noise, cfg.s_noise, thetas[:, None], v[None, :])
    fm = false_match_probability(cfg.n_noise, cfg.a_noise, cfg.s_noise, thetas)
    # largest noise fraction with P(miss) <= 1%, per θ
    tolerated = np.array([v[row <= 0.01].max() / cfg.a_noise for row in fn])
    # noise fraction at which P(miss) crosses 1/2 (linear interpolation; P(miss) rises with v)
    half = np.array([np.interp(0.5, row, v / cfg.a_noise) for row in fn])
    return {"noise": v / cfg.a_noise, "thetas": thetas, "fn": fn, "fm": fm, "tolerated_1pct": tolerated,
            "half_miss_noise": half}


def run_union(cfg: DendritesConfig) -> dict:
    """Union property: distinct synapses and false-match rate against the number of stored patterns m."""
    m = np.asarray(cfg.m_values)
    count = union_synapse_count(cfg.n_union, cfg.s_union, m)
    fm = union_false_match_probability(cfg.n_union, cfg.a_union, cfg.s_union, m, cfg.theta_union)
    ok = m[fm <= cfg.union_tolerance]
    return {"m": m, "synapses": count, "fm": fm, "m_max": int(ok.max()) if ok.size else 0}


def run_optimal_threshold(cfg: DendritesConfig) -> dict:
    """Median false-match rate over the grid (n, sparsity, s) against θ; the θ that minimises the median
    of false match + false negative (a fraction ``optimum_noise`` of the pattern replaced), and that
    optimum for other noise levels."""
    N, SP, S, TH = np.meshgrid(cfg.grid_n, cfg.grid_sparsity, cfg.grid_s, cfg.grid_theta, indexing="ij")
    A = np.rint(N * SP).astype(np.int64)
    thetas = np.asarray(cfg.grid_theta)
    fm = false_match_probability(N, A, S, TH).reshape(-1, len(thetas))
    out = {"theta": thetas, "median_fm": np.median(fm, axis=0), "optimum": {}, "median_total": {}}
    for noise in cfg.optimum_noise_values:
        V = np.rint(A * noise).astype(np.int64)
        fn = false_negative_probability(A, S, TH, V).reshape(-1, len(thetas))
        total = np.median(fm + fn, axis=0)
        out["median_total"][noise] = total
        out["optimum"][noise] = int(thetas[np.argmin(total)])
    if cfg.optimum_noise not in out["optimum"]:
        raise ValueError("optimum_noise must be one of optimum_noise_values")
    out["theta_star"] = out["optimum"][cfg.optimum_noise]
    return out


def run_monte_carlo(cfg: DendritesConfig, seed: int = 0) -> dict:
    """Monte Carlo estimates at the configured points, each with its exact value and z-score."""
    from sparsebook.progress import progress
    from sparsebook.seeding import seed_everything

    seed_everything(seed)
    points = ([("false match", p) for p in cfg.mc_false_match] + [("false negative", p) for p in cfg.mc_false_negative]
              + [("union", p) for p in cfg.mc_union])
    rows = []
    for i, (kind, p) in enumerate(progress(points, desc="Monte Carlo", scale=cfg.scale)):
        fn = {"false match": simulate_false_match, "false negative": simulate_false_negative,
              "union": simulate_union_false_match}[kind]
        rows.append((kind, p, fn(*p, trials=cfg.mc_trials, seed=seed * 1000 + i)))
    exact_rows = [r for kind, _, r in rows if kind != "union"]
    union_rows = [r for kind, _, r in rows if kind == "union"]
    return {"rows": rows, "max_abs_z": max(abs(r.z) for r in exact_rows),
            "union_max_rel_dev": max(abs(r.estimate / r.exact - 1) for r in union_rows) if union_rows else float("nan")}
