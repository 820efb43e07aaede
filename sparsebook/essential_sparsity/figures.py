"""Essential sparsity, figures and tables (the chapter's cells call these), house style of
:mod:`sparsebook.plotting`.  Every figure takes the list of per-seed results of
:func:`~sparsebook.essential_sparsity.experiments.run_seeds` and draws the mean over seeds with a
95% band (Student t, per point)."""
from __future__ import annotations

import numpy as np
from scipy import stats as _st

from sparsebook.essential_sparsity.experiments import collect, imp_pairs
from sparsebook.essential_sparsity.kernels import cubic_sparsity_schedule, essential_sparsity_point, pruning_window


def knee_table(sparsities, scores, deltas=(0.005, 0.01, 0.02)) -> str:
    """The knee under every definition (and several ``delta``) as rounded text, one line.

    Use it for exact or stored curves only: a knee of one training run is a stochastic number."""
    parts = [f"hinge {essential_sparsity_point(sparsities, scores):.3g}",
             f"kneedle {essential_sparsity_point(sparsities, scores, method='kneedle'):.3g}"]
    parts += [f"delta={d:g} {essential_sparsity_point(sparsities, scores, method='delta', delta=d):.3g}" for d in deltas]
    return ", ".join(parts)


def band(curves) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and the 95% Student-t band of each point: ``curves`` ``[K, S]`` -> three ``[S]`` arrays."""
    c = np.asarray(curves, dtype=float)
    if c.ndim != 2 or c.shape[0] < 2:
        raise ValueError(f"curves must have shape [seeds>=2, points]; got {c.shape}")
    m = c.mean(0)
    half = _st.t.ppf(0.975, c.shape[0] - 1) * c.std(0, ddof=1) / np.sqrt(c.shape[0])
    return m, m - half, m + half


def _plot_band(ax, x, curves, fmt="o-", label=None, **kw):
    m, lo, hi = band(curves)
    line, = ax.plot(x, m, fmt, label=label, **kw)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line


def _mark_knees(ax, runs, *path, color="0.3", label="hinge knee (mean over seeds)"):
    k = collect(runs, *path).mean()
    ax.axvline(k, color=color, ls=":", lw=1.2, label=label)


def plot_oneshot(runs):
    """Accuracy against one-shot sparsity, MLP (global and layer-wise pools, and after fine-tuning with the
    mask fixed) and CNN, with the hinge knees; the same zoomed into 0.8-1; N:M patterns."""
    from sparsebook import plotting

    fig, (a, z, b) = plotting.figure(3)
    s = runs[0]["oneshot"]["sparsities"]
    fs = runs[0]["finetune"]["sparsities"]
    for ax in (a, z):
        _plot_band(ax, s, collect(runs, "oneshot", "acc_global"), "o-", "MLP, global pool")
        _plot_band(ax, s, collect(runs, "oneshot", "acc_layer"), "s--", "MLP, layer-wise")
        _plot_band(ax, fs, collect(runs, "finetune", "acc"), "D-", "MLP, global + fine-tuning")
        _plot_band(ax, runs[0]["cnn"]["sparsities"], collect(runs, "cnn", "acc"), "^-", "CNN, global pool")
        _mark_knees(ax, runs, "oneshot", "sharpness", "knee", label="MLP knee (hinge)" if ax is a else None)
        _mark_knees(ax, runs, "cnn", "sharpness", "knee", color="#009E73", label="CNN knee (hinge)" if ax is a else None)
    z.set_xlim(0.8, 1.0)
    plotting.label(a, "sparsity (fraction of weights removed)", "test accuracy", "one-shot magnitude pruning")
    plotting.label(z, "sparsity (fraction of weights removed)", "test accuracy", "zoom on the knee")
    nm_s = runs[0]["oneshot"]["nm_sparsities"]
    _plot_band(b, nm_s, collect(runs, "oneshot", "nm_best"), "o-", "best N:M pattern")
    _plot_band(b, s, collect(runs, "oneshot", "acc_layer"), "--", "unstructured, layer-wise", color="0.5")
    b.set_xlim(0.4, 1.0)
    plotting.label(b, "sparsity 1 - N/M (fraction of weights removed)", "test accuracy", "N:M patterns, one shot")
    a.legend(fontsize=6)
    b.legend()
    return plotting.finish(fig, legend=False)


def plot_transformer(runs):
    """Held-out token accuracy and cross-entropy of the Transformer against one-shot sparsity, with its knees;
    the MLP's global curve for the shape."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    s = runs[0]["transformer"]["sparsities"]
    _plot_band(a, s, collect(runs, "transformer", "acc"), "o-", "Transformer, attention + FFN pool")
    _plot_band(a, runs[0]["oneshot"]["sparsities"], collect(runs, "oneshot", "acc_global"), "s--",
               "MLP on digits (above)", color="0.5")
    _mark_knees(a, runs, "transformer", "sharpness", "knee", label="Transformer knee (hinge)")
    _mark_knees(a, runs, "transformer", "plateau", color="#D55E00", label="Transformer: last point within 1 point")
    plotting.label(a, "sparsity (fraction of the pruning pool removed)", "held-out accuracy",
                   "sorting Transformer, one shot")
    _plot_band(b, s, collect(runs, "transformer", "loss"), "o-", "Transformer")
    plotting.label(b, "sparsity (fraction of attention + FFN weights removed)", "held-out cross-entropy (nats/token)",
                   "held-out loss")
    return plotting.finish(fig)


