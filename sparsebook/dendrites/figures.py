"""Figures of the dendrites chapter (house style from :mod:`sparsebook.plotting`; one function per figure)
and the Monte Carlo table."""
from __future__ import annotations

import numpy as np

from sparsebook.dendrites.experiments import DendritesConfig

# ---------------------------------------------------------------------------
# Figures (house style; one function per figure of the chapter)
# ---------------------------------------------------------------------------


def plot_scaling(res: dict, cfg: DendritesConfig):
    """Three panels: false match against n, against s (θ = s/2), and under subsampling."""
    from sparsebook import plotting

    fig, (ax1, ax2, ax3) = plotting.figure(ncols=3)
    for a, y in res["fm_vs_n"].items():
        ax1.loglog(res["n"], y, label=f"a = {a}")
    ax1.loglog(res["n_dense"], res["fm_dense"], "k--", label=f"a = {cfg.dense_fraction:.0%} of n")
    ax1.loglog(res["n_sparse"], res["fm_sparse"], "k:", label=f"a = {cfg.sparse_fraction:.0%} of n")
    plotting.label(ax1, "population size n (cells)", "P(false match)", f"s = {cfg.s}, θ = {cfg.theta}")
    ax2.semilogy(res["s"], 10.0 ** res["log10_fm_vs_s"], "o-")
    plotting.label(ax2, "synapses on the segment s", "P(false match)",
                   f"θ = s/2, n = {cfg.n_for_s:,}, a = {cfg.a_for_s}")
    for a, y in res["fm_sub"].items():
        ax3.semilogy(res["s_sub"], y, "o-", label=f"a = {a:,}")
    ax3.axhline(cfg.sub_tolerance, color="grey", lw=0.8)
    plotting.label(ax3, "synapses on the segment s (s < a)", "P(false match)",
                   f"subsampling, θ = s/2, n = {cfg.n_sub:,}")
    return plotting.finish(fig)


def plot_noise(res: dict, cfg: DendritesConfig):
    """P(miss) against the fraction of the pattern replaced, one curve per θ."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for th, row, fm in zip(res["thetas"], res["fn"], res["fm"]):
        ax.plot(res["noise"], row, label=f"θ = {th} (false match {fm:.1e})")
    ax.axvline(0.5, color="grey", lw=0.8)
    plotting.label(ax, "fraction of the pattern's cells replaced v/a", "P(false negative)",
                   f"a = {cfg.a_noise}, s = {cfg.s_noise}, n = {cfg.n_noise:,}")
    return plotting.finish(fig)


def plot_union(res: dict, cfg: DendritesConfig):
    """Distinct synapses and false match against the number of stored patterns."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    ax1.plot(res["m"], res["synapses"], label="expected distinct synapses")
    ax1.plot(res["m"], res["m"] * cfg.s_union, "k:", label="m·s (no overlaps)")
    plotting.label(ax1, "patterns stored m", "synapses on the segment")
    ax2.semilogy(res["m"], res["fm"], "o-", ms=3)
    ax2.axhline(cfg.union_tolerance, color="grey", lw=0.8, label=f"{cfg.union_tolerance:.0e}")
    plotting.label(ax2, "patterns stored m", "P(false match)",
                   f"n = {cfg.n_union:,}, a = {cfg.a_union}, s = {cfg.s_union}, θ = {cfg.theta_union}")
    return plotting.finish(fig)


def plot_optimal_threshold(res: dict, cfg: DendritesConfig):
    """Median false match over the grid against θ, and median false match + false negative per noise level."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    ax1.semilogy(res["theta"], res["median_fm"], "o-")
    plotting.label(ax1, "NMDA threshold θ (synapses)", "median P(false match)", "over the (n, a/n, s) grid")
    for noise, total in res["median_total"].items():
        ax2.semilogy(res["theta"], total, label=f"{noise:.0%} noise (θ* = {res['optimum'][noise]})")
    for ax in (ax1, ax2):
        ax.axvspan(8, 20, color="grey", alpha=0.15, lw=0)
    plotting.label(ax2, "NMDA threshold θ (synapses)", "median P(false match) + P(false negative)",
                   "shaded: measured NMDA thresholds")
    return plotting.finish(fig)


def plot_monte_carlo(res: dict):
    """Monte Carlo estimates (±2 standard errors) against the exact values."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for kind, color in (("false match", plotting.COLORS[0]), ("false negative", plotting.COLORS[1]),
                        ("union", plotting.COLORS[2])):
        rows = [r for k, _, r in res["rows"] if k == kind]
        if not rows:
            continue
        x = np.array([r.exact for r in rows])
        y = np.array([r.estimate for r in rows])
        e = np.array([2 * r.stderr for r in rows])
        ax.errorbar(x, y, yerr=e, fmt="o", color=color, label=kind)
    lims = np.array([1e-8, 1.0])
    ax.loglog(lims, lims, "k:", lw=0.8, label="estimate = exact")
    plotting.label(ax, "exact probability", "Monte Carlo estimate")
    return plotting.finish(fig)


def monte_carlo_table(res: dict) -> str:
    """The Monte Carlo rows as aligned text (3 significant digits)."""
    lines = [f"{'kind':15s} {'parameters':28s} {'trials':>9s} {'hits':>9s} {'estimate':>10s} {'exact':>10s} {'z':>6s}"]
    for kind, p, r in res["rows"]:
        lines.append(f"{kind:15s} {str(p):28s} {r.trials:9d} {r.hits:9d} {r.estimate:10.3g} {r.exact:10.3g} {r.z:6.2f}")
    return "\n".join(lines)
