"""Figures of the information_compression chapter (house style from :mod:`sparsebook.plotting`; one
function per figure)."""
from __future__ import annotations

import numpy as np

from sparsebook.information_compression.experiments import LAYER_NAMES, PlaneResult, activation_range
from sparsebook.information_compression.kernels import compression, hidden_compression


def _plane_axis(ax, info, epochs, title="", norm=None):
    from sparsebook import plotting

    mean = info.mean(0)                               # (R, L, 2), mean over seeds
    sc = None
    for l in range(mean.shape[1]):
        c = plotting.COLORS[l % len(plotting.COLORS)]
        ax.plot(mean[:, l, 0], mean[:, l, 1], "-", color=c, label=f"layer {LAYER_NAMES[l]}", lw=1.0, alpha=0.8)
        sc = ax.scatter(mean[:, l, 0], mean[:, l, 1], c=np.maximum(epochs, 0.5), cmap="viridis", norm=norm,
                        s=14, zorder=3, edgecolors="none")
    plotting.label(ax, "I(X;T) (bits)", "I(T;Y) (bits)", title)
    return sc


def plot_planes(res: PlaneResult, activations=("tanh", "relu"), estimators=("fixed", "adaptive")):
    """Information planes (mean over seeds): rows ``estimators``, columns ``activations``; one line per
    layer, its points coloured by epoch (log scale, colour bar)."""
    from matplotlib.colors import LogNorm

    from sparsebook import plotting

    fig, axes = plotting.figure(len(activations), len(estimators))
    names = {"fixed": "fixed binning", "adaptive": "adaptive binning",
             "kde": f"KDE, σ² = {res.config.noise_var:g}",
             "adaptive_kde": f"adaptive KDE, σ = {res.config.rel_noise:g}·max|t|"}
    norm = LogNorm(0.5, max(float(res.epochs[-1]), 1.0))
    sc = None
    for i, est in enumerate(estimators):
        ep = res.epochs[res.kde_record_index] if est in ("kde", "adaptive_kde") else res.epochs
        for j, act in enumerate(activations):
            ax = axes[i * len(activations) + j]
            sc = _plane_axis(ax, res.info[(est, act, 0.0)], ep,
                             title=f"{act}, {names[est]} ({res.config.n_models} seeds)", norm=norm)
            if est in ("kde", "adaptive_kde"):
                ax.axvline(np.log2(res.config.kde_points), color="0.5", lw=0.8, ls=":")
    hi = max(ax.get_xlim()[1] for ax in axes)
    for ax in axes:                                   # one I(X;T) scale for every panel
        ax.set_xlim(0.0, hi)
    fig = plotting.finish(fig, legend=False)
    axes[0].legend(fontsize=7)
    fig.colorbar(sc, ax=list(axes), label="epoch (0 drawn at 0.5)", shrink=0.8)
    return fig


def plot_compression(res: PlaneResult, compress_at: float = 0.5, no_compress_at: float = 0.2):
    """Hidden-layer compression per activation, fixed against adaptive binning (bars: mean over seeds,
    dots: seeds), with the claims' criterion lines."""
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
    ax.axhline(compress_at, color="k", ls="--", lw=0.8, label=f"compresses: ≥ {compress_at:g} bit")
    ax.axhline(no_compress_at, color="k", ls=":", lw=0.8, label=f"does not: ≤ {no_compress_at:g} bit")
    ax.set_xticks(x, [a.replace("centred_softplus", "c-softplus").replace("leaky_relu", "leaky") for a in acts],
                  rotation=30)
    plotting.label(ax, "activation", "hidden-layer compression (bits)",
                   f"compression by activation ({res.config.n_models} seeds)")
    return plotting.finish(fig)


