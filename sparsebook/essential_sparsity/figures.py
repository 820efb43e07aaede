"""Essential sparsity, figures and tables (the chapter's cells call these), house style of
:mod:`sparsebook.plotting`."""
from __future__ import annotations

import numpy as np

from sparsebook.essential_sparsity.kernels import cubic_sparsity_schedule, essential_sparsity_point, pruning_window


# ---------------------------------------------------------------------------
# Figures and tables (the chapter's cells call these)
# ---------------------------------------------------------------------------
def knee_table(sparsities, scores, deltas=(0.005, 0.01, 0.02)) -> str:
    """The knee under every definition (and several ``delta``) as rounded text, one line."""
    parts = [f"hinge {essential_sparsity_point(sparsities, scores):.3g}",
             f"kneedle {essential_sparsity_point(sparsities, scores, method='kneedle'):.3g}"]
    parts += [f"delta={d:g} {essential_sparsity_point(sparsities, scores, method='delta', delta=d):.3g}" for d in deltas]
    return ", ".join(parts)


def plot_oneshot(r: dict, cnn: dict | None = None):
    """Left: accuracy against one-shot sparsity (global, layer-wise, CNN) with the knees; right: N:M patterns."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    s = r["sparsities"]
    a.plot(s, r["acc_global"], "o-", label="MLP, global pool")
    a.plot(s, r["acc_layer"], "s--", label="MLP, layer-wise")
    if cnn is not None:
        a.plot(cnn["sparsities"], cnn["acc"], "^-", label="CNN, global pool")
    for (meth, k), ls in zip(r["knees"].items(), (":", "-.", "--")):
        a.axvline(k, color="0.4", ls=ls, lw=1, label=f"MLP knee ({meth})")
    plotting.label(a, "sparsity (fraction of weights removed)", "test accuracy", "one-shot magnitude pruning")
    x = [row[2] for row in r["nm"]]
    b.plot(x, [row[3] for row in r["nm"]], "o", label="N:M")
    groups: dict = {}
    for n, m, sp, acc, _ in r["nm"]:
        groups.setdefault(round(sp, 6), []).append((f"{n}:{m}", acc))
    for sp, items in groups.items():
        b.annotate(", ".join(name for name, _ in items), (sp, min(a for _, a in items)), textcoords="offset points",
                   xytext=(3, -12), fontsize=7)
    b.plot(s, r["acc_layer"], "--", color="0.5", label="unstructured, layer-wise")
    b.set_xlim(0.4, 1.0)
    plotting.label(b, "sparsity (fraction of weights removed)", "test accuracy", "N:M patterns, one shot")
    return plotting.finish(fig)


def plot_objectives(obj: dict, amount: dict):
    """Left: probe accuracy (relative to dense) for both objectives; right: accuracy per data fraction."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    s = obj["sparsities"]
    for name, lab in (("supervised", "supervised"), ("masked", "masked reconstruction")):
        p = obj[name]["probe"]
        a.plot(s, p / p[0], "o-", label=lab)
    a.set_xlim(0.5, 1.0)
    plotting.label(a, "sparsity of the encoder", "probe accuracy / dense probe accuracy", "objective")
    for row in amount["rows"]:
        b.plot(amount["sparsities"], row["acc"], "o-", label=f"{row['fraction']:.0%} of the data")
    b.set_xlim(0.5, 1.0)
    plotting.label(b, "sparsity (fraction of weights removed)", "test accuracy", "amount of training data")
    return plotting.finish(fig)


def plot_emergence(r: dict):
    """Dense accuracy and essential sparsity of the checkpoints against training step."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    a.plot(r["steps"], r["dense_acc"], "o-")
    plotting.label(a, "training step", "dense test accuracy", "learning")
    sc = r["scored"]
    b.plot(r["steps"][sc], r["essential"][sc], "o-", label="scored checkpoints")
    b.plot(r["steps"][~sc], r["essential"][~sc], "x", color="0.6", label="dense accuracy < threshold")
    plotting.label(b, "training step", "essential sparsity (1-point knee)", "sparsification")
    return plotting.finish(fig)


def plot_sparse_training(rand: dict, grad: dict):
    """Left: random pruning per width; right: gradual vs one-shot vs small-dense per sparsity."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    w = [row["width"] for row in rand["rows"]]
    for key, mk in (("dense", "o-"), ("uniform", "s--"), ("erk", "^-")):
        a.plot(w, [row[key] for row in rand["rows"]], mk, label=key if key == "dense" else f"random, {key}")
    a.set_xscale("log", base=2)
    plotting.label(a, "hidden width (units)", "test accuracy", f"random masks, density {rand['density']:g}")
    s = [row["sparsity"] for row in grad["rows"]]
    for key, mk, lab in (("oneshot_noretrain", "x:", "one shot, no retraining"), ("oneshot", "s--", "one shot + retraining"),
                         ("gradual", "o-", "gradual (cubic)"), ("small_dense", "^-", "small dense, equal nonzeros")):
        b.plot(s, [row[key] for row in grad["rows"]], mk, label=lab)
    plotting.label(b, "sparsity (fraction of weights removed)", "test accuracy", "pruning schedule")
    return plotting.finish(fig)


def plot_journey(j: dict, config: "JourneyConfig"):
    """Left: the cubic schedules of each window; right: final test loss per window."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    t = np.arange(config.steps)
    for row in j["rows"]:
        t0, n = pruning_window(config.steps, row["start"], row["end"], config.dt)
        dt = min(config.dt, max(1, (config.steps - 1 - t0) // n))
        a.plot(t, [cubic_sparsity_schedule(int(k), 0.0, config.sparsity, t0, n, dt) for k in t],
               label=f"{row['start']:.0%} to {row['end']:.0%}")
    plotting.label(a, "training step", "target sparsity", "pruning windows")
    labels = [f"{row['start']:.0%}-{row['end']:.0%}" for row in j["rows"]]
    b.bar(labels, [row["loss"] for row in j["rows"]], color="#0072B2")
    plotting.label(b, "pruning window (fraction of training)", "final test loss (nats)", "final loss")
    return plotting.finish(fig)


def plot_transformer(r: dict, mlp: dict | None = None):
    """Left: held-out token accuracy against one-shot sparsity (Transformer, and the MLP's global curve if given),
    with the Transformer's knees; right: held-out cross-entropy (nats) against sparsity."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2)
    s = r["sparsities"]
    a.plot(s, r["acc"], "o-", label="Transformer, attention + FFN pool")
    if mlp is not None:
        a.plot(mlp["sparsities"], mlp["acc_global"], "s--", color="0.5", label="MLP on digits (above)")
    for (meth, k), ls in zip(r["knees"].items(), (":", "-.", "--")):
        a.axvline(k, color="0.4", ls=ls, lw=1, label=f"knee ({meth})")
    plotting.label(a, "sparsity (fraction of the pruning pool removed)", "held-out accuracy",
                   "sorting Transformer, one shot")
    b.plot(s, r["loss"], "o-")
    plotting.label(b, "sparsity (fraction of attention + FFN weights removed)", "held-out cross-entropy (nats/token)",
                   "held-out loss")
    return plotting.finish(fig)
