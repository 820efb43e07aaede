"""Sparse kernels, figures (house style of :mod:`sparsebook.plotting`); one function per figure.

GPU figures draw the stored H200 measurement and say so in their title; CPU figures draw the live
measurement of :func:`~sparsebook.sparse_kernels.experiments.run_conv_sweep`.  Points are means
over interleaved rounds with their 95% interval.
"""
from __future__ import annotations

import numpy as np

from sparsebook import plotting
from sparsebook.sparse_kernels.experiments import conv_speedups, gemv_rows, layer_rows, semi_rows


def _errbar(ax, x, ests, fmt="o-", **kw):
    v = np.array([e.value for e in ests])
    lo = np.array([e.lo for e in ests])
    hi = np.array([e.hi for e in ests])
    return ax.errorbar(x, v, yerr=[v - lo, hi - v], fmt=fmt, capsize=2, **kw)


def _finish_pair(fig, a, b, label: str):
    """Small legends on both panels, the measurement label as the figure's title, the house checks."""
    a.legend(fontsize=6)
    b.legend(fontsize=6)
    fig.suptitle(label, fontsize=7)
    return plotting.finish(fig, legend=False)


def plot_gemv(data, label: str):
    """Left: speedup over cuBLAS against sparsity (kernel, dispatcher, ideal); right: fraction of the ideal."""
    rows = gemv_rows(data)
    fig, (a, b) = plotting.figure(2)
    cases = sorted({(r["shape"]) for r in rows})
    for i, case in enumerate(cases):
        rs = sorted((r for r in rows if r["shape"] == case), key=lambda r: r["sparsity"])
        s = [r["sparsity"] for r in rs]
        c = plotting.COLORS[i % len(plotting.COLORS)]
        _errbar(a, s, [r["speedup"] for r in rs], color=c, label=f"{case} kernel")
        a.plot(s, [r["dispatch"].value for r in rs], "x:", color=c, alpha=0.7)
        _errbar(b, s, [r["fraction"] for r in rs], color=c, label=case)
    ideal_s = np.linspace(0, 0.95, 50)
    a.plot(ideal_s, 1 / (1 - ideal_s), "k--", lw=1, label="ideal 1/(1-s)")
    a.axhline(1, color="0.6", lw=0.8)
    a.set_yscale("log")
    for y, txt in ((0.9, "target at 50%"), (0.6, "target at 90%")):
        b.axhline(y, color="0.5", lw=0.8, ls="--")
        b.text(0.0, y + 0.01, txt, fontsize=7, color="0.4")
    plotting.label(a, "activation sparsity s", "speedup over cuBLAS (x)", "batch-1 GEMV (x: dispatcher)")
    plotting.label(b, "activation sparsity s", "speedup / ideal speedup", "fraction of the ideal")
    return _finish_pair(fig, a, b, label)


def plot_gemv_times(data, label: str):
    """Median GPU time per call (µs) against sparsity: cuBLAS dense, the kernel, and the bytes-at-copy-bandwidth floor."""
    rows = gemv_rows(data)
    bw = data["copy"]["tbps"] * 1e12
    fig, axes = plotting.figure(2)
    for ax, shape in zip(axes, sorted({r["K"] * 10**6 + r["N"] for r in rows})):
        k, n = divmod(shape, 10**6)
        for j, dt in enumerate(("float16", "bfloat16")):
            rs = sorted((r for r in rows if r["K"] == k and r["N"] == n and r["dtype"] == dt), key=lambda r: r["sparsity"])
            s = [r["sparsity"] for r in rs]
            ax.plot(s, [r["sparse_us"] for r in rs], "o-", color=plotting.COLORS[j], label=f"kernel {dt}")
            ax.plot(s, [r["dense_us"] for r in rs], "s:", color=plotting.COLORS[j], alpha=0.6, label=f"cuBLAS {dt}")
        s = np.linspace(0, 0.95, 50)
        ax.plot(s, 1e6 * 2 * k * n * (1 - s) / bw, "k--", lw=1, label="active bytes / copy bandwidth")
        plotting.label(ax, "activation sparsity s", "GPU time per call (µs)", f"K={k} inputs, N={n} outputs")
        ax.legend(fontsize=6)
    fig.suptitle(label, fontsize=7)
    return plotting.finish(fig, legend=False)


