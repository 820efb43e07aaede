"""Figures of the lazy_neurons chapter, one plotting function per figure (house style from
:mod:`sparsebook.plotting`).  Curves from training show the mean over seeds with a band from the
smallest to the largest seed; points from the estimates carry their 95% intervals."""
from __future__ import annotations

import numpy as np

from sparsebook.stats import Estimate


def _band(ax, x, values, color, label, ls="-"):
    v = np.asarray(values, dtype=float)               # [seeds, points]
    ax.plot(x, v.mean(0), ls, color=color, label=f"{label} (mean of {len(v)} seeds)")
    ax.fill_between(x, v.min(0), v.max(0), color=color, alpha=0.2, lw=0)


def _errorbar(ax, x, ests: list[Estimate], color, label, fmt="o-"):
    m = np.array([e.value for e in ests])
    err = np.array([[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]])
    ax.errorbar(x, m, yerr=err, fmt=fmt, color=color, capsize=3, label=label)


def _int_ticks(ax, values):
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.xaxis.set_major_locator(FixedLocator(list(values)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(int(v)) for v in values])


#: Candidate ticks of a log axis of ratios (×): the ones inside the axis limits are labelled in plain numbers.
_RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 1.01, 1.02, 1.05, 1.1, 1.2, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500)


def _log_ratio_ticks(ax):
    """Label a log-scaled y axis of ratios with plain numbers ("1.05", "2") at the candidate ticks inside
    its limits (matplotlib labels only powers of ten, none at all on an axis from 1 to 1.5), each at least
    an eighth of the axis above the previous one."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = ax.get_ylim()
    gap = (np.log10(hi) - np.log10(lo)) / 8          # at least 1/8 of the axis between labelled ticks
    inside = [t for t in _RATIO_TICKS if lo <= t <= hi]
    start = 1 if lo <= 1 <= hi else inside[0] if inside else None   # 1 (no change) is always labelled
    ticks = [] if start is None else [start]
    for t in inside:                                   # upwards, then downwards from the start
        if t > ticks[-1] and np.log10(t) - np.log10(ticks[-1]) >= gap:
            ticks.append(t)
    for t in reversed(inside):
        if t < ticks[0] and np.log10(ticks[0]) - np.log10(t) >= gap:
            ticks.insert(0, t)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def plot_emergence(runs: list[dict]):
    """Nonzero fraction (held-out, solid; training batch, dashed) and dead fraction against training
    steps: the Transformer (mean over layers) and the 2-layer MLP, seed bands."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, (a, b) = plotting.figure(ncols=2)
    tf = [r["emergence"]["transformer"] for r in runs]
    x = tf[0]["steps"]
    mean_layers = lambda d: np.mean([d[k] for k in d], 0)  # noqa: E731
    _band(a, x, [mean_layers(t["held_out"]) for t in tf], c[0], "nonzero, held-out")
    _band(a, x, [mean_layers(t["train"]) for t in tf], c[1], "nonzero, train batch", "--")
    _band(a, x, [mean_layers(t["dead"]) for t in tf], c[2], "dead units", ":")
    plotting.label(a, "training step (Adam updates)", "fraction (mean over layers)", "Transformer, Markov source")
    mp = [r["emergence"]["mlp"] for r in runs]
    x = mp[0]["steps"]
    _band(b, x, [m["held_out"] for m in mp], c[0], "nonzero, held-out")
    _band(b, x, [m["train"] for m in mp], c[1], "nonzero, train batch", "--")
    plotting.label(b, "training step (Adam updates)", "fraction of entries nonzero", "2-layer MLP, noisy teacher")
    for ax in (a, b):
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 0.6)
    return plotting.finish(fig)


