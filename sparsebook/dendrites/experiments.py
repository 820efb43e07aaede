"""Experiments of the dendrites chapter: the config (``DendritesConfig.preset("ci"|"full")``) and the runners.

Each ``run_*`` evaluates the exact probabilities of :mod:`sparsebook.dendrites.kernels` over the
configured grids (``run_monte_carlo`` also runs the Monte Carlo estimators) and returns the
arrays that the figures and the chapter's claims read.
"""
from __future__ import annotations

from dataclasses import dataclass

from decimal import Decimal as Decimal_

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
#: the whole noise figure (plot_noise_results.py, a = 128, s = 30): the noise fractions v/a of its
#: points and, per θ, the printed theory values and the printed simulated frequencies (1e8 trials a
#: point: the smallest non-zero frequency printed is 1.00E-08)
AUTHORS_NOISE_FRACTIONS = ("0.046875", "0.1015625", "0.1484375", "0.203125", "0.25", "0.296875", "0.3515625",
                           "0.3984375", "0.453125", "0.5", "0.546875", "0.6015625", "0.6484375", "0.703125",
                           "0.75", "0.796875")
AUTHORS_NOISE_THEORY = {
    8: ("0", "0", "0", "3.11341516283240e-16", "2.23243424464799e-12", "7.90168637530306e-10",
        "1.20695707971664e-7", "3.45576265561118e-6", "8.08202472708491e-5", "0.000735429456875121",
        "0.00464043435771348", "0.0268657157114204", "0.0896352007201254", "0.263952754229579",
        "0.508714577385333", "0.770861966941236"),
    12: ("0", "0", "2.48810797387309e-15", "7.92695349343630e-10", "2.16302525195240e-7",
         "1.09248135880715e-5", "0.000314435369055385", "0.00279559866084888", "0.0198782675563797",
         "0.0716985160403564", "0.190430462690358", "0.426525969583828", "0.664766152465367",
         "0.880922510721824", "0.970339402698393", "0.996376835285247"),
    16: ("0", "0", "2.65549705827547e-8", "1.97277260559420e-5", "0.000590078912236923",
         "0.00627504390204146", "0.0434711883681422", "0.139067254386793", "0.351117043857492",
         "0.582501773030327", "0.788076297517739", "0.933878292787173", "0.983735005386502",
         "0.998319255844748", "0.999889798557155", "0.999997748076386"),
}
AUTHORS_NOISE_OBSERVED = {
    8: ("0", "0", "0", "0", "0", "0", "1.70E-07", "3.60E-06", "8.02E-05", "0.0007358", "0.0046704", "0.0268579",
        "0.0894488", "0.263911", "0.50879", "0.770817"),
    12: ("0", "0", "0", "0", "1.70E-07", "1.11E-05", "0.00031558", "0.0027716", "0.0198583", "0.0716827",
         "0.190397", "0.426699", "0.664547", "0.880767", "0.970354", "0.99638"),
    16: ("0", "0", "1.00E-08", "2.02E-05", "0.00059479", "0.0062736", "0.0434683", "0.13914", "0.351389",
         "0.582524", "0.787882", "0.933878", "0.983776", "0.998305", "0.999893", "0.999999"),
}
AUTHORS_NOISE_TRIALS = 100_000_000
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
    # our own simulation of the whole noise figure (all of the authors' noise levels, every θ above)
    noise_mc_trials: int = 100_000
    noise_alpha: float = 0.01          # family-wise level of the per-point binomial tests (Bonferroni)
    noise_sim_floor: float = 1e-3      # the authors' simulated frequencies compared where the rate is >= this

    @classmethod
    def preset(cls, scale: str) -> "DendritesConfig":
        from sparsebook.scales import check_scale

        check_scale(scale)
        if scale == "ci":
            return cls(scale="ci")
        return cls(scale="full", mc_trials=100_000_000, noise_mc_trials=2_000_000,
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
    out = {"noise": v / cfg.a_noise, "v": v, "thetas": thetas, "fn": fn, "fm": fm, "tolerated_1pct": tolerated,
           "half_miss_noise": half, "authors": authors,
           "authors_deviation": max(printed_deviation(x, p) for x, p in authors.values())}
    out.update(_authors_noise_curves(cfg))
    return out


def _printed_count_range(printed: str, trials: int) -> tuple[int, int]:
    """The hit counts out of ``trials`` whose frequency rounds to ``printed`` (half a unit of its last digit)."""
    from decimal import Decimal

    d = Decimal(printed)
    if d == 0:
        return 0, 0
    half = Decimal(5) * Decimal(10) ** (d.as_tuple().exponent - 1)
    lo = max(0, int(((d - half) * trials).to_integral_value(rounding="ROUND_CEILING")))
    hi = min(trials, int(((d + half) * trials).to_integral_value(rounding="ROUND_FLOOR")))
    return lo, hi


def _authors_noise_curves(cfg: DendritesConfig) -> dict:
    """The authors' whole noise figure against the exact false-negative rate: the distance of every
    printed theory value in half-units of its last digit, and for every printed simulated frequency
    (``AUTHORS_NOISE_TRIALS`` trials) the exact two-sided binomial p-value of the hit count closest to
    its expectation among the counts that round to the printed frequency; and the Bonferroni-adjusted
    smallest p-value (number of points × smallest p-value, capped at 1)."""
    from sparsebook.dendrites.kernels import binomial_two_sided_p

    v = np.array([int(Decimal_(f) * cfg.a_noise) for f in AUTHORS_NOISE_FRACTIONS])
    exact, dev, rel, sim, pv = {}, {}, {}, [], []
    for th, printed in AUTHORS_NOISE_THEORY.items():
        # P(false negative) is the hypergeometric tail P(X ≥ s − θ + 1), X ~ H(a, s, v): eq. 1's form
        ex = [false_match_probability_exact(cfg.a_noise, int(vi), cfg.s_noise, cfg.s_noise - th + 1) for vi in v]
        exact[th] = np.array([float(x) for x in ex])
        dev[th] = [printed_deviation(x, p) for x, p in zip(ex, printed)]
        rel[th] = [float(abs(float(p) - x) / x) if x > 0 else 0.0 for x, p in zip(ex, printed)]
        for x, obs in zip(exact[th], AUTHORS_NOISE_OBSERVED[th]):
            if x >= cfg.noise_sim_floor:
                sim.append(abs(float(obs) / x - 1))
            lo, hi = _printed_count_range(obs, AUTHORS_NOISE_TRIALS)
            k = int(np.clip(round(float(x) * AUTHORS_NOISE_TRIALS), lo, hi))
            pv.append(float(binomial_two_sided_p(k, AUTHORS_NOISE_TRIALS, float(x))))
    pv = np.asarray(pv)
    all_dev = [d for row in dev.values() for d in row]
    return {"authors_noise_v": v, "authors_noise_exact": exact, "authors_curve_deviation": max(all_dev),
            "authors_curve_points": len(all_dev), "authors_curve_deviations": dev,
            "authors_curve_relative": rel, "authors_curve_max_relative": max(max(r) for r in rel.values()),
            "authors_sim_relative": max(sim), "authors_sim_points": len(sim),
            "authors_sim_pvalues_if_1e8": pv}


def run_noise_monte_carlo(cfg: DendritesConfig, seed: int = 0) -> dict:
    """Our own simulation of the whole noise figure: ``noise_mc_trials`` random replacement orders
    (:func:`simulate_noise_overlaps`), giving the simulated false-negative frequency at every noise
    level of the authors' points and every θ of ``theta_noise_values``; per point the exact two-sided
    binomial p-value against the exact rate, and the Bonferroni-adjusted smallest p-value."""
    from sparsebook.dendrites.kernels import binomial_two_sided_p, simulate_noise_overlaps
    from sparsebook.seeding import seed_everything

    seed_everything(seed)
    v = np.array([int(Decimal_(f) * cfg.a_noise) for f in AUTHORS_NOISE_FRACTIONS])
    thetas = np.asarray(cfg.theta_noise_values)
    need = cfg.s_noise - thetas + 1                                   # lost synapses that make a miss
    hits = np.zeros((thetas.size, v.size), np.int64)
    chunk = 100_000
    for i, start in enumerate(range(0, cfg.noise_mc_trials, chunk)):
        rows = min(chunk, cfg.noise_mc_trials - start)
        lost = simulate_noise_overlaps(cfg.a_noise, cfg.s_noise, rows, seed=seed * 1000 + 500 + i)[:, v]
        hits += (lost[None, :, :] >= need[:, None, None]).sum(axis=1)
    exact = np.asarray(false_negative_probability(cfg.a_noise, cfg.s_noise, thetas[:, None], v[None, :]))
    pv = binomial_two_sided_p(hits, cfg.noise_mc_trials, exact)
    return {"v": v, "thetas": thetas, "hits": hits, "trials": cfg.noise_mc_trials, "exact": exact,
            "pvalues": pv, "bonferroni": float(min(1.0, pv.size * pv.min())), "points": int(pv.size)}


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


# ---------------------------------------------------------------------------
# Sparsey (Rinkus 2017): superposed sparse distributed codes in one coding field
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SparseyConfig:
    """Parameters of the Sparsey section (Rinkus 2017).

    Items are random binary inputs of ``input_bits`` bits with exactly ``active_bits`` active; a
    coding field of ``field`` units is split into Q competitive modules of K = field/Q units
    (``q_values``, densest first: the fraction of active units is 1/K); codes are chosen by the CSA
    (``chi``, ``lam``, ``phi``, ``g_min``) and stored by binary Hebbian weights.  Retrieval cues keep
    ``active_bits − noise_bits`` of an item's bits and replace ``noise_bits`` by random other bits;
    an item is retrieved when the nearest stored code to the retrieved one is its own.  Capacity is
    the number of stored items at which the accuracy falls to ``accuracy_threshold`` (interpolated
    in log N between the ``n_checkpoints``).  All criteria were fixed before the first run.

    ``preset("full")``: 10 seeds instead of 5, 400 probes a checkpoint instead of 100, and the
    similarity experiment with 80 instead of 40 prototypes (NumPy on the host: no training).
    """

    scale: str = "ci"
    seeds: tuple = (0, 1, 2, 3, 4)
    input_bits: int = 256
    active_bits: int = 16
    field: int = 1024
    q_values: tuple = (128, 64, 32, 16, 8, 4, 2, 1)
    noise_bits: int = 4
    n_checkpoints: tuple = tuple(int(round(2 ** (x / 2))) for x in range(10, 21))   # 32 … 1024
    probes: int = 100
    accuracy_threshold: float = 0.95
    chi: float = 1000.0
    lam: float = 28.0
    phi: float = 0.5
    g_min: float = 0.2
    # the capacity claims, fixed before measuring: growth over Q = 128 … 4, then localist Q = 1 below Q = 4
    growth_q: tuple = (128, 64, 32, 16, 8, 4)
    # the control: uniformly random codes (no CSA) at these Q
    control_q: tuple = (64, 16)
    point_q: tuple = (4, 1)
    # false match of a unit against unrelated inputs, compared with the union property where the
    # predicted rate is at least fm_floor; the check's relative tolerance
    fm_floor: float = 1e-3
    fm_rtol: float = 0.1
    # similarity: prototypes, and the numbers of bits swapped to make each prototype's variants
    sim_q: int = 16
    sim_prototypes: int = 40
    sim_swaps: tuple = (2, 4, 6, 8, 10, 12, 14, 16)
    sim_min_rho: float = 0.5

    @classmethod
    def preset(cls, scale: str) -> "SparseyConfig":
        from sparsebook.scales import check_scale

        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(scale="full", seeds=tuple(range(10)), probes=400, sim_prototypes=80)

    @property
    def csa(self) -> dict:
        return {"chi": self.chi, "lam": self.lam, "phi": self.phi, "g_min": self.g_min}


def _random_items(rng, shape: tuple, bits: int, active: int) -> np.ndarray:
    """Random inputs: ``shape`` arrays of ``active`` distinct bit indices out of ``bits`` (sorted)."""
    return np.sort(np.argsort(rng.random(shape + (bits,)), axis=-1)[..., :active], axis=-1)


def _swap_bits(rng, items: np.ndarray, bits: int, swaps) -> np.ndarray:
    """Replace ``swaps`` (per item, broadcast over the leading axes) of each item's active bits by
    random inactive bits; the result is again sorted index arrays of the same size."""
    items = np.asarray(items)
    m = items.shape[-1]
    active = np.zeros(items.shape[:-1] + (bits,), bool)
    np.put_along_axis(active, items, True, axis=-1)
    swaps = np.broadcast_to(np.asarray(swaps), items.shape[:-1])[..., None]
    drop_rank = np.argsort(np.argsort(rng.random(items.shape), axis=-1), axis=-1)       # random order of the active bits
    dropped = np.zeros_like(active)
    np.put_along_axis(dropped, items, drop_rank < swaps, axis=-1)
    add_rank = np.argsort(np.argsort(rng.random(active.shape) + active, axis=-1), axis=-1)  # inactive bits first
    new = (active & ~dropped) | (~active & (add_rank < swaps))
    return np.sort(np.argsort(~new, axis=-1, kind="stable")[..., :m], axis=-1)


def run_sparsey_capacity(cfg: SparseyConfig, seed: int = 0, random_codes: bool = False) -> dict:
    """Store random items in one coding field for every Q of ``q_values`` (the seeds in ``cfg.seeds``
    as independent memories, batched) and, at every checkpoint N: retrieve ``probes`` stored items
    from noisy cues (accuracy), draw ``probes`` unrelated random inputs and count the units they
    drive to the retrieval threshold ``active_bits − noise_bits`` (false match, with the union
    property's prediction from each unit's number of stored items), the overlap of the codes of
    unrelated stored items, and the operations per retrieval.  Returns arrays indexed
    ``[q, seed, checkpoint]``; once every seed's accuracy has stayed below half the threshold for two
    checkpoints, storing stops for that Q and the remaining checkpoints are NaN (``ops`` −1).
    ``random_codes=True``: the control, every code drawn uniformly (for the Q of ``control_q``)."""
    from sparsebook.dendrites.kernels import (code_overlap, nearest_code_correct, sparsey_learn,
                                              sparsey_retrieve, superposed_false_match, sparsey_drive)
    from sparsebook.seeding import seed_everything

    seed_everything(seed)
    S, M, m, F = len(cfg.seeds), cfg.input_bits, cfg.active_bits, cfg.field
    ns = np.asarray(cfg.n_checkpoints)
    theta = m - cfg.noise_bits
    fm_of_load = superposed_false_match(M, m, m, theta, int(ns.max()))
    q_values = cfg.control_q if random_codes else cfg.q_values
    shape = (len(q_values), S, ns.size)
    out = {"q": np.asarray(q_values), "n": ns, "theta": theta, "accuracy": np.zeros(shape),
           "fm": np.zeros(shape), "fm_pred": np.zeros(shape), "overlap": np.zeros(shape),
           "ops": np.full((len(q_values), ns.size), -1, np.int64)}
    for qi, q in enumerate(q_values):
        rngs = [np.random.default_rng([seed, s, q]) for s in cfg.seeds]
        items = np.stack([_random_items(r, (int(ns.max()),), M, m) for r in rngs])          # (S, N, m)
        rng = np.random.default_rng([seed, 7919, q])
        w = np.zeros((S, M, F), np.uint8)
        codes = np.zeros((S, 0, q), np.int64)
        k = F // q
        for ci, n in enumerate(ns):
            if ci >= 2 and np.all(out["accuracy"][qi, :, ci - 2:ci] < cfg.accuracy_threshold / 2):
                # every seed's capacity is decided and its accuracy has collapsed: stop storing
                for key in ("accuracy", "fm", "fm_pred", "overlap"):
                    out[key][qi, :, ci:] = np.nan
                break
            new = sparsey_learn(w, items[:, codes.shape[1]:n], q, rng, random_codes=random_codes, **cfg.csa)
            codes = np.concatenate([codes, new], axis=1)
            own = np.stack([r.choice(n, cfg.probes, replace=n < cfg.probes) for r in rngs])   # (S, B)
            cues = _swap_bits(rng, np.take_along_axis(items, own[..., None], axis=1), M, cfg.noise_bits)
            got, ops = sparsey_retrieve(w, cues, q, rng)
            out["accuracy"][qi, :, ci] = nearest_code_correct(got, codes, own).mean(axis=1)
            out["ops"][qi, ci] = ops
            probes = _random_items(rng, (S, cfg.probes), M, m)
            out["fm"][qi, :, ci] = (sparsey_drive(w, probes) >= theta).mean(axis=(1, 2))
            load = (codes[..., None] == np.arange(k)).sum(axis=1)                           # (S, Q, K)
            out["fm_pred"][qi, :, ci] = fm_of_load[load].mean(axis=(1, 2))
            a, b = rng.integers(0, n, (2, S, cfg.probes))
            ok = a != b
            ov = code_overlap(np.take_along_axis(codes, a[..., None], 1), np.take_along_axis(codes, b[..., None], 1))
            out["overlap"][qi, :, ci] = (ov * ok).sum(axis=1) / np.maximum(ok.sum(axis=1), 1) / q
    out["capacity"] = np.array([[_capacity(ns, acc, cfg.accuracy_threshold) for acc in row]
                                for row in out["accuracy"]])                                # (Q, S)
    return out


def _capacity(ns: np.ndarray, accuracy: np.ndarray, threshold: float) -> float:
    """The N at which ``accuracy`` first falls below ``threshold``, interpolated linearly in log2 N
    between checkpoints (the largest N if it never does, the smallest if it starts below)."""
    below = np.nonzero(~(accuracy >= threshold))[0]                 # NaN (not measured) counts as below
    if below.size == 0:
        return float(ns[-1])
    i = int(below[0])
    if i == 0:
        return float(ns[0])
    x0, x1 = np.log2(ns[i - 1]), np.log2(ns[i])
    y0, y1 = accuracy[i - 1], accuracy[i]
    return float(2 ** (x0 + (y0 - threshold) / (y0 - y1) * (x1 - x0)))


def run_sparsey_similarity(cfg: SparseyConfig, seed: int = 0) -> dict:
    """Similar inputs to similar codes (Rinkus 2017): per seed, store ``sim_prototypes`` random
    prototypes, then one variant of each prototype per entry of ``sim_swaps`` (that many bits swapped),
    all in one field of ``sim_q`` CMs, in random order.  Returns per seed the Spearman rank
    correlation between the input overlap and the code overlap of every (prototype, variant) pair,
    with the CSA and, as the control, with uniformly random codes."""
    from scipy.stats import spearmanr

    from sparsebook.dendrites.kernels import code_overlap, sparsey_learn
    from sparsebook.seeding import seed_everything

    seed_everything(seed)
    M, m, q, P = cfg.input_bits, cfg.active_bits, cfg.sim_q, cfg.sim_prototypes
    swaps = np.asarray(cfg.sim_swaps)
    out = {"swaps": swaps}
    rng = np.random.default_rng([seed, 104729])
    S = len(cfg.seeds)
    protos = _random_items(rng, (S, P), M, m)                                          # (S, P, m)
    variants = _swap_bits(rng, np.repeat(protos[:, :, None], swaps.size, axis=2), M, swaps)   # (S, P, J, m)
    order = np.argsort(rng.random((S, P * swaps.size)), axis=1)                         # storage order of the variants
    stored = np.concatenate([protos, np.take_along_axis(variants.reshape(S, -1, m), order[..., None], 1)], axis=1)
    input_overlap = np.repeat((m - swaps)[None, :], P, axis=0).ravel()
    for key, random_codes in (("", False), ("_random", True)):
        w = np.zeros((S, M, cfg.field), np.uint8)
        codes = sparsey_learn(w, stored, q, rng, random_codes=random_codes, **cfg.csa)   # (S, P + P·J, Q)
        vc = np.empty((S, P * swaps.size, q), np.int64)
        np.put_along_axis(vc, order[..., None], codes[:, P:], axis=1)                   # back to (prototype, swap) order
        ov = code_overlap(np.repeat(codes[:, :P], swaps.size, axis=1), vc)             # (S, P·J)
        out["rho" + key] = [float(spearmanr(input_overlap, row).statistic) for row in ov]
        out["code_overlap" + key] = ov.reshape(S, P, swaps.size).mean(axis=1) / q
    for key in ("code_overlap", "code_overlap_random"):
        out[key] = np.asarray(out[key])                                           # (seeds, swaps)
    return out
