"""Figures of the dendrites chapter (house style from :mod:`sparsebook.plotting`; one function per figure)."""
from __future__ import annotations

import numpy as np

from sparsebook.dendrites.experiments import DendritesConfig


def _integer_ticks(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_scaling(res: dict, cfg: DendritesConfig):
    """Three panels: false match against n (the paper's effect-of-n figure), against s with θ = s/2
    (the paper's effect-of-s cases, sparse and dense), and under subsampling (Table 1's n)."""
    from sparsebook import plotting

    fig, (ax1, ax2, ax3) = plotting.figure(ncols=3)
    for a, y in res["fm_vs_n"].items():
        ax1.loglog(res["n"], y, label=f"a = {a}")
    ax1.loglog(res["n_dense"], res["fm_dense"], "k--",
               label=f"a = n/{round(1 / cfg.dense_fraction)} (paper's dashed curve, labelled n/2)")
    ax1.loglog(res["n_half"], res["fm_half"], "k-.", label="a = n/2")
    ax1.loglog(res["n_sparse"], res["fm_sparse"], "k:", label=f"a = {cfg.sparse_fraction:.0%} of n")
    plotting.label(ax1, "population size n (cells)", "P(false match)", f"s = {cfg.s}, θ = {cfg.theta}")
    for (a, n), y in res["log10_fm_vs_s"].items():
        ok = np.isfinite(y)
        style = "--" if a / n >= 0.1 else "-"
        ax2.semilogy(res["s"][ok], 10.0 ** y[ok], style, label=f"a = {a:,}, n = {n:,}")
    plotting.label(ax2, "synapses on the segment s", "P(false match)", "θ = s/2 (dashed: dense, 25%)")
    for a, y in res["fm_sub"].items():
        ax3.semilogy(res["s_sub"], y, "o-", ms=3, label=f"a = {a:,}")
    ax3.axhline(cfg.sub_tolerance, color="grey", lw=0.8, label=f"{cfg.sub_tolerance:.0e}")
    plotting.label(ax3, "synapses on the segment s (s < a)", "P(false match)",
                   f"subsampling, θ = s/2, n = {cfg.n_sub:,}")
    return plotting.finish(fig)


def plot_noise(res: dict, cfg: DendritesConfig, sim: dict | None = None):
    """P(miss) against the fraction of the pattern replaced, one exact curve per θ (log axis), with
    our simulation of every plotted point (``sim`` from ``run_noise_monte_carlo``, ±2 standard errors)
    and the authors' printed simulated frequencies; right, each simulated point's residual in
    standard errors, with the Bonferroni band of the family-wise test."""
    from scipy.stats import norm

    from sparsebook import plotting
    from sparsebook.dendrites.experiments import AUTHORS_NOISE_OBSERVED

    fig, axes = plotting.figure(ncols=2 if sim is not None else 1)
    ax = axes[0]
    colors = {}
    for th, row, fm in zip(res["thetas"], res["fn"], res["fm"]):
        ok = row > 0
        line, = ax.semilogy(res["noise"][ok], row[ok], label=f"θ = {th} (false match {fm:.1e} at n = {cfg.n_noise:,})")
        colors[int(th)] = line.get_color()
    first = True
    for th, obs in AUTHORS_NOISE_OBSERVED.items():
        x = res["authors_noise_v"] / cfg.a_noise
        y = np.array([float(o) for o in obs])
        ok = y > 0
        ax.semilogy(x[ok], y[ok], "x", ms=6, color=colors.get(th, "k"),
                    label="authors' simulation (printed)" if first else None)
        first = False
    if sim is not None:
        t = sim["trials"]
        est = sim["hits"] / t
        se = np.sqrt(np.maximum(est * (1 - est), 1e-300) / t)
        for i, th in enumerate(sim["thetas"]):
            ok = est[i] > 0
            ax.errorbar(sim["v"][ok] / cfg.a_noise, est[i][ok], yerr=2 * se[i][ok], fmt="o", ms=3, mfc="none",
                        color=colors.get(int(th), "k"), label=f"our simulation ({t:,} trials, ±2 SE)" if i == 0 else None)
        ex = sim["exact"]
        z = (sim["hits"] - t * ex) / np.sqrt(np.maximum(t * ex * (1 - ex), 1e-300))
        for i, th in enumerate(sim["thetas"]):
            ok = (ex[i] > 0) & (ex[i] < 1)
            axes[1].plot(sim["v"][ok] / cfg.a_noise, z[i][ok], "o", ms=4, color=colors.get(int(th), "k"), label=f"θ = {th}")
        zc = norm.isf(cfg.noise_alpha / (2 * sim["points"]))
        axes[1].axhspan(-zc, zc, color="grey", alpha=0.15, lw=0,
                        label=f"Bonferroni band, family-wise α = {cfg.noise_alpha} ({sim['points']} points)")
        axes[1].axhline(0, color="k", lw=0.8)
        plotting.label(axes[1], "fraction of the pattern's cells replaced v/a", "(simulated − exact) / SE",
                       "residuals of our simulation")
    ax.axvline(0.5, color="grey", lw=0.8, label="half the pattern replaced")
    ax.set_ylim(1e-12, 2)
    plotting.label(ax, "fraction of the pattern's cells replaced v/a", "P(false negative)",
                   f"a = {cfg.a_noise}, s = {cfg.s_noise}")
    return plotting.finish(fig)


def plot_union(res: dict, cfg: DendritesConfig):
    """False match against the number of stored patterns M, one curve per n (the authors' union figure)."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for n, fm in res["fm"].items():
        ax.semilogy(res["m"], fm, "o-", ms=3, label=f"n = {n:,} (M ≤ {res['m_max'][n]} below the line)")
    ax.axhline(cfg.union_tolerance, color="grey", lw=0.8, label=f"{cfg.union_tolerance:.0e}")
    _integer_ticks(ax)
    plotting.label(ax, "patterns stored on the segment M", "P(false match)",
                   f"a = {cfg.a_union}, s = {cfg.s_union}, θ = {cfg.theta_union}")
    return plotting.finish(fig)


def plot_optimal_threshold(res: dict, cfg: DendritesConfig):
    """Median false match over the authors' grid against θ (with their printed medians), and, as a
    sensitivity study, the median of false match + false negative for several noise levels."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    ax1.semilogy(res["theta"], res["median_fm"], "o-", ms=3, label="median over the grid (exact)")
    pts = [(k, float(p)) for k, (_, p) in res["authors"].items() if isinstance(k, int)]
    ax1.semilogy([k for k, _ in pts], [v for _, v in pts], "kx", ms=8, label="authors' printed medians")
    ax1.axhline(cfg.optimum_error, color="grey", lw=0.8, label=f"error rate {cfg.optimum_error:.0e}")
    plotting.label(ax1, "NMDA threshold θ (synapses)", "median P(false match)", "over the (n, a/n, s) grid")
    for noise, total in res["median_total"].items():
        ax2.semilogy(res["theta"], total, label=f"{noise:.0%} noise (θ* = {res['optimum'][noise]})")
    for ax in (ax1, ax2):
        ax.axvspan(8, 20, color="grey", alpha=0.15, lw=0)
        _integer_ticks(ax)
    plotting.label(ax2, "NMDA threshold θ (synapses)", "median of [P(false match) + P(false negative)]",
                   "shaded: measured NMDA thresholds (8-20)")
    return plotting.finish(fig)


def plot_monte_carlo(res: dict):
    """Residuals of the Monte Carlo estimates: (estimate − exact) / standard error, with the ±2 band."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    kinds = (("false match", plotting.COLORS[0]), ("false negative", plotting.COLORS[1]), ("union", plotting.COLORS[2]))
    labels = []
    i = 0
    for kind, color in kinds:
        rows = [(p, r, ex) for k, p, r, ex in res["rows"] if k == kind]
        if not rows:
            continue
        x = np.arange(i, i + len(rows))
        z = [(r.estimate - ex) / r.stderr for _, r, ex in rows]
        ax.plot(x, z, "o", color=color, label=kind)
        labels += [str(p) for p, _, _ in rows]
        i += len(rows)
    ax.axhspan(-2, 2, color="grey", alpha=0.15, lw=0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    plotting.label(ax, "point (parameters)", "(estimate − exact) / SE")
    return plotting.finish(fig)


def plot_sparsey_capacity(res: dict, cfg):
    """Sparsey: retrieval accuracy against the number of stored items N, one curve per code sparsity
    (mean over seeds with the seeds' range as a band), the accuracy threshold; and the capacity of
    every seed against the fraction of active units 1/K."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    k = cfg.field // res["q"]
    for i, q in enumerate(res["q"]):
        acc = res["accuracy"][i]
        ok = ~np.isnan(acc).any(axis=0)
        line, = ax1.semilogx(res["n"][ok], acc.mean(axis=0)[ok], "o-", ms=3, label=f"Q = {q}, K = {k[i]}")
        ax1.fill_between(res["n"][ok], acc.min(axis=0)[ok], acc.max(axis=0)[ok], color=line.get_color(), alpha=0.2, lw=0)
    ax1.axhline(cfg.accuracy_threshold, color="grey", lw=0.8, label=f"accuracy {cfg.accuracy_threshold}")
    ax1.legend(loc="lower left", ncol=2, fontsize=7)
    plotting.label(ax1, "items stored N", "retrieval accuracy (nearest code is own)",
                   f"field of {cfg.field:,} units, cues with {cfg.noise_bits} of {cfg.active_bits} bits replaced")
    cap = res["capacity"]
    for j in range(cap.shape[1]):
        ax2.loglog(1 / k, cap[:, j], "o-", ms=3, color="grey", alpha=0.5, lw=0.8, label="one seed" if j == 0 else None)
    ax2.loglog(1 / k, np.exp(np.log(cap).mean(axis=1)), "ko-", ms=5, label="geometric mean over seeds")
    ax2.set_xticks(1 / k)
    ax2.set_xticklabels([f"1/{x}" for x in k], fontsize=7)
    ax2.minorticks_off()
    plotting.label(ax2, "fraction of units active 1/K (Q = field/K)", "capacity (items at the threshold)",
                   "left: localist (Q = 1); right: dense codes")
    return plotting.finish(fig)


def plot_sparsey_crosstalk(res: dict, sim: dict, cfg):
    """Sparsey crosstalk: the false-match rate of a coding unit for unrelated inputs, measured (points,
    mean over seeds) and predicted by the union property from each unit's number of stored items
    (lines); the overlap of the codes of unrelated stored items over its chance level 1/K; and code
    overlap against input overlap for the CSA and for random codes (similar inputs, similar codes)."""
    from sparsebook import plotting

    fig, (ax1, ax2, ax3) = plotting.figure(ncols=3)
    k = cfg.field // res["q"]
    for i, q in enumerate(res["q"]):
        ok = ~np.isnan(res["fm"][i]).any(axis=0)
        line, = ax1.loglog(res["n"][ok], res["fm_pred"][i].mean(axis=0)[ok], "-", lw=1, label=f"K = {k[i]}")
        meas = res["fm"][i].mean(axis=0)[ok]
        ax1.loglog(res["n"][ok][meas > 0], meas[meas > 0], "o", ms=3, color=line.get_color())
        ax2.semilogx(res["n"][ok], res["overlap"][i].mean(axis=0)[ok] * k[i], "o-", ms=3, color=line.get_color())
    ax1.axhline(cfg.fm_floor, color="grey", lw=0.8, label=f"{cfg.fm_floor:.0e} (checked above)")
    plotting.label(ax1, "items stored N", "P(unit reaches θ) for an unrelated input",
                   f"points: measured; lines: union property (θ = {res['theta']})")
    ax2.axhline(1, color="grey", lw=0.8)
    plotting.label(ax2, "items stored N", "code overlap of unrelated items / chance (1/K)", "crosstalk")
    m = cfg.active_bits
    x = (m - sim["swaps"]) / m
    for key, name in (("code_overlap", "CSA"), ("code_overlap_random", "random codes")):
        y = sim[key]
        line, = ax3.plot(x, y.mean(axis=0), "o-", ms=3, label=name)
        ax3.fill_between(x, y.min(axis=0), y.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)
    plotting.label(ax3, "input overlap with the prototype (fraction of bits)", "code overlap (fraction of CMs)",
                   f"Q = {cfg.sim_q}, K = {cfg.field // cfg.sim_q}")
    return plotting.finish(fig)


# ---------------------------------------------------------------- explorable figure and try-your-own cell
#: Population sizes of the explorable false-match figure (log grid, 100 to 100,000 cells).
EXPLORE_N = np.unique(np.round(np.logspace(2, 5, 25)).astype(int))
#: Knob values of the explorable figure (the paper's setting a = 128, s = 24, θ = 12 among them).
EXPLORE_KNOBS = {"a": [16, 32, 64, 128, 256], "s": [16, 24, 32, 48], "theta": [4, 8, 12, 16, 20]}


def _false_match_curve(n, a: int, s: int, theta: int) -> np.ndarray:
    """P(false match) on the population sizes ``n``; NaN where the setting does not exist
    (n < a or n < s) and 0 where θ > s (a segment sees at most s active cells)."""
    from sparsebook.dendrites.kernels import false_match_probability

    n = np.asarray(n)
    y = np.full(n.shape, np.nan)
    ok = n >= max(a, s)
    if theta > s:
        y[ok] = 0.0
    elif ok.any():
        y[ok] = false_match_probability(n[ok], a, s, theta)
    return y


def explore_false_match():
    """Explorable figure: P(false match) against n, with sliders for a, s and θ (eq. 1, exact)."""
    from sparsebook.explore import explore, trace

    ref = trace("paper's setting: a = 128, s = 24, θ = 12", EXPLORE_N, _false_match_curve(EXPLORE_N, 128, 24, 12),
                dash="dash", color="#777777")
    return explore(lambda a, s, theta: [trace(f"a = {a}, s = {s}, θ = {theta}", EXPLORE_N,
                                              _false_match_curve(EXPLORE_N, a, s, theta), mode="lines+markers")],
                   EXPLORE_KNOBS, fixed=[ref], default={"a": 128, "s": 24, "theta": 12},
                   labels={"a": "active cells a", "s": "synapses s", "theta": "threshold θ"},
                   title="False match against population size (exact, eq. 1)",
                   xlabel="population size n (cells)", ylabel="P(false match)", log_x=True, log_y=True,
                   y_range=[1e-40, 2.0], digits=6)


def plot_try_false_match(n: int = 10_000, a: int = 128, s: int = 24, theta: int = 12):
    """Try-your-own plot: P(false match) against θ at the chosen n, a, s (exact), the chosen θ
    marked, and its value printed.  Returns the figure."""
    from sparsebook import plotting
    from sparsebook.dendrites.kernels import false_match_probability

    if not (0 <= a <= n and 0 <= s <= n):
        raise ValueError(f"need 0 <= a <= n and 0 <= s <= n, got n = {n}, a = {a}, s = {s}")
    thetas = np.arange(1, s + 1)
    fm = np.asarray(false_match_probability(n, a, s, thetas), dtype=float)
    fig, (ax,) = plotting.figure(ncols=1)
    ok = fm > 0
    ax.semilogy(thetas[ok], fm[ok], "o-", ms=3, label=f"n = {n:,}, a = {a}, s = {s}")
    value = false_match_probability(n, a, s, theta) if theta <= s else 0.0
    if value > 0:
        ax.semilogy([theta], [value], "o", ms=9, mfc="none", mec="k", label=f"θ = {theta}: {value:.3g}")
    plotting.label(ax, "NMDA threshold θ (synapses)", "P(false match)", f"a/n = {a / n:.2%}")
    print(f"P(false match) at n = {n:,}, a = {a}, s = {s}, θ = {theta}: {value:.4g}"
          + ("  (θ > s: the segment cannot fire)" if theta > s else ""))
    return plotting.finish(fig)


def try_false_match():
    """Try-your-own cell (JupyterLab): sliders for n, a, s, θ over :func:`plot_try_false_match`."""
    from sparsebook.explore import interact

    n_values = [int(v) for v in np.unique(np.round(np.logspace(2.5, 5.5, 31), -1))]
    return interact(plot_try_false_match,
                    {"n": n_values, "a": [8, 16, 32, 64, 128, 200, 256, 300, 512, 1024],
                     "s": list(range(4, 65, 2)), "theta": list(range(1, 41))},
                    default={"n": 10_000, "a": 128, "s": 24, "theta": 12})
