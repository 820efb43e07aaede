"""Figures of the sparse-autoencoder chapter (house style; mean over seeds with a 95% band or points per seed)."""
from __future__ import annotations

import numpy as np

from sparsebook import plotting
from sparsebook.stats import from_seeds

LABELS = {("topk", None): "TopK", ("topk", "auxk"): "TopK + AuxK", ("mutual", None): "Mutual Choice",
          ("mutual", "zipf"): "Mutual Choice + aux-Zipf", ("feature", None): "Feature Choice"}
RULE_LABELS = {"topk": "TopK", "mutual": "Mutual Choice", "feature": "Feature Choice"}


def _interval(values):
    e = from_seeds(values)
    return e.value, e.lo, e.hi


def plot_dictionary(alloc: dict):
    """Left: |cosine| between the true features and their Hungarian-matched TopK latents (first seed,
    uniform firing); right: the distribution of each true feature's best cosine, per allocation rule."""
    fig, (a0, a1) = plotting.figure(2)
    top = alloc["runs"][("topk", None)]
    im = a0.imshow(np.abs(top["matched_cos"]), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=a0, label="|cosine|")
    plotting.label(a0, "matched latent (Hungarian order)", "true feature", "TopK, first seed, uniform firing")
    S = alloc["n_seeds"]
    bins = np.linspace(0, 1, 21)
    for key, lab in LABELS.items():
        if key[1] is not None:
            continue
        mc = alloc["runs"][key]["max_cos"][:S].ravel()
        a1.hist(mc, bins=bins, histtype="step", label=lab, density=True)
    a1.axvline(0.9, color="k", lw=0.8, ls="--")
    plotting.label(a1, "best cosine of a true feature with any latent", "density (features, all seeds)",
                   "uniform firing; dashed: recovered threshold")
    return plotting.finish(fig)


def plot_dead_curves(alloc: dict):
    """Fraction of dead latents (no firing in the last ``dead_steps`` steps) over training, per variant."""
    fig, axes = plotting.figure(2)
    S = alloc["n_seeds"]
    for j, (ax, name) in enumerate(zip(axes, ("uniform firing", "Zipfian firing"))):
        for key, lab in LABELS.items():
            run = alloc["runs"][key]
            curve, t = run["dead_curve"][:, j * S:(j + 1) * S], run["curve_steps"]
            m, lo, hi = np.array([_interval(row) for row in curve]).T
            ax.plot(t, m, label=lab)
            ax.fill_between(t, lo, hi, alpha=0.2)
        plotting.label(ax, "training step", "fraction of latents dead", name)
    return plotting.finish(fig)


def plot_allocation(alloc: dict):
    """FVU on held-out data against the measured L0, for each allocation rule (sweep over k), with
    95% intervals over seeds; left uniform, right Zipfian firing."""
    fig, axes = plotting.figure(2)
    S = alloc["n_seeds"]
    ks = sorted({k for _, k in alloc["sweep"]})
    for j, (ax, name) in enumerate(zip(axes, ("uniform firing", "Zipfian firing"))):
        for rule, lab in RULE_LABELS.items():
            pts = [alloc["sweep"][(rule, k)] for k in ks]
            l0 = [np.mean(r["l0"][j * S:(j + 1) * S]) for r in pts]
            m, lo, hi = np.array([_interval(r["fvu"][j * S:(j + 1) * S]) for r in pts]).T
            ax.errorbar(l0, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=lab)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        plotting.label(ax, "L0 (active latents per token)", "FVU (held-out)", name)
    return plotting.finish(fig)


def plot_models(panels: dict):
    """Per-seed points and means for the trained-model experiments: ``panels`` maps a panel title to
    ``(y label, {condition: per-seed values})``."""
    fig, axes = plotting.figure(len(panels))
    for ax, (title, (ylabel, conds)) in zip(axes, panels.items()):
        for i, (name, vals) in enumerate(conds.items()):
            vals = np.asarray(vals, float)
            ax.scatter(np.full(len(vals), i) + np.linspace(-0.12, 0.12, len(vals)), vals, s=14, alpha=0.7)
            m, lo, hi = _interval(vals)
            ax.errorbar([i], [m], yerr=[[m - lo], [hi - m]], color="k", marker="_", ms=16, capsize=4)
        ax.set_xticks(range(len(conds)), list(conds), rotation=20, ha="right")
        plotting.label(ax, "condition", ylabel, title)
    return plotting.finish(fig, legend=False)


def plot_absorption(ab: dict, cfg):
    """Left: absorption rate against the co-occurrence ρ = P(a child | parent) for each allocation rule
    (mean over seeds, 95% band), the rules' independent controls as dashed lines; right: TopK's
    absorption at k, at 2k and at 2m latents, hierarchical (ρ = ``rho_main``) against the control."""
    fig, (a0, a1) = plotting.figure(2)
    rate = ab["rate"]
    for j, (rule, lab) in enumerate(RULE_LABELS.items()):
        color = f"C{j}"
        rhos = [r for r in cfg.rhos if (rule, r, cfg.k, cfg.m) in rate]
        m, lo, hi = np.array([_interval(rate[(rule, r, cfg.k, cfg.m)]) for r in rhos]).T
        if len(rhos) > 1:
            a0.plot(rhos, m, marker="o", color=color, label=lab)
            a0.fill_between(rhos, lo, hi, color=color, alpha=0.2)
        else:
            a0.errorbar(rhos, m, yerr=[m - lo, hi - m], marker="s", color=color, capsize=3, ls="none", label=lab)
        a0.axhline(np.mean(rate[(rule, "independent", cfg.k, cfg.m)]), color=color, ls="--", lw=0.9)
    plotting.label(a0, "co-occurrence ρ = P(a child fires | parent fires)", "absorption rate",
                   f"k = {cfg.k}, m = {cfg.m}; dashed: independent control")
    variants = [("k, m", cfg.k, cfg.m), ("2k, m", 2 * cfg.k, cfg.m), ("k, 2m", cfg.k, 2 * cfg.m)]
    for j, (name, v) in enumerate(((f"hierarchical (ρ = {cfg.rho_main})", cfg.rho_main), ("independent", "independent"))):
        m, lo, hi = np.array([_interval(rate[("topk", v, kk, mm)]) for _, kk, mm in variants]).T
        x = np.arange(len(variants)) + (j - 0.5) * 0.2
        a1.errorbar(x, m, yerr=[m - lo, hi - m], marker="o", capsize=3, ls="none", label=name)
    a1.set_xticks(range(len(variants)), [f"TopK, {n}" for n, _, _ in variants])
    plotting.label(a1, "SAE (k per token, m latents)", "absorption rate", "wider or less sparse TopK SAEs")
    return plotting.finish(fig)
