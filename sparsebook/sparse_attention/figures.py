"""Sparse attention, figures: one function per figure, in the house style."""
from __future__ import annotations

import numpy as np
import torch

from sparsebook import plotting
from sparsebook.sparse_attention import kernels as K

PATTERN_LABELS = {"local": "local window", "strided": "strided", "random": "random", "s2": "S2 shard",
                  "routing": "routing (k-means)", "sparsifiner": "Sparsifiner (rank-2)", "seer": "SeerAttention gate",
                  "oracle": "top-k oracle", "seer_oracle": "block oracle", "block_local": "local blocks"}


def plot_masks(L: int = 32, heads: int = 4, keys: int = 8, seed: int = 0):
    """The fixed patterns as masks: local, strided, random, and S2's heterogeneous and homogeneous shards
    (one panel per head for S2), black = kept."""
    g = torch.Generator().manual_seed(seed)
    stride = heads
    panels = [("local window", K.local_mask(L, keys)), ("strided", K.strided_mask(L, L // keys)),
              ("random (head 0)", K.random_mask(L, keys, 1, generator=g)[0])]
    het = K.s2_mask(L, heads, stride, block=2, local_blocks=1)
    hom = K.s2_mask(L, heads, stride, block=2, local_blocks=1, heterogeneous=False)
    panels += [(f"S2 head {h}", het[h]) for h in range(heads)]
    panels += [("S2 union over heads", het.any(0)), ("homogeneous union", hom.any(0))]
    ncols = 5
    nrows = -(-len(panels) // ncols)
    fig, axes = plotting.figure(ncols=ncols, nrows=nrows)
    fig.set_size_inches(2.0 * ncols, 2.1 * nrows)
    for ax, (title, m) in zip(axes, panels):
        ax.imshow(m.numpy(), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.grid(False)
        plotting.label(ax, "key j", "query i", title)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return plotting.finish(fig, legend=False)


def _band(ax, x, ys, label, marker="o"):
    ys = np.asarray(ys)
    m = ys.mean(0)
    ax.plot(x, m, marker=marker, label=label)
    if ys.shape[0] > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), alpha=0.15)


def plot_recall_vs_density(run: dict):
    """Mass recall, top-1 recall and imposed accuracy against the measured density, per pattern
    (mean over seeds, band: min to max over seeds), on the global recall task."""
    sw = run["sweep"]
    fig, axes = plotting.figure(ncols=3)
    for name, d in sw.items():
        x = d["density"].mean(0)
        for ax, m in zip(axes, ("mass", "top1", "acc")):
            _band(ax, x, d[m], PATTERN_LABELS[name])
    for ax, (m, t) in zip(axes, (("attention mass kept", "Mass recall"), ("strongest key kept (fraction)", "Top-1 recall"),
                                 ("query accuracy", "Pattern imposed on the dense model"))):
        ax.set_xscale("log")
        plotting.label(ax, "density (kept / causal keys)", m, t)
    axes[0].legend(fontsize=7)
    for ax in axes[1:]:
        ax.legend().set_visible(False) if ax.get_legend() else None
    return plotting.finish(fig, legend=False)


def plot_tasks(run: dict, patterns=("local", "strided", "random", "s2", "routing", "sparsifiner", "seer", "oracle")):
    """Mass recall at the equal-density budget on the global and the local task (mean and per-seed points)."""
    fig, axes = plotting.figure(ncols=1)
    ax = axes[0]
    fig.set_size_inches(7.5, 3.1)
    x = np.arange(len(patterns))
    for off, task in ((-0.18, "global"), (0.18, "local")):
        vals = np.array([run[task][p]["mass"] for p in patterns])  # [P, K]
        ax.bar(x + off, vals.mean(1), width=0.36, label=f"{task} recall task")
        ax.plot(np.repeat(x + off, vals.shape[1]), vals.ravel(), "k.", ms=2)
    ax.set_xticks(x, [PATTERN_LABELS[p] for p in patterns], rotation=25, ha="right", fontsize=8)
    plotting.label(ax, "pattern (equal budget of keys per query)", "attention mass kept", "Which pattern keeps what attention needs")
    ax.legend()
    return plotting.finish(fig, legend=False)


def plot_costs(analytic: dict, lengths, wall: dict, timed):
    """Left: analytic FLOPs of one head against L (keys = √L). Right: CPU seconds per call of unfused dense,
    masked dense and block-gathered attention (median over repeats, points: repeats)."""
    fig, (ax, bx) = plotting.figure(ncols=2)
    for name, d in analytic.items():
        ax.plot(lengths, d["flops"], marker=".", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plotting.label(ax, "sequence length L (tokens)", "multiply-adds per head", "Analytic cost (keys = √L)")
    ax.legend(fontsize=6, ncol=2)
    for name, lab in (("dense", "dense (unfused)"), ("masked", "dense + mask"), ("block", "block gather")):
        t = wall[name]
        bx.plot(timed, np.median(t, 0), marker="o", label=lab)
        bx.plot(np.tile(timed, (t.shape[0], 1)).ravel(), t.ravel(), "k.", ms=2)
    bx.set_xscale("log")
    bx.set_yscale("log")
    plotting.label(bx, "sequence length L (tokens)", "seconds per call (CPU)", "Wall-clock, like for like")
    bx.legend(fontsize=7)
    return plotting.finish(fig, legend=False)


def plot_training(s2: dict, paths: dict, seqboat: dict, lemo: dict):
    """Per-seed accuracies of the trained-with-sparsity models against their dense baselines."""
    fig, axes = plotting.figure(ncols=1)
    ax = axes[0]
    fig.set_size_inches(7.5, 3.1)
    cols = [("dense", s2["dense"]), ("S2 heterogeneous", s2["heterogeneous"]), ("homogeneous stride", s2["homogeneous"]),
            ("SSA + dense fine-tune", paths["ssa_ft"]), ("SSA only", paths["ssa"]), ("SeqBoat gate", seqboat["seqboat"]),
            ("LeMo fine-tune (L=128)", lemo["lemo_acc"]), ("full fine-tune (L=128)", lemo["full_acc"])]
    for i, (name, v) in enumerate(cols):
        ax.bar(i, np.mean(v), width=0.6, color=plotting.COLORS[i % len(plotting.COLORS)])
        ax.plot(np.full(len(v), i), v, "k.", ms=3)
    ax.set_xticks(range(len(cols)), [c[0] for c in cols], rotation=25, ha="right", fontsize=8)
    plotting.label(ax, "training recipe", "query accuracy", "Training with sparse attention (global recall task)")
    return plotting.finish(fig, legend=False)


def plot_trained_patterns(run: dict, patterns=("routing", "local", "seer", "block_local")):
    """Per-seed accuracy of each pattern imposed on the dense model (step 0) and after joint fine-tuning with
    it (:func:`~.experiments.run_trained_patterns`), the dense model's as a line; paired seeds joined."""
    fig, axes = plotting.figure(ncols=1)
    ax = axes[0]
    fig.set_size_inches(7.0, 3.1)
    for i, name in enumerate(patterns):
        a, b = run[name]["imposed"], run[name]["trained"]
        for x, v, c in ((i - 0.18, a, plotting.COLORS[0]), (i + 0.18, b, plotting.COLORS[1])):
            ax.bar(x, np.mean(v), width=0.34, color=c)
        ax.plot(np.stack([np.full(len(a), i - 0.18), np.full(len(b), i + 0.18)]), np.stack([a, b]), "k.-", ms=3, lw=0.6)
    ax.axhline(np.mean(run["dense"]), color="0.3", ls="--", lw=1)
    ax.bar(0, 0, color=plotting.COLORS[0], label="imposed on the dense model")
    ax.bar(0, 0, color=plotting.COLORS[1], label="fine-tuned with the pattern")
    ax.plot([], [], color="0.3", ls="--", label="dense model")
    ax.set_xticks(range(len(patterns)), [PATTERN_LABELS[p] for p in patterns])
    plotting.label(ax, "pattern (equal density)", "query accuracy", "Patterns imposed and trained (global recall task)")
    ax.legend(fontsize=7)
    return plotting.finish(fig, legend=False)


def plot_induction(run: dict, level: float, patterns=("local", "strided", "random", "routing")):
    """Left: training loss of the two-layer model per seed (10-step mean) with the plateau level; right:
    accuracy on the induction task, dense and with each pattern imposed on both layers (seeds as dots)."""
    fig, axes = plotting.figure(ncols=2)
    loss = np.asarray(run["loss"])
    k = np.ones(10) / 10
    for j in range(loss.shape[1]):
        axes[0].plot(np.arange(9, loss.shape[0]), np.convolve(loss[:, j], k, mode="valid"), lw=1, label=f"seed {j}")
    axes[0].axhline(level, color="0.3", ls="--", lw=1, label="½ ln(symbols)")
    plotting.label(axes[0], "training step", "training loss (nats, 10-step mean)", "Dense two-layer model")
    axes[0].legend(fontsize=7)
    cols = [("dense", run["dense"])] + [(PATTERN_LABELS[p], run[p]) for p in patterns]
    for i, (name, v) in enumerate(cols):
        axes[1].bar(i, np.mean(v), width=0.6, color=plotting.COLORS[i % len(plotting.COLORS)])
        axes[1].plot(np.full(len(v), i), v, "k.", ms=3)
    axes[1].set_xticks(range(len(cols)), [c[0] for c in cols], rotation=20, ha="right", fontsize=8)
    plotting.label(axes[1], "pattern on both layers", "accuracy (second copy)", "Patterns imposed on the induction circuit")
    return plotting.finish(fig, legend=False)


def plot_scratch(run: dict, patterns=("routing", "local", "random")):
    """Patterns trained from scratch (:func:`~.experiments.run_scratch`).  Left: training loss (10-step mean,
    mean over seeds, band from the lowest to the highest seed) of each pattern and of dense attention (routing's
    includes its k-means objective); right:
    per-seed accuracy against the pair coverage of the trained pattern (fraction of queries whose pair some head
    keeps), the dense model at coverage 1."""
    fig, axes = plotting.figure(ncols=2)
    k = np.ones(10) / 10
    for i, name in enumerate(("dense",) + tuple(patterns)):
        loss = np.asarray(run[name + "_loss"])
        sm = np.stack([np.convolve(loss[:, j], k, mode="valid") for j in range(loss.shape[1])], 1)
        t = np.arange(9, loss.shape[0])
        lab = "dense" if name == "dense" else PATTERN_LABELS[name]
        axes[0].plot(t, sm.mean(1), color=plotting.COLORS[i], lw=1.2,
                     label=lab + (" (+ k-means objective)" if name == "routing" else ""))
        axes[0].fill_between(t, sm.min(1), sm.max(1), color=plotting.COLORS[i], alpha=0.2, lw=0)
        cov = np.ones(len(run[name])) if name == "dense" else run[name + "_coverage"]
        axes[1].plot(cov, run[name], "o", color=plotting.COLORS[i], ms=4, label=lab)
    plotting.label(axes[0], "training step", "training loss (nats, 10-step mean)", "Trained from scratch")
    axes[1].plot([0, 1], [0, 1], color="0.6", ls=":", lw=1, label="accuracy = coverage")
    plotting.label(axes[1], "pair coverage of the pattern (fraction of queries)", "query accuracy",
                   "Coverage and accuracy (per seed)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    return plotting.finish(fig, legend=False)