def plot_transformer_finetune(runs):
    """The Transformer with the authors' BERT/ViT protocol: left, held-out accuracy against sparsity for the
    one-shot masks without fine-tuning and after fine-tuning with the mask fixed (mean and 95% band), with
    each curve's essential sparsity (last point within 1 point of its own dense accuracy, mean over seeds);
    right, that essential sparsity per seed, without and with fine-tuning (one line per seed)."""
    from sparsebook import plotting

    s = runs[0]["transformer_ft"]["sparsities"]
    fig, (a, b) = plotting.figure(2)
    l0 = _plot_band(a, s, collect(runs, "transformer_ft", "acc_oneshot"), "o--", "no fine-tuning (Vicuna-style)")
    l1 = _plot_band(a, s, collect(runs, "transformer_ft", "acc"), "s-", "fine-tuned, mask fixed (BERT/ViT protocol)")
    _mark_knees(a, runs, "transformer_ft", "plateau_oneshot", color=l0.get_color(),
                label="no fine-tuning: last point within 1 point")
    _mark_knees(a, runs, "transformer_ft", "plateau", color=l1.get_color(),
                label="fine-tuned: last point within 1 point")
    plotting.label(a, "sparsity (fraction of attention + FFN weights removed)", "held-out token accuracy",
                   "sorting Transformer, same one-shot masks")
    pairs = np.stack([collect(runs, "transformer_ft", "plateau_oneshot"), collect(runs, "transformer_ft", "plateau")], 1)
    for j, row in enumerate(pairs):
        b.plot([0, 1], row, "o-", color="0.45", alpha=0.8, label="one seed (equal values overlap)" if j == 0 else None)
    b.plot([0, 1], pairs.mean(0), "s-", color="k", lw=2, label="mean over seeds")
    b.set_xticks([0, 1], ["no fine-tuning", "fine-tuned"])
    b.set_xlim(-0.3, 1.3)
    plotting.label(b, "protocol", "essential sparsity (last point within 1 point)", "per seed, paired")
    return plotting.finish(fig)