def plot_semi(data, label: str):
    """2:4 (cuSPARSELt) speedup over dense against the number of tokens M, eager and in CUDA graphs."""
    rows = [r for r in semi_rows(data) if "graph" in r or "eager" in r]
    fig, axes = plotting.figure(2)
    cases = sorted({(r["K"], r["N"]) for r in rows})
    for ax, (k, n) in zip(axes, cases):
        for j, dt in enumerate(("float16", "bfloat16")):
            rs = sorted((r for r in rows if r["K"] == k and r["N"] == n and r["dtype"] == dt), key=lambda r: r["M"])
            for mode, fmt in (("graph", "o-"), ("eager", "s:")):
                pts = [r for r in rs if mode in r]
                if pts:
                    _errbar(ax, [r["M"] for r in pts], [r[mode] for r in pts], fmt=fmt, color=plotting.COLORS[j],
                            label=f"{dt}, {mode}")
        ax.axhline(1, color="0.6", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        plotting.label(ax, "tokens M (rows of the activation)", "dense time / 2:4 time (x)", f"K={k}, N={n}")
        ax.legend(fontsize=6)
    fig.suptitle(label, fontsize=7)
    return plotting.finish(fig, legend=False)


def plot_layers(data, label: str):
    """Decoder-layer stack: speedup of CATS and CHESS-style layers over dense, with the byte-count ideal."""
    from sparsebook.sparse_kernels.kernels import layer_byte_fraction

    rows = layer_rows(data)
    d, f = data["layer"]["d_model"], data["layer"]["d_ff"]
    fig, (ax,) = plotting.figure(1)
    s = [r["sparsity"] for r in rows]
    for j, k in enumerate(("cats", "chess")):
        pts = [r for r in rows if k in r]
        _errbar(ax, [r["sparsity"] for r in pts], [r[k] for r in pts], color=plotting.COLORS[j], label=f"{k.upper()} layer")
        grid = np.linspace(min(s), max(s), 30)
        ax.plot(grid, [1 / layer_byte_fraction(v, d, f, "dense" if k == "cats" else "chess") for v in grid], "--",
                color=plotting.COLORS[j], lw=1, label=f"{k.upper()} ideal (bytes)")
    ax.axhline(1, color="0.6", lw=0.8)
    plotting.label(ax, "activation sparsity s", "layer speedup over dense (x)", "LLaMA-7B-sized layers, batch 1")
    ax.legend(fontsize=6)
    fig.suptitle(label, fontsize=6)
    return plotting.finish(fig, legend=False)


def plot_conv(res, label: str = ""):
    """CPU: MobileNet v1 1×1 layers, sparse CSR against dense MKL: network speedup and per-layer times at 90%."""
    fig, (a, b) = plotting.figure(2)
    s = res["sparsities"]
    _errbar(a, s, conv_speedups(res), color=plotting.COLORS[0], label="CSR sparse / MKL dense (one thread)")
    a.axhline(1, color="0.6", lw=0.8)
    a.axhspan(1.3, 2.4, color=plotting.COLORS[2], alpha=0.15, label="paper: 1.3-2.4x (ARM, whole nets)")
    plotting.label(a, "weight sparsity", "speedup over dense (x)", "1x1 convolutions of MobileNet v1")
    j = int(np.argmin(np.abs(np.asarray(s) - 0.9)))
    ld = np.asarray(res["layer_dense"])[:, j, :]
    ls = np.asarray(res["layer_sparse"])[:, j, :]
    x = np.arange(ld.shape[1])
    b.bar(x - 0.2, 1e3 * ld.mean(0), 0.4, label="dense (MKL)", color=plotting.COLORS[1])
    b.bar(x + 0.2, 1e3 * ls.mean(0), 0.4, label=f"sparse CSR, s={s[j]:g}", color=plotting.COLORS[0])
    b.set_xticks(x, [f"{ci}>{co} @{side}²" for ci, co, side in res["layers"]], fontsize=5, rotation=90)
    plotting.label(b, "layer (C_in > C_out, pixels)", "time per call (ms)", "per layer at 90% sparsity")
    a.legend(fontsize=6)
    b.legend(fontsize=6)
    if label:
        fig.suptitle(label, fontsize=7)
    return plotting.finish(fig, legend=False)


def plot_accuracy(rows, title: str = ""):
    """Left: test-loss increase over dense against target sparsity; right: relative accuracy drop (CATS vs CHESS, 95% over seeds)."""
    fig, (a, b) = plotting.figure(2)
    s = np.array([r["sparsity"] for r in rows])
    for i, (rule, name) in enumerate((("cats", "CATS (one threshold per tensor)"), ("chess", "CHESS (one per channel)"))):
        c = plotting.COLORS[i]
        _errbar(a, s + (i - 0.5) * 0.01, [r[f"{rule}_dloss"] for r in rows], color=c, label=name)
        _errbar(b, s + (i - 0.5) * 0.01, [r[f"{rule}_rel_drop"] for r in rows], color=c, label=name)
    for ax in (a, b):
        ax.axhline(0, color="0.6", lw=0.8)
    b.axhline(0.02, color="0.5", lw=0.8, ls="--")
    b.text(s[0], 0.021, "CATS: within 1-2% at 50%", fontsize=7, color="0.4")
    plotting.label(a, "target activation sparsity s", "test loss - dense loss (nats/token)", "loss cost, no fine-tuning")
    plotting.label(b, "target activation sparsity s", "1 - accuracy / dense accuracy", "relative accuracy drop")
    a.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=7)
    return plotting.finish(fig, legend=False)


def plot_dispatch(data, label: str):
    """Left: the crossover table (dense / kernel per projection shape); right: layer-stack speedups with and without the dispatcher."""
    from sparsebook.sparse_kernels.experiments import dispatch_rows, dispatch_table

    fig, (a, b) = plotting.figure(2)
    names = {"qo": "q, o (4096 -> 4096)", "up": "up, rows kernel (4096 -> 11008)", "down": "down (11008 -> 4096)"}
    for i, (key, t) in enumerate(sorted(dispatch_table(data).items())):
        c = plotting.COLORS[i % len(plotting.COLORS)]
        a.plot(t["sparsities"], t["speedup"], "o-", color=c, label=f"{names.get(key, key)}; crossover {t['crossover']:g}")
    a.axhline(1, color="0.6", lw=0.8)
    a.set_yscale("log")
    rows = dispatch_rows(data)
    for i, k in enumerate(("cats", "chess", "cats_dispatch", "chess_dispatch")):
        have = [r for r in rows if k in r]
        if have:
            _errbar(b, np.array([r["sparsity"] for r in have]) + (i - 1.5) * 0.006, [r[k] for r in have],
                    fmt="o-" if "dispatch" not in k else "s--", color=plotting.COLORS[i % 2], label=k.replace("_", " + "))
    b.axhline(1, color="0.6", lw=0.8)
    plotting.label(a, "activation sparsity s", "dense time / kernel time (x)", "crossover table (tuning, fp16)")
    plotting.label(b, "activation sparsity s", "speedup over dense layers (x)", "8 LLaMA-7B layers, CUDA graph")
    return _finish_pair(fig, a, b, label)