def plot_firing(runs: list[dict]):
    """Histogram of how often each unit fires on held-out data (all seeds pooled): dead units at 0,
    always-on units at 1 (Li et al. 2023 use it to rule both out)."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, (a, b) = plotting.figure(ncols=2)
    bins = np.linspace(0, 1, 21)
    tf = [r["emergence"]["transformer"]["firing"] for r in runs]
    for i, name in enumerate(tf[0]):
        a.hist(np.concatenate([f[name] for f in tf]), bins=bins, histtype="step", color=c[i], label=name)
    plotting.label(a, "firing frequency of a unit (fraction of held-out tokens)", "units (count, all seeds)",
                   "Transformer MLPs")
    b.hist(np.concatenate([r["emergence"]["mlp"]["firing"] for r in runs]), bins=bins, histtype="step",
           color=c[0], label="hidden layer")
    plotting.label(b, "firing frequency of a unit (fraction of held-out inputs)", "units (count, all seeds)",
                   "2-layer MLP")
    return plotting.finish(fig)


def plot_scaling(est: dict):
    """Width and depth sweeps with 95% intervals: MLP (left pair) and Transformer (right pair)."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, axes = plotting.figure(ncols=4)
    a, b, d, e = axes
    _errorbar(a, est["widths"], est["width_nonzero"]["points"], c[0], "nonzero")
    _errorbar(a, est["widths"], est["width_dead"]["points"], c[2], "dead units", "s--")
    a.set_xscale("log", base=2)
    _int_ticks(a, est["widths"])
    plotting.label(a, "hidden width h (units)", "fraction", "MLP, width")
    _errorbar(b, est["depths"], est["depth_alive"]["points"], c[0], "nonzero, live units")
    _errorbar(b, est["depths"], est["depth_nonzero"]["points"], c[1], "nonzero, all units", "^:")
    _errorbar(b, est["depths"], est["depth_dead"]["points"], c[2], "dead units", "s--")
    _int_ticks(b, est["depths"])
    plotting.label(b, "hidden layers (count)", "fraction, mean over layers", "MLP, depth")
    _errorbar(d, est["tf_ffs"], est["tf_width_alive"]["points"], c[0], "nonzero, live units")
    _errorbar(d, est["tf_ffs"], est["tf_width_dead"]["points"], c[2], "dead units", "s--")
    d.set_xscale("log", base=2)
    _int_ticks(d, est["tf_ffs"])
    plotting.label(d, "MLP width h (units)", "fraction, mean over layers", "Transformer, width")
    _errorbar(e, est["tf_depths"], est["tf_depth_alive"]["points"], c[0], "nonzero, live units")
    _errorbar(e, est["tf_depths"], est["tf_depth_dead"]["points"], c[2], "dead units", "s--")
    _int_ticks(e, est["tf_depths"])
    plotting.label(e, "Transformer blocks (count)", "fraction, mean over layers", "Transformer, depth")
    for ax in axes:
        ax.set_ylim(bottom=0)
    return plotting.finish(fig)


def plot_data(est: dict):
    """Nonzero fraction against the number of distinct training examples (fresh = a new batch every step)."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, (a,) = plotting.figure()
    sizes = np.array(est["sizes"])
    xs = np.where(np.isinf(sizes), sizes[np.isfinite(sizes)].max() * 4, sizes)
    _errorbar(a, xs, est["size_nonzero"]["points"], c[0], "held-out")
    _errorbar(a, xs, est["size_train_nonzero"]["points"], c[1], "training set", "x--")
    _errorbar(a, xs, est["size_dead"]["points"], c[2], "dead units", "s:")
    a.set_xscale("log", base=2)
    from matplotlib.ticker import FixedLocator, NullLocator
    a.xaxis.set_major_locator(FixedLocator(list(xs)))
    a.xaxis.set_minor_locator(NullLocator())
    a.set_xticklabels([f"{int(n)}" for n in sizes[:-1]] + ["fresh"])
    plotting.label(a, "distinct training examples n (count)", "fraction", "noisy teacher, same number of steps")
    return plotting.finish(fig)


def plot_mixer(runs: list[dict]):
    """Held-out nonzero fraction of each Mixer MLP against training steps, seed bands."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, axes = plotting.figure(ncols=2)
    mx = [r["mixer"] for r in runs]
    for ax, kind in zip(axes, ("token", "channel")):
        for i, name in enumerate(n for n in mx[0]["held_out"] if n.endswith(f"{kind}_act")):
            _band(ax, mx[0]["steps"], [m["held_out"][name] for m in mx], c[i], name)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 0.6)
        plotting.label(ax, "training step (Adam updates)", "fraction of MLP entries nonzero", f"Mixer, {kind}-mixing MLPs")
    return plotting.finish(fig)


