"""Mixture of experts, figures: one function per figure, house style; curves over seeds carry a
95% band (Student t over seeds)."""
from __future__ import annotations

import numpy as np
from scipy import stats as _st

from sparsebook import plotting


def _band(ax, x, values, label, color=None, marker="o", log=False):
    """Mean over seeds (axis 0) with its 95% t-band; ``log``: geometric mean, band on log values."""
    v = np.log(np.asarray(values, dtype=float)) if log else np.asarray(values, dtype=float)
    m = v.mean(0)
    half = _st.t.ppf(0.975, v.shape[0] - 1) * v.std(0, ddof=1) / np.sqrt(v.shape[0])
    lo, hi = m - half, m + half
    if log:
        m, lo, hi = np.exp(m), np.exp(lo), np.exp(hi)
    line, = ax.plot(x, m, marker=marker, label=label, color=color)
    ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
    return line


def plot_routing(r: dict):
    """Specialisation (NMI cluster ↔ first-choice expert) and the largest expert load over training,
    with and without the balance loss; final load of every expert, sorted."""
    fig, ax = plotting.figure(3)
    for name, label in (("balanced", "balance loss 0.01"), ("unbalanced", "no balance loss")):
        d = r[name]
        _band(ax[0], d["curve_steps"], d["curve_nmi"], label, marker=None)
        _band(ax[1], d["curve_steps"], d["curve_max_load"], label, marker=None)
        u = -np.sort(-d["usage"], axis=1)
        _band(ax[2], np.arange(1, u.shape[1] + 1), u, label)
    n_exp = r["balanced"]["usage"].shape[1]
    ax[1].axhline(1 / n_exp, color="grey", ls=":", label="uniform load")
    ax[2].axhline(1 / n_exp, color="grey", ls=":")
    plotting.label(ax[0], "training step", "NMI(cluster, expert)", "specialisation")
    plotting.label(ax[1], "training step", "largest expert load (fraction)", "load over training")
    plotting.label(ax[2], "expert rank by load", "fraction of assignments", "final load (test)")
    return plotting.finish(fig)


def plot_merging(m: dict):
    """Test NMSE after merging 8 experts into fewer (MC-SMoE grouping), aligned or not."""
    fig, ax = plotting.figure(1)
    keep = list(m["n_keep"])
    full = np.asarray(m["full"])[:, None]
    x = [list(m["expert_params"])[0]] + keep
    for mode, label in (("aligned", "aligned + usage-weighted (MC-SMoE)"), ("uniform", "aligned, uniform weights"),
                        ("naive", "unaligned + usage-weighted")):
        _band(ax[0], x, np.concatenate([full, m[mode]], 1), label)
    ax[0].invert_xaxis()
    plotting.label(ax[0], "experts after merging", "test NMSE (no fine-tuning)", "merging experts")
    return plotting.finish(fig)


def plot_pruning(p: dict):
    """Task test NMSE against the number of experts kept: by task usage (UNCURL) or at random."""
    fig, ax = plotting.figure(1)
    _band(ax[0], p["keep"], p["task"], "keep the task's most used experts")
    _band(ax[0], p["keep"], p["random"], "keep random experts")
    ax[0].set_yscale("log")
    ax[0].invert_xaxis()
    plotting.label(ax[0], "experts kept", "task test NMSE", "task-specific pruning")
    return plotting.finish(fig)


def plot_moex(x: dict):
    """Best single-unit AUROC for every planted variable (sorted): the wide sparse MoE with top-k
    softmax routing and with the sparsity-aware router, against the dense MLP."""
    fig, ax = plotting.figure(1)
    curves = (("moex", f"MoE, top-k router, {x['moex']['units']} units ({x['moex']['active_units']} routed)"),
              ("sparse_router", "MoE, sparsity-aware router"), ("dense", f"dense MLP, {x['dense']['units']} units"))
    for name, label in (c for c in curves if c[0] in x):
        b = -np.sort(-x[name]["best_auroc"], axis=1)
        _band(ax[0], np.arange(1, b.shape[1] + 1), b, label, marker=None)
    ax[0].axhline(0.5, color="grey", ls=":", label="chance")
    plotting.label(ax[0], "planted variable (sorted)", "best single-unit AUROC", "unit ↔ variable")
    return plotting.finish(fig)


def plot_gaussian(g: dict):
    """Parameter estimation error against sample size, log-log: temperature and activation gates."""
    fig, ax = plotting.figure(2)
    ns = np.asarray(g["ns"], dtype=float)
    for gate in ("temperature", "activation"):
        _band(ax[0], ns, g[gate]["gate_error"], f"{gate} gate", log=True)
        _band(ax[1], ns, g[gate]["expert_error"], f"{gate} gate", log=True)
    _band(ax[0], ns, g["temperature"]["ratio_error"], "temperature gate, (β₁/τ, β₀/τ)", marker="s", log=True)
    for a in ax:
        ref = np.exp(np.log(a.get_ylim()[1]) - 0.5 * (np.log(ns) - np.log(ns[0])))
        a.plot(ns, ref / 2, color="grey", ls=":", label="slope −1/2")
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xticks(ns, [f"{int(n):,}" for n in ns])
        a.minorticks_off()
    plotting.label(ax[0], "sample size n", "gate error |Δβ₁|+|Δβ₀|+|Δτ|", "gating parameters")
    plotting.label(ax[1], "sample size n", "expert error Σ|Δa|+|Δb|+|Δν|", "expert parameters")
    return plotting.finish(fig)


def plot_cost(times: dict):
    """Wall-clock per forward pass on this machine (median and range of the repeats)."""
    fig, ax = plotting.figure(1)
    names = list(times)
    ms = [1e3 * np.asarray(times[n]) for n in names]
    med = [np.median(v) for v in ms]
    ax[0].bar(range(len(names)), med, yerr=[[m - v.min() for m, v in zip(med, ms)], [v.max() - m for m, v in zip(med, ms)]],
              color=plotting.COLORS[:len(names)], capsize=3)
    ax[0].set_xticks(range(len(names)), [n.replace(": ", "\n") for n in names])
    plotting.label(ax[0], "implementation", "ms per forward (this machine)", "one layer, 4,096 tokens")
    return plotting.finish(fig, legend=False)


def plot_language(lm: dict, keep) -> object:
    """The Transformer language model with a top-2 MoE FFN: specialisation by source over training,
    the final expert load (sorted), and the task's loss against the experts kept after pruning."""
    fig, ax = plotting.figure(3)
    for name, label in (("moe", "balance loss 0.01"), ("moe_nobalance", "no balance loss")):
        d = lm[name]
        _band(ax[0], d["curve_steps"][0], d["nmi_curve"], label, marker=None)
        u = -np.sort(-d["load"], axis=1)
        _band(ax[1], np.arange(1, u.shape[1] + 1), u, label)
    ax[1].axhline(1 / lm["moe"]["load"].shape[1], color="grey", ls=":", label="uniform load")
    _band(ax[2], list(keep), lm["moe"]["task_ce"], "keep the task's most used experts")
    _band(ax[2], list(keep), lm["moe"]["random_ce"], "keep random experts")
    ax[2].invert_xaxis()
    plotting.label(ax[0], "training step", "NMI(source, expert)", "specialisation by source")
    plotting.label(ax[1], "expert rank by load", "fraction of test tokens", "final load (first choice)")
    plotting.label(ax[2], "experts kept", "task next-token loss (nats)", "task-specific pruning")
    return plotting.finish(fig)