def plot_trajectories(res: PlaneResult, activations=("tanh", "relu"), estimator: str = "adaptive"):
    """Top: I(X;T) of every layer against epoch (mean over seeds, band: min-max over seeds).  Bottom:
    training cross-entropy against epoch (same bands)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(len(activations), 2)
    ep = np.maximum(res.epochs, 0.5)
    for j, act in enumerate(activations):
        ax = axes[j]
        ixt = res.info[(estimator, act, 0.0)][..., 0]            # (S, R, L)
        for l in range(ixt.shape[2]):
            c = plotting.COLORS[l % len(plotting.COLORS)]
            ax.plot(ep, ixt[:, :, l].mean(0), "-o", color=c, ms=3, label=f"layer {LAYER_NAMES[l]}")
            ax.fill_between(ep, ixt[:, :, l].min(0), ixt[:, :, l].max(0), color=c, alpha=0.15, lw=0)
        ax.set_xscale("log")
        plotting.label(ax, "epoch (0 drawn at 0.5)", "I(X;T) (bits)", f"{act}, {estimator} binning")
        ax = axes[len(activations) + j]
        for k, l2 in enumerate((0.0, float(res.config.l2))):
            if (act, l2) not in res.loss:
                continue
            cur = res.loss[(act, l2)]                              # (S, epochs)
            e = np.arange(1, cur.shape[1] + 1)
            c = plotting.COLORS[k]
            ax.plot(e, cur.mean(0), color=c, label=f"L2 = {l2:g}")
            ax.fill_between(e, cur.min(0), cur.max(0), color=c, alpha=0.2, lw=0)
        ax.set_xscale("log")
        plotting.label(ax, "epoch", "training cross-entropy (nats)", f"{act}, loss")
    fig = plotting.finish(fig, legend=False)
    axes[0].legend(fontsize=6)
    axes[len(activations)].legend(fontsize=7)
    return fig


def plot_sweeps(res: PlaneResult, compress_at: float = 0.5, no_compress_at: float = 0.2):
    """Hidden-layer compression (mean and 95% interval over seeds) against the number of bins (left)
    and against the KDE noise for ReLU (right), with the claims' criterion lines."""
    from sparsebook import plotting
    from sparsebook.information_compression.experiments import seed_compression

    cfg = res.config
    fig, axes = plotting.figure(2, 1)
    bins = sorted({cfg.n_bins, *cfg.bins_sweep})
    series = [("fixed", a) for a in ("tanh", "relu")] + [("adaptive", a) for a in cfg.sweep_activations]
    for k, (est, act) in enumerate(series):
        es = [seed_compression(res, est, act, n_bins=b) for b in bins]
        x = np.array(bins) * (1 + 0.03 * (k - len(series) / 2))
        axes[0].errorbar(x, [e.value for e in es], yerr=[[e.value - e.lo for e in es], [e.hi - e.value for e in es]],
                         fmt="o-" if est == "fixed" else "s--", ms=4, capsize=2,
                         color=plotting.COLORS[k % len(plotting.COLORS)], label=f"{est}, {act}")
    axes[0].set_xscale("log")
    for ax in axes:
        ax.axhline(compress_at, color="k", ls="--", lw=0.8)
        ax.axhline(no_compress_at, color="k", ls=":", lw=0.8)
    plotting.label(axes[0], "bins per unit", "hidden-layer compression (bits)", "binning: number of bins")
    kde = [("fixed", cfg.noise_var), ("adaptive", cfg.rel_noise)] + [(k, float(v)) for k, v in cfg.kde_sweep]
    labels, vals = [], []
    for kind, v in sorted(kde):
        main = (kind, v) in (("fixed", cfg.noise_var), ("adaptive", cfg.rel_noise))
        e = (seed_compression(res, "kde" if kind == "fixed" else "adaptive_kde", "relu") if main
             else seed_compression(res, "", "relu", kde=(kind, v)))
        labels.append(f"σ²={v:g}" if kind == "fixed" else f"σ={v:g}·max|t|")
        vals.append(e)
    x = np.arange(len(vals))
    axes[1].errorbar(x, [e.value for e in vals], yerr=[[e.value - e.lo for e in vals], [e.hi - e.value for e in vals]],
                     fmt="o", capsize=3, color=plotting.COLORS[1])
    axes[1].set_xticks(x, labels, rotation=20)
    plotting.label(axes[1], "KDE noise", "hidden-layer compression (bits)", "ReLU: KDE noise")
    fig = plotting.finish(fig, legend=False)
    axes[0].legend(fontsize=6, ncol=2)
    return fig


def plot_l2(res: PlaneResult):
    """Per-layer compression (adaptive binning, mean over seeds as lines, seeds as dots) with and without L2."""
    from sparsebook import plotting

    acts = res.config.l2_activations
    fig, axes = plotting.figure(len(acts), 1)
    layers = np.arange(len(LAYER_NAMES))
    for ax, act in zip(axes, acts):
        for k, l2 in enumerate((0.0, float(res.config.l2))):
            per_seed = compression(res.info[("adaptive", act, l2)][..., 0])        # (S, L)
            ax.plot(layers, per_seed.mean(0), "o-", color=plotting.COLORS[k], label=f"L2 = {l2:g} (mean)")
            for row in per_seed:
                ax.plot(layers + (k - 0.5) * 0.12, row, ".", color=plotting.COLORS[k], alpha=0.45, ms=4)
        ax.set_xticks(layers, LAYER_NAMES)
        plotting.label(ax, "layer (width)", "compression (bits)", f"{act}, adaptive binning")
    return plotting.finish(fig)


