"""Figures of the information_compression chapter (house style from :mod:`sparsebook.plotting`; one
function per figure)."""
from __future__ import annotations

import numpy as np

from sparsebook.information_compression.experiments import LAYER_NAMES, PlaneResult
from sparsebook.information_compression.kernels import compression, hidden_compression


def _plane_axis(ax, info, title=""):
    from sparsebook import plotting

    mean = info.mean(0)                               # (R, L, 2), mean over seeds
    for l in range(mean.shape[1]):
        c = plotting.COLORS[l % len(plotting.COLORS)]
        ax.plot(mean[:, l, 0], mean[:, l, 1], "-", color=c, label=f"layer {LAYER_NAMES[l]}", lw=1.2)
        ax.plot(mean[0, l, 0], mean[0, l, 1], "o", color=c, mfc="none", ms=5)
        ax.plot(mean[-1, l, 0], mean[-1, l, 1], "o", color=c, ms=5)
    plotting.label(ax, "I(X;T) (bits)", "I(T;Y) (bits)", title)


def plot_planes(res: PlaneResult, activations=("tanh", "relu"), estimators=("fixed", "adaptive")):
    """Information planes (mean over seeds): rows ``estimators``, columns ``activations``; one line per
    layer from the first record (open circle) to the last (filled)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(len(activations), len(estimators))
    names = {"fixed": "fixed binning", "adaptive": "adaptive binning", "kde": "KDE, σ² = 1e-3",
             "adaptive_kde": "adaptive KDE"}
    for i, est in enumerate(estimators):
        for j, act in enumerate(activations):
            ax = axes[i * len(activations) + j]
            _plane_axis(ax, res.info[(est, act, 0.0)], title=f"{act}, {names[est]}")
    fig = plotting.finish(fig, legend=False)
    axes[0].legend(fontsize=7)
    return fig


def plot_compression(res: PlaneResult):
    """Hidden-layer compression per activation, fixed against adaptive binning (bars: mean over seeds,
    dots: seeds)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(1, 1)
    ax = axes[0]
    acts = res.config.activations
    x = np.arange(len(acts))
    for k, (est, off) in enumerate((("fixed", -0.2), ("adaptive", 0.2))):
        vals = np.array([hidden_compression(res.info[(est, a, 0.0)]) for a in acts])   # (A, S)
        ax.bar(x + off, vals.mean(1), width=0.38, color=plotting.COLORS[k], label=f"{est} binning")
        for s in range(vals.shape[1]):
            ax.plot(x + off, vals[:, s], "k.", ms=3)
    ax.set_xticks(x, [a.replace("centred_softplus", "c-softplus").replace("leaky_relu", "leaky") for a in acts],
                  rotation=30)
    plotting.label(ax, "activation", "hidden-layer compression (bits)", "compression by activation")
    return plotting.finish(fig)


def plot_l2(res: PlaneResult):
    """Per-layer compression (adaptive binning, mean over seeds) with and without L2."""
    from sparsebook import plotting

    acts = res.config.l2_activations
    fig, axes = plotting.figure(len(acts), 1)
    layers = np.arange(len(LAYER_NAMES))
    for ax, act in zip(axes, acts):
        for k, l2 in enumerate((0.0, float(res.config.l2))):
            comp = compression(res.info[("adaptive", act, l2)][..., 0]).mean(0)
            ax.plot(layers, comp, "o-", color=plotting.COLORS[k], label=f"L2 = {l2:g}")
        ax.set_xticks(layers, LAYER_NAMES)
        plotting.label(ax, "layer (width)", "compression (bits)", f"{act}, adaptive binning")
    return plotting.finish(fig)


def plot_generalization(gen: dict):
    """Left: softmax-layer compression against test accuracy, one point per seed.  Right: Pearson r
    of each layer's compression with test accuracy, with its bootstrap interval."""
    from sparsebook import plotting

    fig, axes = plotting.figure(2, 1)
    axes[0].plot(gen["compression"][:, -1], 100 * gen["test_acc"], "o", color=plotting.COLORS[0])
    plotting.label(axes[0], "softmax-layer compression (bits)", "test accuracy (%)", "one point per seed")
    layers = np.arange(len(gen["r"]))
    axes[1].errorbar(layers, gen["r"], yerr=[gen["r"] - gen["lo"], gen["hi"] - gen["r"]], fmt="o",
                     color=plotting.COLORS[1], capsize=3)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_xticks(layers, LAYER_NAMES)
    plotting.label(axes[1], "layer (width)", "Pearson r with test accuracy", "90% bootstrap intervals")
    return plotting.finish(fig, legend=False)


def plot_coding_rate(res: PlaneResult, layer: int = -1):
    """Class-conditional coding rate ``R^c`` and rate reduction ``ΔR`` of one hidden layer (default the
    last) over training, per activation (mean over seeds)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(2, 1)
    ep = np.maximum(res.epochs, 0.5)
    for k, act in enumerate(res.config.activations):
        r = res.rates[act][:, :, layer].mean(0)          # (R, 2)
        c = plotting.COLORS[k % len(plotting.COLORS)]
        axes[0].plot(ep, r[:, 1], "-", color=c, label=act)
        axes[1].plot(ep, r[:, 0] - r[:, 1], "-", color=c, label=act)
    for ax in axes:
        ax.set_xscale("log")
    plotting.label(axes[0], "epoch (0 drawn at 0.5)", "$R^c(Z)$ (nats)", "class-conditional coding rate")
    plotting.label(axes[1], "epoch (0 drawn at 0.5)", r"$\Delta R = R - R^c$ (nats)", "rate reduction")
    fig = plotting.finish(fig, legend=False)
    axes[0].legend(fontsize=7)
    return fig

