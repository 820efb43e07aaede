"""Experiments of the dendrites chapter: the config (``DendritesConfig.preset("ci"|"full")``) and the runners.

Each ``run_*`` evaluates the exact probabilities of :mod:`sparsebook.dendrites.kernels` over the
configured grids (``run_monte_carlo`` also runs the Monte Carlo estimators) and returns the
arrays that the figures and the chapter's claims read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from sparsebook.dendrites.kernels import (false_match_probability, false_match_probability_exact,
                                          false_negative_probability, log_false_match_probability, loglog_slope,
                                          printed_deviation, simulate_false_match, simulate_false_negative,
                                          simulate_union_false_match, union_false_match_exact,
                                          union_false_match_probability, union_synapse_count)

# ---------------------------------------------------------------------------
# Numbers printed by the authors (Ahmad & Hawkins 2016, and the scripts of numenta/htmresearch,
# projects/sdr_paper/), as printed, with where they are printed.  The chapter compares its exact
# values with these to the precision they are printed with (kernels.printed_deviation).
# ---------------------------------------------------------------------------
#: the authors' notebook: P(false match) for n = 10,000, a = 300, s = 24, θ = 12
AUTHORS_VALUE = "8.37584522709849e-13"
#: optimal-threshold figure (plot_optimal_threshold.py): median false-match rate over the grid, by θ
AUTHORS_MEDIANS = {9: "2.041e-9", 10: "7.400e-11", 12: "7.631e-14"}
#: the same script: mean false-match rate over the grid at θ = 3
AUTHORS_MEAN_THETA3 = "0.03666"
#: union lists (sdr_paper_unions.py), a = 200, s = 25, θ = 15: {(n, M): P(false match)}
AUTHORS_UNION = {(10_000, 6): "2.69e-7", (10_000, 7): "1.98e-6", (10_000, 10): "1.27e-4", (20_000, 13): "9.53e-7"}
#: noise curves (plot_noise_results.py), a = 128, s = 30: {(θ, v): P(false negative)}
AUTHORS_NOISE = {(12, 64): "0.0716985"}
#: Table 1 B–D, as the authors' notebook (sdr_math_neuron_paper.ipynb, sections "Table 1B/1C/1D")
#: prints them, all at n = 100,000 and a = 2,000: {(part, s, θ): P(false match)}.  B: θ = s;
#: C: s = 2θ; D: s = 2mθ (m = 2, 4, 6 at θ = 10; m = 6 at θ = 20).  B and C are evaluated there
#: from the sum over one common denominator, D from the sum of ratios.
AUTHORS_TABLE1 = {
    ("B", 6, 6): "6.35308872941916e-11", ("B", 8, 8): "2.52507239284961e-14", ("B", 10, 10): "1.00163216178113e-17",
    ("C", 12, 6): "5.29386836275369e-8", ("C", 16, 8): "2.81724528327272e-10", ("C", 20, 10): "1.54192767258720e-12",
    ("C", 24, 12): "8.58694100276592e-15",
    ("D", 40, 10): "4.91541864813209e-9", ("D", 80, 10): "4.62568448037595e-6", ("D", 120, 10): "0.000158799793094937",
    ("D", 240, 20): "1.07990763941591e-7",
}
#: Table 1's population
TABLE1_N, TABLE1_A = 100_000, 2_000
#: effect-of-n figure (plot_effect_of_n.py): the dashed "dense" curve, a = 0.25·n in the script
#: (labelled a = n/2 in the figure), runs from 0.0052 to 0.0072; its large-n end
AUTHORS_DENSE_LARGE_N = "0.0072"


# ---------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DendritesConfig:
    """Parameters of the chapter's experiments.

    The experiments that compare with the authors' printed numbers use the authors' parameters
    at every scale (the union, noise, optimal-threshold grid and the authors' notebook value);
    ``preset("full")`` changes only the Monte Carlo budget (the paper's 1e8 trials a point) and
    the resolution of the effect-of-n curves.
    """

    scale: str = "ci"
    # false match against n (paper's effect-of-n figure: a = 64, 128, 256; s = 24, θ = 12)
    n_values: tuple = tuple(int(x) for x in np.unique(np.rint(np.logspace(np.log10(300), 5, 25))))
    a_values: tuple = (64, 128, 256)
    s: int = 24
    theta: int = 12
    dense_fraction: float = 0.25        # the authors' script: a = 0.25·n (the figure's label says n/2)
    half_fraction: float = 0.5          # a true a = n/2
    sparse_fraction: float = 0.02
    # false match against s with θ = s/2 (paper's effect-of-s figure: (a, n) cases, last one dense)
    s_values: tuple = tuple(range(2, 65, 2))
    s_cases: tuple = ((32, 2000), (32, 4000), (512, 16000), (4000, 16000))
    # subsampling (Table 1: n = 100,000, a = 2,000): segment of s synapses on a large pattern
    n_sub: int = 100_000
    a_sub_values: tuple = (500, 2000, 8000)
    s_sub_values: tuple = tuple(range(2, 41, 2))
    sub_tolerance: float = 1e-9
    # noise (paper's noise figure: a = 128, s = 30, θ = 8, 12, 16)
    a_noise: int = 128
    s_noise: int = 30
    n_noise: int = 10_000
    theta_noise_values: tuple = (8, 12, 15, 16)
    # union (authors' union figure: a = 200, s = 25, θ = 15, n = 1,000, 10,000, 20,000)
    n_union_values: tuple = (1_000, 10_000, 20_000)
    a_union: int = 200
    s_union: int = 25
    theta_union: int = 15
    m_values: tuple = tuple(range(1, 31))
    union_tolerance: float = 1e-6
    union_many: int = 10
    # optimal threshold grid (the authors': n 10k-190k step 20k, sparsity 0.5%-3%, s 20-50 step 5)
    grid_n: tuple = tuple(range(10_000, 190_001, 20_000))
    grid_sparsity: tuple = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03)
    grid_s: tuple = tuple(range(20, 51, 5))
    grid_theta: tuple = tuple(range(1, 21))
    optimum_error: float = 1e-9
    optimum_noise_values: tuple = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
    # Monte Carlo: (n, a, s, θ) false-match points, (a, s, θ, v) false-negative points at the
    # paper's noise parameters, (n, a, s, m, θ) union points; all with P >= 1e-3 so that the
    # ci budget decides a 5% agreement
    mc_trials: int = 4_000_000
    mc_false_match: tuple = ((1000, 50, 24, 5), (4000, 128, 16, 4), (1000, 100, 24, 8))
    mc_false_negative: tuple = ((128, 30, 8, 80), (128, 30, 12, 64), (128, 30, 16, 48))
    mc_union: tuple = ((2000, 40, 20, 5, 6), (2000, 40, 20, 10, 8))
    mc_rtol: float = 0.05

    @classmethod
    def preset(cls, scale: str) -> "DendritesConfig":
        from sparsebook.scales import check_scale

        check_scale(scale)
        if scale == "ci":
            return cls(scale="ci")
        return cls(scale="full", mc_trials=100_000_000,
                   n_values=tuple(int(x) for x in np.unique(np.rint(np.logspace(np.log10(300), 5, 60)))),
                   mc_false_match=cls.mc_false_match + ((10_000, 200, 24, 6), (5_000, 128, 24, 7)),
                   mc_false_negative=cls.mc_false_negative + ((128, 30, 12, 48),))


def run_scaling(cfg: DendritesConfig) -> dict:
    """False match against n (several a, and at fixed fractions a/n), against s with θ = s/2 for the
    paper's (a, n) cases, and under subsampling (s < a).  All values exact."""
    n = np.asarray(cfg.n_values)
    out = {"n": n, "fm_vs_n": {a: false_match_probability(n, a, cfg.s, cfg.theta) for a in cfg.a_values}}
    large = n >= 0.5 * n.max()
    out["slope_vs_n"] = {a: loglog_slope(n[large], out["fm_vs_n"][a][large]) for a in cfg.a_values}
    for name, frac in (("dense", cfg.dense_fraction), ("half", cfg.half_fraction), ("sparse", cfg.sparse_fraction)):
        a = np.rint(frac * n).astype(int)
        keep = a >= cfg.theta                     # fewer active cells than θ can never match
        out[f"n_{name}"] = n[keep]
        out[f"fm_{name}"] = false_match_probability(n[keep], a[keep], cfg.s, cfg.theta)
        # n → ∞ at fixed a/n = p: the hypergeometric tail tends to the binomial tail
        out[f"fm_{name}_limit"] = float(binom.sf(cfg.theta - 1, cfg.s, frac))
    s = np.asarray(cfg.s_values)
    out["s"] = s
    out["log10_fm_vs_s"] = {}
    out["s_slope"] = {}
    out["s_slope_theory"] = {}
    top = s >= s.max() // 2
    for a, nn in cfg.s_cases:
        ok = s // 2 <= a
        y = np.full(s.shape, -np.inf)
        y[ok] = log_false_match_probability(nn, a, s[ok], s[ok] // 2) / np.log(10)
        out["log10_fm_vs_s"][(a, nn)] = y
        # slope of log10 P per synapse over the upper half of the s range, and its large-s limit
        # for s ≪ n: P(Bin(s, p) ≥ s/2) ~ (4p(1 − p))^{s/2}, i.e. ½·log10(4p(1 − p)) per synapse
        sel = top & ok
        out["s_slope"][(a, nn)] = float(np.polyfit(s[sel], y[sel], 1)[0])
        p = a / nn
        out["s_slope_theory"][(a, nn)] = 0.5 * float(np.log10(4 * p * (1 - p)))
    ssub = np.asarray(cfg.s_sub_values)
    out["s_sub"] = ssub
    out["fm_sub"] = {a: false_match_probability(cfg.n_sub, a, ssub, ssub // 2) for a in cfg.a_sub_values}
    out["s_min_sub"] = {a: int(ssub[fm <= cfg.sub_tolerance].min()) if np.any(fm <= cfg.sub_tolerance) else None
                        for a, fm in out["fm_sub"].items()}
    out["dense_large_n"] = float(out["fm_dense"][-1])
    out["dense_large_n_at"] = int(out["n_dense"][-1])
    return out


def run_noise(cfg: DendritesConfig) -> dict:
    """False negatives against the fraction of the pattern replaced, for several θ (the paper's
    a = 128, s = 30), with each θ's false-match rate at ``n_noise`` and the authors' printed value."""
    v = np.arange(cfg.a_noise + 1)
    thetas = np.asarray(cfg.theta_noise_values)
    fn = false_negative_probability(cfg.a_noise, cfg.s_noise, thetas[:, None], v[None, :])
    fm = false_match_probability(cfg.n_noise, cfg.a_noise, cfg.s_noise, thetas)
    # largest noise fraction with P(miss) <= 1%, per θ
    tolerated = np.array([v[row <= 0.01].max() / cfg.a_noise for row in fn])
    # noise fraction at which P(miss) crosses 1/2 (linear interpolation; P(miss) rises with v)
    half = np.array([np.interp(0.5, row, v / cfg.a_noise) for row in fn])
    authors = {key: (float(false_negative_probability(cfg.a_noise, cfg.s_noise, *key)), printed)
               for key, printed in AUTHORS_NOISE.items()}
    return {"noise": v / cfg.a_noise, "v": v, "thetas": thetas, "fn": fn, "fm": fm, "tolerated_1pct": tolerated,
            "half_miss_noise": half, "authors": authors,
            "authors_deviation": max(printed_deviation(x, p) for x, p in authors.values())}


def run_union(cfg: DendritesConfig) -> dict:
    """Union property at the authors' a, s, θ: false-match rate against the number of stored patterns
    M for each n, the largest M that keeps it <= ``union_tolerance``, and the authors' printed lists."""
    m = np.asarray(cfg.m_values)
    out = {"m": m, "fm": {}, "m_max": {}, "synapses": {}}
    for n in cfg.n_union_values:
        fm = union_false_match_probability(n, cfg.a_union, cfg.s_union, m, cfg.theta_union)
        out["fm"][n] = fm
        out["synapses"][n] = union_synapse_count(n, cfg.s_union, m)
        # the last M before the rate first exceeds the tolerance (the rate grows with M)
        bad = m[fm > cfg.union_tolerance]
        out["m_max"][n] = int(bad.min() - 1) if bad.size else int(m.max())
    out["authors"] = {key: (float(union_false_match_probability(key[0], cfg.a_union, cfg.s_union, key[1],
                                                                cfg.theta_union)), printed)
                      for key, printed in AUTHORS_UNION.items()}
    out["authors_deviation"] = max(printed_deviation(x, p) for x, p in out["authors"].values())
    return out


def run_optimal_threshold(cfg: DendritesConfig) -> dict:
    """Median false-match rate over the authors' grid (n, sparsity, s) against θ, the smallest θ whose
    median is <= ``optimum_error`` (the authors' criterion), their printed medians; and, as a
    sensitivity study, the θ that minimises the median of false match + false negative for several
    noise levels."""
    N, SP, S, TH = np.meshgrid(cfg.grid_n, cfg.grid_sparsity, cfg.grid_s, cfg.grid_theta, indexing="ij")
    A = np.rint(N * SP).astype(np.int64)
    thetas = np.asarray(cfg.grid_theta)
    fm = false_match_probability(N, A, S, TH).reshape(-1, len(thetas))
    med = np.median(fm, axis=0)
    out = {"theta": thetas, "median_fm": med, "mean_fm": fm.mean(axis=0), "optimum": {}, "median_total": {}}
    below = thetas[med <= cfg.optimum_error]
    out["theta_first_below"] = int(below.min()) if below.size else None
    for noise in cfg.optimum_noise_values:
        V = np.rint(A * noise).astype(np.int64)
        fn = false_negative_probability(A, S, TH, V).reshape(-1, len(thetas))
        total = np.median(fm + fn, axis=0)
        out["median_total"][noise] = total
        out["optimum"][noise] = int(thetas[np.argmin(total)])
    idx = {int(t): i for i, t in enumerate(thetas)}
    printed = {th: (float(med[idx[th]]), p) for th, p in AUTHORS_MEDIANS.items()}
    printed["mean θ = 3"] = (float(out["mean_fm"][idx[3]]), AUTHORS_MEAN_THETA3)
    out["authors"] = printed
    out["authors_deviation"] = max(printed_deviation(x, p) for x, p in printed.values())
    return out


def run_authors_value() -> dict:
    """The authors' notebook value: P(false match) for n = 10,000, a = 300, s = 24, θ = 12, exactly
    (rational arithmetic) and in floating point, with the deviations from the printed number."""
    exact = false_match_probability_exact(10_000, 300, 24, 12)
    flt = float(false_match_probability(10_000, 300, 24, 12))
    return {"exact": exact, "float": flt, "printed": AUTHORS_VALUE,
            "deviation": printed_deviation(exact, AUTHORS_VALUE),
            "float_rel_error": float(abs(flt - float(exact)) / float(exact))}


def run_table1() -> dict:
    """Table 1 B–D at the authors' n = 100,000, a = 2,000: per row ``(part, s, θ)`` the exact
    (rational) false-match probability, the printed value, its distance from the printed value in
    half-units of the last printed digit, and the relative deviation; and per part the largest distance."""
    rows = {}
    for key, printed in AUTHORS_TABLE1.items():
        exact = false_match_probability_exact(TABLE1_N, TABLE1_A, key[1], key[2])
        rows[key] = {"exact": exact, "printed": printed, "deviation": printed_deviation(exact, printed),
                     "relative": float(abs(float(printed) - exact) / exact)}
    parts = sorted({k[0] for k in rows})
    return {"rows": rows, "deviation": {p: max(r["deviation"] for k, r in rows.items() if k[0] == p) for p in parts},
            "relative": {p: max(r["relative"] for k, r in rows.items() if k[0] == p) for p in parts}}


def run_monte_carlo(cfg: DendritesConfig, seed: int = 0) -> dict:
    """Monte Carlo estimates at the configured points, each with the exact value it estimates.

    Rows are ``(kind, point, MonteCarloResult, exact)``; for the union rows ``exact`` is the average
    over the exact law of the union's size (:func:`union_false_match_exact`) and the result's own
    ``exact`` field holds the paper's mean-size approximation."""
    from sparsebook.progress import progress
    from sparsebook.seeding import seed_everything

    seed_everything(seed)
    points = ([("false match", p) for p in cfg.mc_false_match] + [("false negative", p) for p in cfg.mc_false_negative]
              + [("union", p) for p in cfg.mc_union])
    simulators = {"false match": simulate_false_match, "false negative": simulate_false_negative,
                  "union": simulate_union_false_match}
    rows = []
    for i, (kind, p) in enumerate(progress(points, desc="Monte Carlo", scale=cfg.scale)):
        r = simulators[kind](*p, trials=cfg.mc_trials, seed=seed * 1000 + i)
        exact = union_false_match_exact(*p) if kind == "union" else r.exact
        rows.append((kind, p, r, float(exact)))
    return {"rows": rows}


def monte_carlo_estimates(mc: dict) -> dict:
    """The Monte Carlo rows as :class:`sparsebook.stats.Estimate` objects (``monte carlo`` kind: the
    hit rate with its binomial standard error), keyed ``"<kind> <point>"``."""
    from sparsebook.stats import monte_carlo

    return {f"{kind} {p}": monte_carlo(r.estimate, r.stderr, r.trials) for kind, p, r, _ in mc["rows"]}


def add_monte_carlo_checks(claims, mc: dict, rtol: float) -> list:
    """One consistency check per Monte Carlo row: the simulated rate (with its standard error) lies
    within ``rtol`` (relative) of the exact value it estimates.  The verdict is ``passes`` when the
    whole 95% interval is inside the band, ``fails`` when it is wholly outside, ``inconclusive``
    when the budget is too small to decide.  Returns the new claims."""
    from sparsebook.claims import Within
    from sparsebook.validate import check_real

    rtol = check_real(rtol, "rtol", 0, 1, low_open=True)
    what = {"false match": "P(false match), (n, a, s, θ) =", "false negative": "P(false negative), (a, s, θ, v) =",
            "union": "P(false match) of a random union, (n, a, s, M, θ) ="}
    out = []
    for (kind, p, r, exact), (key, est) in zip(mc["rows"], monte_carlo_estimates(mc).items()):
        slug = "mc-" + kind.replace(" ", "-") + "-" + "-".join(str(x) for x in p)
        reference = ("the exact average over the union's size law" if kind == "union" else "the exact formula")
        out.append(claims.check(
            slug, statement=f"Simulation agrees with {reference} within {rtol:.0%}.",
            quantity=f"simulated {what[kind]} {p}", measured=est,
            criterion=Within(exact, rtol=rtol), expected=f"{exact:.4g}"))
    return out


def results_table(values: dict, title: str = ""):
    """:class:`sparsebook.stats.Results` with its rows in sorted order of their names.

    The stored notebook keeps the JSON record with sorted keys (nbformat writes JSON that way) and
    the notebook regression compares the list of names in order, so rows are shown sorted to make
    the stored and the re-executed record agree."""
    from sparsebook.stats import Results

    return Results(dict(sorted(values.items())), title=title)