def plot_activation_histograms(res: PlaneResult, layer: int = 2, n_bins: int = 30):
    """Activity of one hidden layer (default the 5-unit layer) of the first seed on all 4096 inputs,
    pooled over its units, at the first and the last record epoch, per activation of
    ``res.sample_layers`` (tanh and ReLU); the grey ticks are the edges of the fixed bins that layer
    gets (:func:`~.experiments.fixed_ranges`: ``[-1, 1]`` for tanh, the layer's range over training
    otherwise)."""
    from sparsebook import plotting

    acts = list(res.sample_layers)
    fig, axes = plotting.figure(len(acts), 1)
    for ax, act in zip(axes, acts):
        arr = res.sample_layers[act][layer]                       # (R, 4096, n)
        lo, hi = activation_range(act) or (float(arr.min()), float(arr.max()))
        edges = np.linspace(lo, hi, n_bins + 1)
        for k, (r, name) in enumerate(((0, "initialization"), (-1, f"epoch {int(res.epochs[-1])}"))):
            ax.hist(arr[r].ravel(), bins=edges, color=plotting.COLORS[k], alpha=0.55, label=name)
        ax.set_yscale("log")
        for e in edges:
            ax.axvline(e, color="0.75", lw=0.4, zorder=0)
        plotting.label(ax, f"activity of layer {LAYER_NAMES[layer]} (all units)", "count (inputs × units)",
                       f"{act}: {n_bins} fixed bins (grey)")
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
    plotting.label(axes[1], "layer (width)", "Pearson r with test accuracy", "95% bootstrap intervals")
    return plotting.finish(fig, legend=False)