def plot_topk(runs: list[dict]):
    """Dense against Top-k, clean and noisy labels: test accuracy, corrupted accuracy and ECE, one
    point per seed and the mean as a bar."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, axes = plotting.figure(ncols=3)
    for ax, key, ylabel in zip(axes, ("accuracy", "corrupted", "ece"),
                               ("test accuracy (fraction)", "accuracy, corrupted inputs (fraction)",
                                "expected calibration error")):
        for j, (m, l) in enumerate((("dense", "clean"), ("topk", "clean"), ("dense", "noisy"), ("topk", "noisy"))):
            v = np.array([r["topk"][m][l][key] for r in runs])
            ax.bar(j, v.mean(), color=c[0 if m == "dense" else 1], alpha=0.35,
                   label=m if l == "clean" else None)
            ax.plot(np.full(len(v), j) + np.linspace(-0.15, 0.15, len(v)), v, "k.", ms=4)
        ax.set_xticks(range(4), ["dense\nclean", "Top-k\nclean", "dense\nnoisy", "Top-k\nnoisy"])
        plotting.label(ax, "model and training labels", ylabel, key)
    return plotting.finish(fig)


def plot_tradeoff(est: dict):
    """Perplexity ratio against activation sparsity: CATS and CHESS at each target, the fine-tunings,
    with 95% intervals (both axes)."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, (a,) = plotting.figure()
    th = est["thresholds"]
    for i, m in enumerate(("cats", "chess")):
        xs = [th[t][f"{m}_sparsity"] for t in th]
        ys = [th[t][f"{m}_ppl_ratio"] for t in th]
        a.errorbar([x.value for x in xs], [y.value for y in ys],
                   xerr=[[x.value - x.lo for x in xs], [x.hi - x.value for x in xs]],
                   yerr=[[y.value - y.lo for y in ys], [y.hi - y.value for y in ys]],
                   fmt="o-", color=c[i], capsize=3, label=f"{m.upper()} on the SiLU model (no retraining)")
    for j, (lab, v) in enumerate(est["finetune"].items()):
        if lab == "SiLU, continued":
            continue
        x, y = v["sparsity"], v["ppl_ratio"]
        a.errorbar([x.value], [y.value], xerr=[[x.value - x.lo], [x.hi - x.value]],
                   yerr=[[y.value - y.lo], [y.hi - y.value]], fmt="s", color=c[2 + j % 6], capsize=3, label=lab)
    a.axhline(1.0, color="grey", lw=0.8)
    a.axhline(1.02, color="grey", lw=0.8, ls=":")
    a.set_yscale("log")
    _log_ratio_ticks(a)
    plotting.label(a, "activation sparsity (fraction of MLP entries zero)",
                   "perplexity ratio to the SiLU model (×)", "cost of activation sparsity")
    return plotting.finish(fig)