def plot_objectives(runs):
    """Left: probe accuracy against encoder sparsity for both objectives, with the raw-pixel and untrained-encoder
    probes as references; right: accuracy per data fraction, knees marked."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    s = runs[0]["objectives"]["sparsities"]
    for name, lab in (("supervised", "supervised"), ("masked", "masked reconstruction")):
        _plot_band(a, s, collect(runs, "objectives", name, "probe"), "o-", lab)
    a.axhline(collect(runs, "objectives", "raw_probe").mean(), color="0.3", ls="--", lw=1, label="probe on raw pixels")
    a.axhline(collect(runs, "objectives", "untrained_probe").mean(), color="0.6", ls=":", lw=1.5,
              label="probe on an untrained encoder")
    a.set_xlim(0.5, 1.0)
    plotting.label(a, "sparsity of the encoder (fraction of weights removed)", "probe test accuracy", "objective")
    sa = runs[0]["amount"]["sparsities"]
    for j, row in enumerate(runs[0]["amount"]["rows"]):
        line = _plot_band(b, sa, collect(runs, "amount", "rows", j, "acc"), "o-", f"{row['fraction']:.0%} of the data")
        b.axvline(collect(runs, "amount", "rows", j, "knees", "hinge").mean(), color=line.get_color(), ls=":", lw=1)
    b.set_xlim(0.5, 1.0)
    plotting.label(b, "sparsity (fraction of weights removed)", "test accuracy",
                   "amount of training data (dotted: hinge knees)")
    return plotting.finish(fig)


def plot_emergence(runs):
    """Essential sparsity (1-point knee) and dense accuracy of the checkpoints, mean over seeds with bands; only
    scored checkpoints (dense accuracy above the threshold in every seed) are drawn."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    steps = runs[0]["emergence"]["steps"]
    ok = collect(runs, "emergence", "scored").astype(bool).all(0)
    _plot_band(a, steps[ok], collect(runs, "emergence", "dense_acc")[:, ok], "o-", "dense accuracy")
    plotting.label(a, "training step", "dense test accuracy", "learning")
    _plot_band(b, steps[ok], collect(runs, "emergence", "essential")[:, ok], "o-", "essential sparsity")
    for i, r in enumerate(runs):
        e = r["emergence"]
        b.plot(e["steps"][ok], e["essential"][ok], "-", color="0.6", lw=0.6, label="single seeds" if i == 0 else None)
    plotting.label(b, "training step", "essential sparsity (largest s within 1 point)", "sparsification")
    return plotting.finish(fig)


