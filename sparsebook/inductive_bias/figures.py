"""Figures of the inductive_bias chapter, one plotting function per figure (house style from
:mod:`sparsebook.plotting`, imported when a figure is drawn)."""
from __future__ import annotations

import numpy as np

from sparsebook.inductive_bias.kernels import fit_scaled_ncx2


def plot_estimator(r: dict):
    """Left: bits against ε (exact, Monte Carlo, fitted scaled χ²). Right: estimator error against n."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    a.plot(r["eps"], r["exact_bits"], color=c[0], label="exact (saddlepoint)")
    ok = np.isfinite(r["mc_bits"])
    a.plot(r["eps"][ok], r["mc_bits"][ok], "o", color=c[1], ms=3, label="Monte Carlo")
    a.plot(r["eps"], r["fitted_bits"], "--", color=c[2], label="fitted scaled χ²")
    a.axhline(r["mc_max_bits"], color="0.5", lw=0.8, ls=":", label="Monte Carlo reach")
    a.axvline(r["eps_tail"], color="0.7", lw=0.8)
    a.set_yscale("log")
    plotting.label(a, "error level ε (test MSE)", "inductive bias (bits)", "a kernel task: tail of the test error")
    n = r["sample_sizes"]
    b.loglog(n, r["spread_bits"], "o-", color=c[0], label="spread over repeats (sd)")
    b.loglog(n, r["rmse_bits"], "s-", color=c[1], label="RMS error vs exact")
    b.loglog(n, r["spread_bits"][0] * np.sqrt(n[0] / n), ":", color="0.4", label="∝ n^-1/2")
    from matplotlib.ticker import FixedLocator, NullLocator
    b.xaxis.set_major_locator(FixedLocator(n))
    b.xaxis.set_minor_locator(NullLocator())
    b.set_xticklabels([f"{int(v)}" for v in n])
    plotting.label(b, "sampled hypotheses n", f"error of estimated bits at {r['exact_tail_bits']:.0f} bits",
                   "convergence in n")
    return plotting.finish(fig)


def plot_dimension(r: dict):
    """Left: bits against input dimension (tasks as dots, mean as line). Right: mean error of a random hypothesis."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    d = r["dims"]
    for t in range(r["bits"].shape[1]):
        a.plot(d, r["bits"][:, t], "o", color=c[0], alpha=0.35, ms=3)
    a.plot(d, r["mean_bits"], "-", color=c[0], label="mean over tasks")
    a.set_xscale("log", base=2)
    plotting.label(a, "input dimension d", f"inductive bias at ε = {r['eps']:g} (bits)", "RBF-kernel hypotheses")
    b.plot(d, r["mean_error"], "o-", color=c[1], label="random interpolating hypothesis")
    b.axhline(r["eps"], color="0.4", ls=":", label="target ε")
    b.set_xscale("log", base=2)
    plotting.label(b, "input dimension d", "mean test MSE", "how far the hypotheses are from ε")
    return plotting.finish(fig)


def plot_network_bias(r: dict):
    """Left: the trained networks' losses with the fitted scaled χ². Right: kernel bits at each network's error."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    base = next(x for x in r["rows"] if (x["width"], x["depth"]) == tuple(r["base"]))
    losses = np.sort(base["losses"])
    a.step(losses, np.arange(1, len(losses) + 1) / len(losses), where="post", color=c[0], label="trained networks")
    fit = fit_scaled_ncx2(base["losses"])
    grid = np.linspace(0.8 * losses[0], 1.1 * losses[-1], 200)
    a.plot(grid, np.exp(fit.logcdf(grid)), "--", color=c[2], label="fitted scaled χ²")
    plotting.label(a, "test MSE", "fraction of networks ≤ MSE",
                   f"network space: width {base['width']}, depth {base['depth']}")
    b.plot(r["kernel_eps"], r["kernel_bits"], color="0.5", label="RBF-kernel space")
    for i, x in enumerate(r["rows"]):
        b.plot(x["median_mse"], x["kernel_bits"], "o", color=c[(i + 1) % len(c)],
               label=f"width {x['width']}, depth {x['depth']}")
    b.set_yscale("log")
    plotting.label(b, "error level ε (test MSE)", "kernel inductive bias (bits)", "bits a kernel needs to match a network")
    return plotting.finish(fig)


def plot_guidance(r: dict):
    """Left: test cross-entropy during training. Right: held-out CKA to each guide."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    names = {"none": "no guide", "untrained": "untrained CNN guide", "trained": "trained CNN guide"}
    for i, (k, v) in enumerate(r["runs"].items()):
        a.plot(v["curve"][:, 0], v["curve"][:, 1], "o-", ms=2, color=c[i], label=names[k])
    a.set_yscale("log")
    plotting.label(a, "training step", "test cross-entropy (nats)", "FCN on a digits subset")
    x = np.arange(len(r["runs"]))
    b.bar(x - 0.2, [v["cka_untrained"] for v in r["runs"].values()], 0.4, color=c[3], label="to untrained CNN")
    b.bar(x + 0.2, [v["cka_trained"] for v in r["runs"].values()], 0.4, color=c[4], label="to trained CNN")
    b.set_xticks(x, [names[k] for k in r["runs"]], rotation=15)
    b.set_ylim(0, 1)
    plotting.label(b, "target trained with", "held-out CKA (mean over layers)", "representational alignment")
    return plotting.finish(fig)
