"""Sparse training, figures: one function per figure, house style, means with 95% intervals over seeds."""
from __future__ import annotations

import numpy as np

from sparsebook import plotting
from sparsebook.stats import from_seeds


def _interval(values) -> tuple[float, float, float]:
    e = from_seeds(np.asarray(values, float))
    return e.value, e.lo, e.hi


def _curve(ax, x, per_seed, label, color=None, style="-o"):
    """``per_seed [K, J]``: mean over seeds at each x, with its 95% band."""
    stats = np.array([_interval(per_seed[:, j]) for j in range(per_seed.shape[1])])
    line, = ax.plot(x, stats[:, 0], style, label=label, color=color)
    ax.fill_between(x, stats[:, 1], stats[:, 2], color=line.get_color(), alpha=0.2, lw=0)


def _bars(ax, groups: dict, ylabel: str, title: str = "", colors=None):
    """One bar per named group: mean with its 95% interval, the seeds as dots."""
    names = list(groups)
    for i, name in enumerate(names):
        v = np.asarray(groups[name], float)
        m, lo, hi = _interval(v)
        c = (colors or plotting.COLORS)[i % len(colors or plotting.COLORS)]
        ax.bar(i, m, color=c, alpha=0.6)
        ax.errorbar(i, m, yerr=[[m - lo], [hi - m]], color="black", capsize=3, lw=1)
        ax.plot(np.full(v.size, i) + np.linspace(-0.15, 0.15, v.size), v, "k.", ms=3)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    plotting.label(ax, "method", ylabel, title)


def plot_dsnot(r: dict):
    """Test loss against sparsity for one-shot magnitude and Wanda masks, before and after DSnoT."""
    fig, axes = plotting.figure(2)
    sp = [row["sparsity"] for row in r["rows"]]
    for ax, what, unit in ((axes[0], "loss", "test cross-entropy (nats)"), (axes[1], "acc", "test accuracy")):
        for j, (key, lab) in enumerate((("magnitude", "magnitude"), ("magnitude_dsnot", "magnitude + DSnoT"),
                                        ("wanda", "Wanda"), ("wanda_dsnot", "Wanda + DSnoT"))):
            y = np.stack([row[f"{key}_{what}"] for row in r["rows"]], 1)
            _curve(ax, sp, y, lab, plotting.COLORS[j], "-o" if "dsnot" not in key else "--s")
        ax.axhline(np.mean(r[f"dense_{what}"]), color="grey", lw=1, ls=":", label="dense")
        plotting.label(ax, "sparsity of the hidden layers", unit)
    axes[0].set_yscale("log")
    return plotting.finish(fig)


def plot_finetune(pst: dict, sara: dict):
    """Mirrored-digit adaptation: PST against full sparse fine-tuning; SaRA against LoRA (new task and old task)."""
    fig, axes = plotting.figure(3)
    _bars(axes[0], {"pretrained, dense": pst["pretrained_acc"], "magnitude, no tuning": pst["magnitude_acc"],
                    "full sparse FT": pst["full_acc"], "PST": pst["pst_acc"]},
          "mirrored-digit test accuracy", f"sparse fine-tuning at s = {pst['sparsity']:g}")
    _bars(axes[1], {"LoRA": sara["lora_mirror_acc"], "SaRA": sara["sara_mirror_acc"]},
          "mirrored-digit test accuracy", "new task (equal trainable parameters)")
    _bars(axes[2], {"before tuning": sara["dense_acc"], "LoRA": sara["lora_original_acc"], "SaRA": sara["sara_original_acc"]},
          "original-digit test accuracy", "old task after tuning")
    return plotting.finish(fig, legend=False)