def plot_sparse_training(runs):
    """Left: random pruning per width (points, no line between the two widths); right: gradual vs one-shot vs
    small-dense per sparsity."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    rows = runs[0]["random"]["rows"]
    w = np.array([row["width"] for row in rows], dtype=float)
    for off, (key, mk) in zip((0.94, 1.0, 1.06), (("dense", "o"), ("uniform", "s"), ("erk", "^"))):
        vals = np.stack([collect(runs, "random", "rows", j, key) for j in range(len(rows))], 1)
        m, lo, hi = band(vals)
        a.errorbar(w * off, m, yerr=[m - lo, hi - m], fmt=mk, capsize=3,
                   label=key if key == "dense" else f"random, {key}")
    a.set_xscale("log", base=2)
    a.set_xticks(w, [str(int(v)) for v in w])
    plotting.label(a, "hidden width (units)", "test accuracy",
                   f"random masks, density {runs[0]['random']['density']:g}")
    grows = runs[0]["gradual"]["rows"]
    s = [row["sparsity"] for row in grows]
    for key, mk, lab in (("oneshot_noretrain", "x:", "one shot, no retraining"),
                         ("oneshot", "s--", "one shot + retraining"), ("gradual", "o-", "gradual (cubic)"),
                         ("small_dense", "^-.", "small dense, equal nonzeros")):
        vals = np.stack([collect(runs, "gradual", "rows", j, key) for j in range(len(grows))], 1)
        _plot_band(b, s, vals, mk, lab)
    plotting.label(b, "sparsity (fraction of weights removed)", "test accuracy", "pruning schedule")
    return plotting.finish(fig)


def plot_journey(runs, config):
    """Left: the cubic schedules of each window (a staircase: the largest cuts come first); right: final
    test loss per window, mean over seeds with 95% intervals and the single seeds."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    t = np.arange(config.steps)
    rows = runs[0]["journey"]["rows"]
    for row in rows:
        t0, n = pruning_window(config.steps, row["start"], row["end"], config.dt)
        dt = min(config.dt, max(1, (config.steps - 1 - t0) // n))
        a.plot(t, [cubic_sparsity_schedule(int(k), 0.0, config.sparsity, t0, n, dt) for k in t],
               label=f"{row['start']:.0%} to {row['end']:.0%}")
    plotting.label(a, "training step", "target sparsity", "pruning windows")
    loss = np.stack([collect(runs, "journey", "rows", j, "loss") for j in range(len(rows))], 1)
    m, lo, hi = band(loss)
    x = np.arange(len(rows))
    b.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o", capsize=4, label="mean, 95% interval")
    for k in range(loss.shape[0]):
        b.plot(x + 0.1, loss[k], ".", color="0.6", label="single seeds" if k == 0 else None)
    b.set_xticks(x, [f"{row['start']:.0%}-{row['end']:.0%}" for row in rows])
    plotting.label(b, "pruning window (fraction of training)", "final test loss (nats)", "final loss")
    return plotting.finish(fig)


def plot_imp(runs):
    """One-shot against iterative magnitude pruning (IMP, rewinding to the parent): left, the fraction of the
    one-shot mask's kept weights that the IMP mask keeps too (chance: 1 - s); right, test accuracy after
    fine-tuning with each mask fixed (same protocol), and the one-shot mask without fine-tuning."""
    from sparsebook import plotting

    p = imp_pairs(runs)
    s = p["sparsities"]
    fig, (a, b) = plotting.figure(2)
    _plot_band(a, s, p["overlap"], "o-", "one-shot and IMP masks")
    a.plot(s, p["chance"], "k:", lw=1, label="chance (two random masks)")
    a.set_ylim(0, 1.02)
    plotting.label(a, "sparsity (fraction of weights removed)", "shared fraction of kept weights",
                   "mask overlap")
    _plot_band(b, s, p["imp"], "s-", "IMP mask + fine-tuning")
    _plot_band(b, s, p["oneshot"], "o-", "one-shot mask + fine-tuning")
    _plot_band(b, s, p["oneshot_no_ft"], "^--", "one-shot mask, no fine-tuning")
    plotting.label(b, "sparsity (fraction of weights removed)", "test accuracy", "accuracy with each mask")
    return plotting.finish(fig)


def plot_imp_architectures(runs):
    """One-shot against IMP for the CNN and the Transformer (as :func:`plot_imp` for the MLP): left, the
    fraction of the one-shot mask's kept weights that the IMP mask keeps too (chance: 1 - s); right, test
    accuracy (per token for the Transformer) after fine-tuning with each mask fixed (same protocol)."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    for name, imp, ft, fmt in (("CNN", "cnn_imp", "cnn_ft", "-"), ("Transformer", "transformer_imp", "transformer_ft", "--")):
        p = imp_pairs(runs, imp, ft)
        s = p["sparsities"]
        _plot_band(a, s, p["overlap"], "o" + fmt, name)
        a.plot(s, p["chance"], ":", color="0.5", lw=1, label="chance (two random masks)" if name == "CNN" else None)
        _plot_band(b, s, p["imp"], "s" + fmt, f"{name}, IMP mask")
        _plot_band(b, s, p["oneshot"], "o" + fmt, f"{name}, one-shot mask")
    a.set_ylim(0, 1.02)
    plotting.label(a, "sparsity (fraction of weights removed)", "shared fraction of kept weights", "mask overlap")
    plotting.label(b, "sparsity (fraction of weights removed)", "test accuracy (fine-tuned)",
                   "accuracy with each mask")
    return plotting.finish(fig)


def plot_weight_magnitudes(runs):
    """Histograms of log10 |w| over the pruning pool of the trained MLP, CNN and Transformer and of the same
    models at initialisation (mean over seeds with a 95% band; 0.1 decade per bin), with the magnitude cut at
    each seed's hinge knee (dotted: mean of the log10 cut over seeds)."""
    from sparsebook import plotting
    from sparsebook.essential_sparsity.kernels import MAGNITUDE_EDGES

    centers = (MAGNITUDE_EDGES[:-1] + MAGNITUDE_EDGES[1:]) / 2
    fig, axes = plotting.figure(3)
    for ax, (key, name) in zip(axes, (("oneshot", "MLP"), ("cnn", "CNN"), ("transformer", "Transformer"))):
        h = collect(runs, key, "magnitudes")
        _plot_band(ax, centers, h, "-", "trained")
        _plot_band(ax, centers, collect(runs, key, "magnitudes_init"), "--", "at initialisation", color="0.5")
        cut = np.log10(collect(runs, key, "threshold_knee")).mean()
        ax.axvline(cut, color="0.3", ls=":", lw=1.2, label="cut at the hinge knee")
        live = np.flatnonzero(h.max(0) > 0)
        ax.set_xlim(centers[live[0]] - 0.2, centers[live[-1]] + 0.2)
        plotting.label(ax, "log10 |w| (weight magnitude)", "fraction of the pool per 0.1 decade", name)
    return plotting.finish(fig)


def plot_soups_nm(runs):
    """Left: test loss of each soup ingredient and of the soup, per seed; right: N:M fine-tuning at 1:16 (one shot,
    fixed mask, SR-STE, progressive gradient flow), mean over seeds with 95% intervals and single seeds."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    for k, r in enumerate(runs):
        ing = [l for _, l in r["soups"]["ingredients"]]
        a.plot([k] * len(ing), ing, "o", color="#0072B2", alpha=0.6, label="ingredients" if k == 0 else None)
        a.plot([k], [r["soups"]["soup"][1]], "*", color="#D55E00", ms=10, label="soup" if k == 0 else None)
    a.set_xticks(range(len(runs)), [str(k) for k in range(len(runs))])
    plotting.label(a, "seed (index)", "test loss (nats)", "sparse model soup, 90% sparsity")
    keys = (("oneshot", "one shot"), ("fixed", "fixed mask"), ("srste", "SR-STE"), ("pgf", "progressive flow"))
    vals = np.stack([collect(runs, "nm", k) for k, _ in keys], 1)
    m, lo, hi = band(vals)
    x = np.arange(len(keys))
    b.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o", capsize=4, label="mean, 95% interval")
    for k in range(vals.shape[0]):
        b.plot(x + 0.1, vals[k], ".", color="0.6", label="single seeds" if k == 0 else None)
    b.set_xticks(x, [lab for _, lab in keys])
    b.set_ylim(max(0.0, float(vals[:, 1:].min()) - 0.03), 1.0)
    n, mm = runs[0]["nm"]["n"], runs[0]["nm"]["m"]
    plotting.label(b, "method", "test accuracy", f"{n}:{mm} training (one shot off the scale if absent)")
    return plotting.finish(fig)


# ---------------------------------------------------------------------------
# Explorable figure and try-your-own cell (layer densities: ERK vs uniform vs global magnitude)
# ---------------------------------------------------------------------------
#: Target sparsities (x axis) and knob values of the explorable layer-density figure.
EXPLORE_SPARSITY = np.round(np.concatenate([np.linspace(0.5, 0.9, 9), np.linspace(0.92, 0.99, 8)]), 4)
EXPLORE_WIDTHS = (16, 32, 64, 128, 256, 512, 1024)
EXPLORE_DEPTHS = (1, 2, 3)


def mlp_shapes(width: int, depth: int, n_in: int = 64, n_out: int = 10) -> list[tuple[int, int]]:
    """Weight shapes (out, in) of the chapter's MLP on 8×8 digits: ``n_in → width (× depth) → n_out``."""
    if width < 1 or depth < 1:
        raise ValueError(f"width and depth must be >= 1, got {width}, {depth}")
    return [(width, n_in)] + [(width, width)] * (depth - 1) + [(n_out, width)]


def _layer_names(depth: int) -> list[str]:
    return ["input layer"] + [f"hidden layer {i}" for i in range(2, depth + 1)] + ["head"]


def explore_layer_densities():
    """Explorable figure: the ERK density of each layer against the target sparsity (the random
    masks of Liu et al. 2022; uniform keeps 1 − s everywhere), with sliders for the MLP's width
    and depth.  Pure arithmetic (:func:`erk_densities`), no training."""
    from sparsebook.essential_sparsity.kernels import erk_densities
    from sparsebook.explore import explore, trace

    x = EXPLORE_SPARSITY
    uniform = trace("uniform (every layer)", x, 1.0 - x, dash="dash", color="#777777")

    def fn(width, depth):
        dens = np.array([erk_densities(mlp_shapes(width, depth), 1.0 - s) for s in x])
        return [trace(f"ERK: {name}", x, dens[:, i], mode="lines+markers")
                for i, name in enumerate(_layer_names(depth))]

    return explore(fn, {"width": list(EXPLORE_WIDTHS), "depth": list(EXPLORE_DEPTHS)}, fixed=[uniform],
                   labels={"width": "hidden width", "depth": "hidden layers"}, default={"width": 256, "depth": 2},
                   title="Layer densities of a random ERK mask (64 → width → 10 MLP)",
                   xlabel="target sparsity s (global)", ylabel="density of the layer", log_y=True,
                   y_range=[1e-3, 1.2], digits=6)


def plot_try_layer_densities(width: int = 256, depth: int = 2, sparsity: float = 0.9, seed: int = 0):
    """Try-your-own plot: per-layer density of the chapter's MLP under a uniform random mask, an
    ERK random mask and global magnitude pruning at initialisation (PyTorch's default init,
    ``seed``), at the chosen width, depth and sparsity.  Prints the counts kept.  Returns the figure."""
    import torch

    from sparsebook import plotting
    from sparsebook.essential_sparsity.kernels import erk_densities, magnitude_mask
    from sparsebook.models import mlp

    shapes = mlp_shapes(width, depth)
    torch.manual_seed(seed)
    net = mlp([64] + [width] * depth + [10])
    weights = [m.weight.detach() for m in net if isinstance(m, torch.nn.Linear)]
    mag = [float(m.float().mean()) for m in magnitude_mask(weights, sparsity, "global")]
    erk = erk_densities(shapes, 1.0 - sparsity)
    names = _layer_names(depth)
    fig, (ax,) = plotting.figure(ncols=1)
    pos = np.arange(len(shapes))
    for k, (label, vals) in enumerate((("uniform", [1.0 - sparsity] * len(shapes)), ("ERK", erk),
                                       ("global magnitude (init)", mag))):
        ax.bar(pos + (k - 1) * 0.27, vals, width=0.27, label=label)
    ax.set_xticks(pos)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_yscale("log")
    plotting.label(ax, "layer", "density kept", f"width {width}, depth {depth}, sparsity {sparsity:g}")
    counts = [int(np.prod(s)) for s in shapes]
    print("weights kept (of): " + "; ".join(f"{n}: ERK {round(d * c):,}, uniform {round((1 - sparsity) * c):,} (of {c:,})"
                                             for n, d, c in zip(names, erk, counts)))
    return plotting.finish(fig)


def try_layer_densities():
    """Try-your-own cell (JupyterLab): sliders over :func:`plot_try_layer_densities`."""
    from sparsebook.explore import interact

    return interact(plot_try_layer_densities,
                    {"width": [8, 16, 32, 64, 128, 256, 512, 1024, 2048], "depth": [1, 2, 3, 4, 6],
                     "sparsity": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995]},
                    default={"width": 256, "depth": 2, "sparsity": 0.9})