def plot_coding_rate(res: PlaneResult, layer: int = -1):
    """Class-conditional coding rate ``R^c`` and rate reduction ``ΔR`` of one hidden layer (default the
    last) over training, per activation (mean over seeds); right: the change of ``R^c`` from the first
    to the last record, per seed (dots) and its mean (bar)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(3, 1)
    ep = np.maximum(res.epochs, 0.5)
    for k, act in enumerate(res.config.activations):
        r = res.rates[act][:, :, layer].mean(0)          # (R, 2)
        c = plotting.COLORS[k % len(plotting.COLORS)]
        axes[0].plot(ep, r[:, 1], "-", color=c, label=act)
        axes[1].plot(ep, r[:, 0] - r[:, 1], "-", color=c, label=act)
    for ax in axes[:2]:
        ax.set_xscale("log")
    acts = res.config.activations
    for k, act in enumerate(acts):
        ch = res.rates[act][:, -1, layer, 1] - res.rates[act][:, 0, layer, 1]     # (S,)
        c = plotting.COLORS[k % len(plotting.COLORS)]
        axes[2].bar(k, ch.mean(), color=c, alpha=0.5)
        axes[2].plot(np.full(ch.shape, k), ch, ".", color="0.2", ms=4)
    axes[2].axhline(0.0, color="0.3", lw=0.8, ls="--")
    axes[2].set_xticks(np.arange(len(acts)), [a.replace("_", " ") for a in acts], rotation=35, ha="right")
    name = f"layer {LAYER_NAMES[:-1][layer]}"
    plotting.label(axes[2], "activation", "change of $R^c$, first to last epoch (nats)", f"per seed, {name}")
    plotting.label(axes[0], "epoch (0 drawn at 0.5)", "$R^c(Z)$ (nats)", f"class-conditional coding rate, {name}")
    plotting.label(axes[1], "epoch (0 drawn at 0.5)", r"$\Delta R = R - R^c$ (nats)", f"rate reduction, {name}")
    fig = plotting.finish(fig, legend=False)
    axes[1].legend(fontsize=6, loc="upper left", frameon=True)
    return fig



# ---------------------------------------------------------------------------
# Explorable figure and try-your-own cell (the estimator's bins, noise on stored activations)
# ---------------------------------------------------------------------------
def _seed_band(x: np.ndarray):
    """Mean over seeds (axis 0) and its 95% Student-t interval (as :func:`sparsebook.stats.from_seeds`)."""
    from scipy import stats as _st

    k = x.shape[0]
    mean = x.mean(0)
    half = _st.t.ppf(0.975, k - 1) * x.std(0, ddof=1) / np.sqrt(k) if k > 1 else np.zeros_like(mean)
    return mean, mean - half, mean + half


def explore_binning(res: PlaneResult):
    """Explorable figure: I(X;T) of every layer against epoch (mean over seeds with its 95% interval)
    under the binning estimator, with selectors for the activation, the estimator (fixed or adaptive
    bins) and the number of bins: the trajectories of :func:`run_information_plane` at ``n_bins``
    and at each of ``bins_sweep`` (nothing is recomputed)."""
    from sparsebook.explore import explore, trace

    bins = sorted({int(res.config.n_bins), *(int(b) for b in res.config.bins_sweep)})
    acts = [a for a in ("tanh", "relu") if all((e, a, b) in res.bins_sweep or b == res.config.n_bins
                                               for e in ("fixed", "adaptive") for b in bins)]
    ep = np.maximum(np.asarray(res.epochs, dtype=float), 0.5)

    def fn(activation, estimator, n_bins):
        info = (res.info[(estimator, activation, 0.0)] if n_bins == res.config.n_bins
                else res.bins_sweep[(estimator, activation, n_bins)])[..., 0]      # (S, R, L)
        out = []
        for l in range(info.shape[2]):
            mean, lo, hi = _seed_band(info[:, :, l])
            out.append(trace(f"layer {LAYER_NAMES[l]}", ep, mean, lo=lo, hi=hi, kind="seeds", mode="lines+markers"))
        return out

    return explore(fn, {"activation": acts, "estimator": ["fixed", "adaptive"], "n_bins": bins},
                   labels={"activation": "activation", "estimator": "binning", "n_bins": "bins per unit"},
                   default={"activation": "tanh", "estimator": "fixed", "n_bins": int(res.config.n_bins)},
                   title=f"I(X;T) per layer, mean over {len(res.train_acc[(acts[0], 0.0)])} seeds (95% band)",
                   xlabel="epoch (0 drawn at 0.5)", ylabel="I(X;T) (bits)", log_x=True, y_range=[0, 12.5],
                   digits=6)


def plot_try_binning(res: PlaneResult, activation: str = "tanh", estimator: str = "fixed", n_bins: int = 30,
                     noise: float = 0.0, seed: int = 0):
    """Try-your-own plot: I(X;T) of every layer against epoch for the first seed's stored activations
    (``res.sample_layers``), binned with ``n_bins`` per unit (fixed or adaptive), after adding Gaussian
    noise of standard deviation ``noise`` (in units of each layer's spread) to the stored activations.
    Prints the hidden layers' compression (drop from the peak).  Returns the figure."""
    from sparsebook import plotting
    from sparsebook.information_compression.experiments import tishby_dataset
    from sparsebook.information_compression.kernels import layer_information

    if activation not in res.sample_layers:
        raise ValueError(f"activation must be one of {sorted(res.sample_layers)}; got {activation!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0; got {noise!r}")
    _, y = tishby_dataset()
    rng = np.random.default_rng(seed)
    layers = res.sample_layers[activation]
    ixt = np.empty((layers[0].shape[0], len(layers)))
    for l, arr in enumerate(layers):
        for r in range(arr.shape[0]):
            t = arr[r]
            if noise > 0:
                t = t + noise * t.std() * rng.standard_normal(t.shape)
            ixt[r, l] = layer_information(t, y, n_bins, estimator)[0]
    ep = np.maximum(np.asarray(res.epochs, dtype=float), 0.5)
    fig, (ax,) = plotting.figure(ncols=1)
    for l in range(ixt.shape[1]):
        ax.plot(ep, ixt[:, l], "-o", ms=3, label=f"layer {LAYER_NAMES[l]}")
    ax.set_xscale("log")
    plotting.label(ax, "epoch (0 drawn at 0.5)", "I(X;T) (bits)",
                   f"{activation}, {estimator} binning, {n_bins} bins, noise {noise:g} (first seed)")
    drop = ixt[:, :-1].max(0) - ixt[-1, :-1]
    print("compression (peak − final I(X;T), bits), hidden layers: "
          + ", ".join(f"{LAYER_NAMES[l]}: {d:.2f}" for l, d in enumerate(drop)))
    return plotting.finish(fig)


def try_binning(res: PlaneResult):
    """Try-your-own cell (JupyterLab): sliders over :func:`plot_try_binning` for the stored activations of ``res``."""
    from functools import partial

    from sparsebook.explore import interact

    fn = partial(plot_try_binning, res)
    fn.__name__ = "plot_try_binning"
    return interact(fn, {"activation": sorted(res.sample_layers), "estimator": ["fixed", "adaptive"],
                         "n_bins": [2, 4, 8, 16, 30, 64, 100, 256, 1000],
                         "noise": [0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0]},
                    default={"activation": "tanh", "estimator": "fixed", "n_bins": 30, "noise": 0.0})