def plot_iso_flop(r: dict):
    """Test accuracy of the dense MLP and of its Sparse Wide versions, all at the same FLOPs."""
    fig, axes = plotting.figure(1)
    ax = axes[0]
    widths = [a["sizes"][1] for a in r["arms"]]
    y = np.stack([a["acc"] for a in r["arms"]], 1)
    _curve(ax, widths, y, "trained, equal FLOPs per example")
    for a, w in zip(r["arms"], widths):
        ax.annotate(a["name"].replace("sparse wide ", ""), (w, np.mean(a["acc"])), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xscale("log", base=2)
    plotting.label(ax, "hidden width (units; sparse beyond the dense width)", "test accuracy",
                   f"{r['arms'][0]['flops']:,} forward FLOPs per example for every model")
    return plotting.finish(fig)


def plot_group_sparsity(r: dict):
    """Accuracy after cutting to k neurons (left) and the share of squared weight outside the kept neurons before the cut (right)."""
    fig, axes = plotting.figure(2)
    _bars(axes[0], {"no penalty": r["none_acc"], "group lasso": r["group_lasso_acc"], "WGSEF": r["wgsef_acc"]},
          f"test accuracy, {r['keep']} of {r['width']} neurons kept", "after the cut, no retraining")
    _bars(axes[1], {"no penalty": r["none_outside"], "group lasso": r["group_lasso_outside"], "WGSEF": r["wgsef_outside"]},
          "share of ‖w‖² in the removed neurons", "before the cut")
    return plotting.finish(fig, legend=False)


def plot_search(search: dict, rs: dict):
    """DARTS against DASS (dense and pruned accuracy of the derived nets); Random Search training curves."""
    fig, axes = plotting.figure(2)
    _bars(axes[0], {"DARTS, dense": search["darts_dense"], "DASS, dense": search["dass_dense"],
                    "DARTS, pruned": search["darts_pruned"], "DASS, pruned": search["dass_pruned"]},
          "test accuracy", "derived architectures")
    curves = rs["curves"]                                   # [steps, K, arms]
    steps = np.arange(1, curves.shape[0] + 1)
    for j, name in enumerate(("random", "Random Search", "importance (SNIP per node)")):
        smooth = np.stack([np.convolve(curves[:, k, j], np.ones(10) / 10, mode="valid") for k in range(curves.shape[1])], 1)
        _curve(axes[1], steps[9:], smooth.T, name, plotting.COLORS[j], "-")
    axes[1].set_yscale("log")
    plotting.label(axes[1], "training step", "training loss (nats, 10-step mean)", "sub-networks of one parent")
    return plotting.finish(fig)


def plot_rnn(r: dict):
    """GRU test accuracy against the sparsity of its input and recurrent matrices, without and with retraining."""
    fig, axes = plotting.figure(1)
    sp = r["sparsities"]
    _curve(axes[0], sp, r["oneshot"], "one-shot magnitude pruning", plotting.COLORS[0])
    _curve(axes[0], sp, r["retrained"], "pruned, then retrained (mask fixed)", plotting.COLORS[1])
    plotting.label(axes[0], "sparsity of W_ih and W_hh", "test accuracy")
    return plotting.finish(fig)


def plot_ssvi_spark(ssvi: dict, spark: dict):
    """Dense VI against SSVI (accuracy, ECE); linear-probe accuracy after SparK-style and dense masked pretraining."""
    fig, axes = plotting.figure(3)
    _bars(axes[0], {"dense VI": ssvi["dense_acc"], "SSVI": ssvi["ssvi_acc"]}, "test accuracy",
          f"BNN, SSVI keeps {ssvi['ssvi_active']:,} of {ssvi['weights']:,} weights")
    _bars(axes[1], {"dense VI": ssvi["dense_ece"], "SSVI": ssvi["ssvi_ece"]}, "expected calibration error", "calibration")
    _bars(axes[2], {"raw pixels": spark["pixels_acc"], "untrained encoder": spark["untrained_acc"],
                    "dense masked pretraining": spark["dense_acc"], "sparse (SparK)": spark["sparse_acc"]},
          "ridge-probe test accuracy", "masked image modelling")
    return plotting.finish(fig, legend=False)