def plot_sparsing_law(est: dict):
    """Activation ratio against training tokens: the ReLU model's fraction nonzero, and the SiLU
    model's 1 − PPL-1% sparsity, with 95% intervals."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, (a,) = plotting.figure()
    _errorbar(a, est["tokens"], est["relu_ratio"], c[0], "ReLU: fraction nonzero")
    _errorbar(a, est["tokens"], est["silu_ratio"], c[1], "SiLU: 1 − PPL-1% sparsity", "s--")
    plotting.label(a, "training tokens seen (count)", "activation ratio (fraction)", "Sparsing Law at small scale")
    a.set_ylim(bottom=0)
    return plotting.finish(fig)


def plot_speed(sp: dict):
    """Speedup of the sparse down projection over the dense one against sparsity, beside 1/(1 − s)."""
    from sparsebook import plotting

    c = plotting.COLORS
    fig, (a,) = plotting.figure()
    for i, (size, r) in enumerate(sp["sizes"].items()):
        a.plot(sp["sparsity"], r["speedup"], "o-", color=c[i], label=f"measured, d×h = {size}")
    a.plot(sp["sparsity"], sp["ideal"], "k:", label="ideal 1/(1-s)")
    a.axhline(1.0, color="grey", lw=0.8)
    a.set_yscale("log")
    _log_ratio_ticks(a)
    plotting.label(a, "activation sparsity s (fraction zero)", "speedup over dense (×)", "down projection, one token, CPU")
    return plotting.finish(fig)


def plot_temporal(runs: list[dict]):
    """Held-out sequence accuracy against the fraction of activation changes delta inference must
    propagate, for the quantized MLP without the Delta Activation Layer's penalty and with each λ;
    one dot per seed (thin lines join a seed's models), the mean with its 95% intervals on both axes.
    The baseline's fraction of activations nonzero (no delta inference) is shown as a vertical band."""
    from sparsebook import plotting
    from sparsebook.stats import from_seeds

    c = plotting.COLORS
    fig, (a,) = plotting.figure()
    labels = list(runs[0]["temporal"])
    dens = np.array([[r["temporal"][k]["temporal"] for k in labels] for r in runs])   # [seeds, models]
    acc = np.array([[r["temporal"][k]["accuracy"] for k in labels] for r in runs])
    for i in range(len(runs)):
        a.plot(dens[i], acc[i], "-", color="grey", lw=0.5, alpha=0.6)
    for j, k in enumerate(labels):
        name = "no penalty" if k == "baseline" else f"Delta Activation Layer, λ = {k:g}"
        a.plot(dens[:, j], acc[:, j], ".", color=c[j], ms=5)
        x, y = from_seeds(dens[:, j]), from_seeds(acc[:, j])
        a.errorbar([x.value], [y.value], xerr=[[x.value - x.lo], [x.hi - x.value]],
                   yerr=[[y.value - y.lo], [y.hi - y.value]], fmt="o", color=c[j], capsize=3, label=name)
    sp = from_seeds(np.array([r["temporal"]["baseline"]["spatial"] for r in runs]))
    a.axvspan(sp.lo, sp.hi, color="grey", alpha=0.2, lw=0, label="no penalty, without delta inference")
    plotting.label(a, "fraction of activation changes propagated",
                   "held-out sequence accuracy (fraction)", "temporal sparsity on a drifting-template video")
    return plotting.finish(fig)


def _seed_traces(name: str, x, values) -> dict:
    """A :func:`sparsebook.explore.trace` of the mean over seeds of ``values`` [seeds, points] with its
    95% interval at every point (:func:`sparsebook.stats.from_seeds`, Student t)."""
    from sparsebook.explore import trace
    from sparsebook.stats import from_seeds

    v = np.asarray(values, dtype=float)
    est = [from_seeds(v[:, j]) for j in range(v.shape[1])]
    return trace(name, np.asarray(x, dtype=float), [e.value for e in est], lo=[e.lo for e in est],
                 hi=[e.hi for e in est], kind="seeds", mode="lines+markers")


def explore_emergence(runs: list[dict]):
    """Explorable figure: the fraction of activations nonzero against training step, for each layer of
    the Transformer (Markov source) and for the 2-layer MLP (noisy teacher), on held-out data or on
    the latest training batch, mean over seeds with its 95% band (the traces of :func:`run_emergence`;
    nothing is recomputed)."""
    from sparsebook.explore import explore

    tf = [r["emergence"]["transformer"] for r in runs]
    mp = [r["emergence"]["mlp"] for r in runs]
    layers = list(tf[0]["held_out"])

    def fn(model, data):
        key = "held_out" if data == "held-out" else "train"
        if model == "MLP":
            return [_seed_traces("hidden layer", mp[0]["steps"], [m[key] for m in mp])]
        return [_seed_traces(f"block {i} MLP", tf[0]["steps"], [t[key][name] for t in tf])
                for i, name in enumerate(layers)]

    return explore(fn, {"model": ["Transformer", "MLP"], "data": ["held-out", "training batch"]},
                   labels={"model": "model", "data": "measured on"},
                   default={"model": "Transformer", "data": "held-out"},
                   title=f"Fraction of activations nonzero during training, mean over {len(runs)} seeds (95% band)",
                   xlabel="training step (Adam updates)", ylabel="fraction nonzero", y_range=[0, 0.6], digits=6)


def plot_try_emergence(width: int = 256, steps: int = 300, lr: float = 1e-2, noise: float = 0.5, seed: int = 0):
    """Try-your-own plot: train the chapter's 2-layer ReLU MLP (:func:`mlp_emergence`) with ``width``
    hidden units for ``steps`` Adam steps at ``lr`` on the teacher with label noise ``noise``, and draw
    its fraction nonzero (held-out and training batch) against the step; prints the final values."""
    from sparsebook import plotting
    from sparsebook.lazy_neurons.experiments import mlp_emergence

    r = mlp_emergence(width, steps, lr, seed, noise=noise, every=max(1, steps // 20))
    c = plotting.COLORS
    fig, (ax,) = plotting.figure(ncols=1)
    ax.plot(r["steps"], r["held_out"], "-o", ms=3, color=c[0], label="held-out")
    ax.plot(r["steps"], r["train"], "--", color=c[1], label="training batch")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 0.6)
    plotting.label(ax, "training step (Adam updates)", "fraction nonzero",
                   f"MLP h = {width}, lr = {lr:g}, label noise {noise:g}, seed {seed}")
    print(f"final held-out fraction nonzero {r['held_out'][-1]:.3f}, dead units {r['final']['dead']['acts.0']:.3f}")
    return plotting.finish(fig)


def try_emergence():
    """Try-your-own cell (JupyterLab): sliders for width, steps, learning rate and label noise over
    :func:`plot_try_emergence` (each move trains a fresh MLP: about a second on one core)."""
    from sparsebook.explore import interact

    return interact(plot_try_emergence, {"width": [16, 32, 64, 128, 256, 512, 1024],
                                         "steps": [50, 100, 200, 300, 600, 1000],
                                         "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
                                         "noise": [0.0, 0.25, 0.5, 0.75, 1.0],
                                         "seed": [0, 1, 2, 3, 4]},
                    default={"width": 64, "steps": 100, "lr": 1e-2, "noise": 0.5, "seed": 0})
