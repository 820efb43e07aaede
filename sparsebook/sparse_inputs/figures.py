"""Sparse inputs and structured operators, figures: one function per figure, house style.

Curves from training carry the mean over seeds with its 95% interval (Student t) as a band, and
the single seeds as faint points or lines.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import stats as _st

from sparsebook import plotting
from sparsebook.plotting import COLORS


def _band(ax, x, Y, label, color, marker="o", ls="-", points=True):
    """Mean over seeds (rows of ``Y [K, J]``) with a 95% t band, and the seeds as points."""
    Y = np.asarray(Y, dtype=float)
    m = Y.mean(0)
    half = _st.t.ppf(0.975, Y.shape[0] - 1) * Y.std(0, ddof=1) / np.sqrt(Y.shape[0])
    ax.plot(x, m, marker=marker, ls=ls, color=color, label=label)
    ax.fill_between(x, m - half, m + half, color=color, alpha=0.2, lw=0)
    if points:
        for row in Y:
            ax.plot(x, row, ls="none", marker=".", color=color, alpha=0.35, ms=3)


def plot_interests(ms: Sequence[int], auc: Mapping[str, np.ndarray], oracle: float):
    """Test AUC against the number of interests per user, one line per model (``auc[name]``: ``[K, len(ms)]``)."""
    fig, (ax,) = plotting.figure(1)
    for i, (name, Y) in enumerate(auc.items()):
        _band(ax, ms, Y, name, COLORS[i])
    ax.axhline(oracle, color="0.4", ls=":", lw=1, label="Bayes-optimal AUC")
    ax.set_xticks(list(ms))
    plotting.label(ax, "interests per user m", "test AUC", "Pooling against DIN")
    return plotting.finish(fig)


def plot_attention(example: Mapping, w_match: np.ndarray, w_other: np.ndarray):
    """Left: DIN's activation weights over one test user's behaviours, coloured by whether the
    behaviour belongs to the candidate's interest.  Right: mean |weight| on behaviours of the
    candidate's interest and of the user's other interests, per seed."""
    fig, (a0, a1) = plotting.figure(2)
    w = np.asarray(example["weights"])
    same = np.asarray(example["hist_interest"]) == example["cand_interest"]
    a0.bar(np.arange(w.size)[same], w[same], color=COLORS[1], label="candidate's interest")
    a0.bar(np.arange(w.size)[~same], w[~same], color=COLORS[0], label="other interests of the user")
    a0.axhline(0, color="0.3", lw=0.8)
    plotting.label(a0, "behaviour j (position in history)", "activation weight a(e_j, v_A)", "One user, seed 0")
    K = len(w_match)
    for k in range(K):
        a1.plot([0, 1], [w_match[k], w_other[k]], color="0.6", lw=0.8)
    a1.plot(np.zeros(K), w_match, "o", color=COLORS[1], label="candidate's interest")
    a1.plot(np.ones(K), w_other, "o", color=COLORS[0], label="other interests")
    a1.set_xticks([0, 1], ["same interest", "other"])
    a1.set_xlim(-0.5, 1.5)
    plotting.label(a1, "behaviours", "mean |activation weight|", "Matching test candidates, per seed")
    return plotting.finish(fig)


def plot_regularization(curves: Mapping[str, tuple]):
    """Test (solid) and training (dashed) log-loss along training, one colour per regulariser.
    ``curves[name] = (steps [J], test [K, J], train [K, J])``."""
    fig, (ax,) = plotting.figure(1)
    for i, (name, (steps, test, train)) in enumerate(curves.items()):
        _band(ax, steps, test, f"{name} (test)", COLORS[i], points=False)
        ax.plot(steps, np.asarray(train).mean(0), ls="--", color=COLORS[i], lw=1, label=f"{name} (train)")
    plotting.label(ax, "training step", "log-loss (nats)", "Overfitting of the goods-id embeddings")
    return plotting.finish(fig)


def plot_reg_cost(cost: Mapping):
    """Left: seconds per regularised update against the vocabulary size (median of repeats, bars
    from the fastest to the slowest), mini-batch aware L2 against L2 on the whole table.  Right:
    bytes of the gradient it writes (exact)."""
    fig, (a0, a1) = plotting.figure(2)
    V = np.asarray(cost["vocab"])
    for i, (key, name) in enumerate((("sec_mba", "mini-batch aware L2"), ("sec_full", "full-table L2"))):
        t = np.asarray(cost[key])
        med = np.median(t, 1)
        a0.errorbar(V, med, yerr=[med - t.min(1), t.max(1) - med], marker="o", color=COLORS[i], label=name, capsize=2)
    a0.set_xscale("log")
    a0.set_yscale("log")
    plotting.label(a0, "embedding rows V", "wall-clock per update (s)", "Time (this machine)")
    for i, (key, name) in enumerate((("bytes_mba", "mini-batch aware L2 (sparse)"), ("bytes_full", "full-table L2 (dense)"),
                                     ("bytes_lookup_sparse", "lookup, sparse=True"), ("bytes_lookup_dense", "lookup, dense"))):
        a1.plot(V, cost[key], marker="os^v"[i], color=COLORS[i], ls="-" if i < 2 else ":", label=name)
    a1.set_xscale("log")
    a1.set_yscale("log")
    plotting.label(a1, "embedding rows V", "gradient size (bytes)", "Memory written per step (exact)")
    return plotting.finish(fig)


def plot_operator_sweep(n_train: Sequence[int], test: Mapping[str, np.ndarray], train: Mapping[str, np.ndarray]):
    """Left: relative test error against the training-set size (``test[model]``: ``[K, J]``).
    Right: generalisation gap, test − training error."""
    fig, (a0, a1) = plotting.figure(2)
    for i, name in enumerate(test):
        _band(a0, n_train, test[name], name, COLORS[i])
        _band(a1, n_train, np.asarray(test[name]) - np.asarray(train[name]), name, COLORS[i])
    for ax in (a0, a1):
        ax.set_xscale("log")
    a0.set_yscale("log")
    plotting.label(a0, "training samples", "relative L2 test error", "Error against data")
    plotting.label(a1, "training samples", "test − training error", "Generalisation gap")
    return plotting.finish(fig)


def plot_predictions(a: np.ndarray, u: np.ndarray, preds: Mapping[str, np.ndarray], title: str = ""):
    """True solutions (black) and predictions of each model for a few test coefficients (1-D);
    the coefficient ``a(x)`` is drawn shaded below."""
    count = u.shape[0]
    fig, axes = plotting.figure(count)
    x = np.linspace(0, 1, u.shape[-1])
    for j, ax in enumerate(axes):
        ax.plot(x, u[j, 0], color="k", lw=2.2, label="SciPy solution")
        for i, (name, p) in enumerate(preds.items()):
            ax.plot(x, p[j, 0], color=COLORS[i], lw=1.2, ls="--", label=name)
        lo, hi = ax.get_ylim()
        ax.fill_between(x, lo, lo + (hi - lo) * 0.15 * (a[j, 0] > a[j, 0].min()), color="0.85", lw=0, step="mid",
                        label="a = 12 (shaded)" if j == 0 else None)
        plotting.label(ax, "x", "u(x)", f"{title} test sample {j}")
    return plotting.finish(fig)


def plot_resolution(grids: Sequence[int], test: Mapping[str, np.ndarray]):
    """Relative test error against the grid size, one line per model (``test[model]``: ``[K, J]``)."""
    fig, (ax,) = plotting.figure(1)
    for i, name in enumerate(test):
        _band(ax, grids, test[name], name, COLORS[i])
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(grids), [str(g) for g in grids])
    plotting.label(ax, "grid nodes n", "relative L2 test error", "Error against resolution")
    return plotting.finish(fig)


def plot_training_curves(curves: Mapping[str, np.ndarray], title: str = ""):
    """The minibatch training loss of every seed against the step, one panel per model
    (``curves[name]``: ``[steps, K]``), on a log scale: a seed that stalls or spikes shows as its own line."""
    fig, axes = plotting.figure(len(curves))
    for ax, (i, (name, L)) in zip(axes, enumerate(curves.items())):
        L = np.asarray(L, dtype=float)
        for k in range(L.shape[1]):
            ax.plot(np.arange(1, L.shape[0] + 1), L[:, k], color=COLORS[i], alpha=0.7, lw=0.9,
                    label="one line per seed" if k == 0 else None)
        ax.set_yscale("log")
        plotting.label(ax, "training step", "relative L2 error of the minibatch", f"{title} {name}".strip())
    return plotting.finish(fig)
