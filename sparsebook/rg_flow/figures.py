"""Figures and tables of the RG-flow chapter (house style from :mod:`sparsebook.plotting`)."""
from __future__ import annotations

import numpy as np

from sparsebook.rg_flow.kernels import mutual_information_coefficients


# ---------------------------------------------------------------------------
# Figures and tables (house style)
# ---------------------------------------------------------------------------


def plot_kernel_flows(res: dict):
    """K^(l) against l for each class at criticality (solid) and at 0.9/1.1 × the critical C_W (dashed)."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    l = res["l"]
    colors = plotting.COLORS
    for i, name in enumerate(("relu", "linear")):
        for f, style in zip(sorted(res["flows"][name]), (":", "-", "--")):
            ax1.loglog(l, res["flows"][name][f], style, color=colors[i],
                       label=f"{name}, C_W = {f:g}·critical" if f != 1.0 else f"{name}, critical")
    plotting.label(ax1, "layer l", "kernel K^(l)", "scale-invariant class")
    for i, name in enumerate(res["k0"]):
        a1 = res["k0"][name]["a1"]
        ax2.semilogx(l, -a1 * l * res["flows"][name][1.0], "-", color=colors[i + 2],
                     label=f"{name} (a₁ = {a1:.3g}), critical")
    ax2.axhline(1.0, color="grey", lw=0.8, label="1: K^(l) = 1/(−a₁ l)")
    ax2.set_ylim(0.0, 1.6)
    plotting.label(ax2, "layer l", "(−a₁)·l·K^(l)", "K* = 0 class at criticality (C_b = 0)")
    return plotting.finish(fig)


def plot_half_stable(res: dict):
    """F(K) − K around the SWISH and GELU critical points: tangent to zero, one-sided stability."""
    from sparsebook import plotting

    fig, axes = plotting.figure(ncols=len(res["half_stable"]))
    for ax, (name, h) in zip(axes, res["half_stable"].items()):
        cp = h["point"]
        ax.plot(h["k_grid"] / cp.k_star, h["map_minus_identity"], color=plotting.COLORS[0])
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(1.0, color="grey", lw=0.8, ls="--")
        if h.get("second_fixed_point"):
            ax.axvline(h["second_fixed_point"], color=plotting.COLORS[1], lw=0.8, ls=":")
        inset = ax.inset_axes([0.55, 0.55, 0.42, 0.4])
        sel = np.abs(h["k_grid"] / cp.k_star - 1) <= 0.021
        inset.plot(h["k_grid"][sel] / cp.k_star, h["map_minus_identity"][sel], color=plotting.COLORS[0])
        inset.axhline(0, color="grey", lw=0.6)
        inset.axvline(1.0, color="grey", lw=0.6, ls="--")
        inset.tick_params(labelsize=6)
        inset.set_title("±2% of K*", fontsize=7)
        plotting.label(ax, "kernel in units of the critical kernel, K/K*", "F(K) − K, one layer's change",
                       f"{name}: C_b = {cp.c_b:.4g}, C_W = {cp.c_w:.5g}, K* = {cp.k_star:.4g}")
    return plotting.finish(fig, legend=False)


def plot_phase_diagram(res: dict):
    """log χ⊥ and log χ∥ at the layer-L kernel over the (C_b, C_W) plane, with the χ = 1 contours."""
    from sparsebook import plotting

    fig, axes = plotting.figure(ncols=2)
    for ax, key, title in zip(axes, ("chi_perp", "chi_par"), ("χ⊥ at K^(L)", "χ∥ at K^(L)")):
        from matplotlib.colors import TwoSlopeNorm

        z = np.log(np.maximum(res[key], 1e-300))
        lo, hi = float(np.min(z)), float(np.max(z))
        norm = TwoSlopeNorm(vcenter=0.0, vmin=min(lo, -1e-3), vmax=max(hi, 1e-3))
        im = ax.pcolormesh(res["c_w"], res["c_b"], z, cmap="RdBu_r", norm=norm, shading="auto")
        if lo < 0 < hi:
            ax.contour(res["c_w"], res["c_b"], z, levels=[0.0], colors="k", linewidths=1)
        ax.plot([1.0], [0.0], "o", color="k", ms=6, clip_on=False, label="critical: C_W = 1, C_b = 0")
        fig.colorbar(im, ax=ax, label=f"log {title.split(' ')[0]}")
        plotting.label(ax, "weight variance C_W", "bias variance C_b", f"tanh: {title}")
    return plotting.finish(fig)


#: Panels of :func:`plot_susceptibilities`: one universality class each.
_CLASS_PANELS = (("scale-invariant", ("relu", "linear")), ("K*=0", ("tanh", "erf", "sin")),
                 ("half-stable", ("swish", "gelu")), ("none", ("sigmoid", "softplus")))


def plot_susceptibilities(curves: dict):
    """χ∥(K) (dashed) and χ⊥(K) (solid) against the kernel K, one panel per universality class, at the
    critical C_W (for sigmoid and softplus, which have none, at the C_W that makes χ⊥(1) = 1); the
    critical kernel K* (dotted) and the criticality condition χ = 1 (grey).  ``curves``: activation ->
    :func:`~sparsebook.rg_flow.kernels.susceptibility_curves`."""
    from sparsebook import plotting

    fig, axes = plotting.figure(ncols=2, nrows=2)
    titles = {"scale-invariant": "scale-invariant: χ∥ = χ⊥ = 1 at every K",
              "K*=0": "K* = 0 class: χ∥, χ⊥ → 1 as K → 0",
              "half-stable": "SWISH, GELU: χ∥ = χ⊥ = 1 only at K*",
              "none": "no critical point: χ∥ ≠ χ⊥ at every K"}
    for ax, (cls, names) in zip(axes, _CLASS_PANELS):
        ax.axhline(1.0, color="grey", lw=0.8, label="χ = 1 (criticality)")
        for i, name in enumerate(n for n in names if n in curves):
            c = curves[name]
            col = plotting.COLORS[i]
            cw = f"C_W = {c['c_w']:.4g}" + ("" if c["k_star"] is not None else ", χ⊥(1) = 1")
            lw = 2.6 - 0.8 * i          # curves that coincide (ReLU and linear) stay visible
            ax.semilogx(c["k"], c["chi_perp"], "-", color=col, lw=lw, label=f"{name}: χ⊥ ({cw})")
            ax.semilogx(c["k"], c["chi_par"], "--", color=col, lw=lw, label=f"{name}: χ∥")
            if c["k_star"] is not None and np.isfinite(c["k_star"]) and c["k_star"] > 0:
                ax.axvline(c["k_star"], color=col, lw=0.8, ls=":")
                ax.plot([c["k_star"]], [1.0], "o", color=col, ms=5, label=f"{name}: K* = {c['k_star']:.4g}, χ∥ = χ⊥ = 1")
        ax.set_ylim((0.4, 1.1) if cls == "half-stable" else (0.0, 2.0))
        ax.legend(fontsize=6.5, loc="best")
        plotting.label(ax, "kernel K (variance of a preactivation)", "susceptibility χ", titles[cls])
    return plotting.finish(fig)


def plot_preactivation_distribution(res: dict, ratios=(0.0, 0.125, 0.25, 0.5)):
    """Left: the density of one preactivation z/√K̂ of real ReLU networks at criticality (the smallest
    width of ``res["collapse"]``, all kept neurons pooled over networks) at several (l−1)/n, on a log
    axis, with the standard Gaussian (the infinite-width law of the same variance).  Right: the
    one-neuron excess kurtosis against (l−1)/n for every width, with the leading order 3·5(l−1)/n and
    the exact 3[(1 + 5/n)^(l−1) − 1].  ``res`` from :func:`~sparsebook.rg_flow.experiments.run_fourth_cumulant`."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    n = min(res["collapse"])
    e = res["collapse"][n]
    z = e["preactivations"]
    edges = np.linspace(-8.0, 8.0, 81)
    mid = 0.5 * (edges[1:] + edges[:-1])
    for i, r in enumerate(ratios):
        j = int(round(r * n))
        if j >= z.shape[1]:
            continue
        u = z[:, j].astype(float).ravel()
        u = u / np.sqrt(np.mean(u * u))
        dens, _ = np.histogram(u, bins=edges, density=True)
        dens = np.where(dens > 0, dens, np.nan)
        ax1.semilogy(mid, dens, drawstyle="steps-mid", color=plotting.COLORS[i], lw=1.2,
                     label=f"(l − 1)/n = {r:g} (layer {j + 1})")
    xs = np.linspace(-8.0, 8.0, 400)
    ax1.semilogy(xs, np.exp(-xs * xs / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="Gaussian of the same variance")
    ax1.set_ylim(1e-8, 3.0)
    ax1.legend(fontsize=7, loc="lower center")
    plotting.label(ax1, "preactivation z / √K̂ (standard units)", "probability density",
                   f"ReLU, n = {n}, {z.shape[0]} networks × {z.shape[2]} neurons")
    for i, (w, run) in enumerate(res["collapse"].items()):
        s = slice(1, None)
        ax2.errorbar(run["x"][s], run["est"]["kurt"][s], yerr=2 * run["est"]["kurt_se"][s], fmt="o", ms=3,
                     color=plotting.COLORS[i], label=f"n = {w}: real networks (±2 s.e.)")
        ax2.plot(run["x"][s], 3 * run["exact"][s], ":", color=plotting.COLORS[i], lw=1)
    xs = np.linspace(min(run["x"][1] for run in res["collapse"].values()),
                     max(run["x"][-1] for run in res["collapse"].values()), 50)
    ax2.plot(xs, 15 * xs, "k-", lw=1, label="leading order 3·5(l − 1)/n = 3V/(nK²)")
    ax2.plot([], [], "k:", lw=1, label="exact 3[(1 + 5/n)^(l−1) − 1]")
    ax2.set_yscale("log")
    plotting.label(ax2, "(l − 1)/n", "excess kurtosis of one preactivation", "non-Gaussianity grows with l/n")
    return plotting.finish(fig)


def plot_vertex_and_ntk(vertex: dict, ntk: dict):
    """V^(l)/(l (K^(l))²) against l (→ 5, 2, 2/3) and the NTK Θ^(l) at and off criticality."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    for i, (name, (l, ratio, target)) in enumerate(vertex.items()):
        ax1.semilogx(l, ratio, color=plotting.COLORS[i], label=f"{name} (→ {target:.3g})")
        ax1.axhline(target, color=plotting.COLORS[i], lw=0.8, ls=":")
    plotting.label(ax1, "layer l", "V^(l) / (l·K^(l)²)", "four-point vertex at criticality")
    for i, (label, (l, th)) in enumerate(ntk.items()):
        ax2.loglog(l, th, color=plotting.COLORS[i], label=label)
    plotting.label(ax2, "layer l", "NTK Θ^(l) (λ_b = 0, λ_W = 1)", "neural tangent kernel")
    return plotting.finish(fig)


def plot_angles(angles: dict):
    """The angle between two inputs against depth, at criticality."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for i, (name, (l, theta)) in enumerate(angles.items()):
        ax.loglog(l, theta, color=plotting.COLORS[i], label=name)
    l = next(iter(angles.values()))[0]
    ax.loglog(l, 3 * np.pi / l, color="grey", lw=0.8, ls="--", label="3π/l")
    plotting.label(ax, "layer l", "angle θ^(l) between the inputs (rad)", "two inputs at 60° at l = 1, criticality")
    return plotting.finish(fig)


def plot_fourth_cumulant(res: dict):
    """Measured Cov(z_i², z_j²)/K² against l/n with the leading order (and the exact result where known);
    right: ReLU at large l/n, where the leading order fails."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    n = res["config"].width
    for i, (name, e) in enumerate(res["per_activation"].items()):
        c = plotting.COLORS[i]
        x = (e["l"] - 1) / n            # the variable of the claims and of the right panel
        ax1.errorbar(x, e["est"]["eps"], yerr=2 * e["est"]["eps_se"], fmt="o", color=c, ms=3,
                     label=f"{name}: real networks (±2 s.e.)")
        ax1.plot(x, e["theory"], "-", color=c, lw=1, label=f"{name}: leading order V/(nK²)")
        if "exact" in e:
            ax1.plot(x, e["exact"], ":", color=c, lw=1)
    ax1.plot([], [], "k:", lw=1, label="exact (1 + ν/n)^(l−1) − 1")
    plotting.label(ax1, "depth-to-width ratio (l − 1)/n", "Cov(z_i², z_j²) / K²", f"width n = {n}, at criticality")
    for i, (n, e) in enumerate(res["collapse"].items()):
        c = plotting.COLORS[i]
        s = slice(1, None)  # layer 1 is exactly Gaussian (0), which a log axis cannot show
        ax2.errorbar(e["x"][s], e["est"]["eps"][s], yerr=2 * e["est"]["eps_se"][s], fmt="o", color=c, ms=3,
                     label=f"n = {n}: real networks (±2 s.e.)")
        ax2.plot(e["x"][s], e["exact"][s], ":", color=c, lw=1)
    xs = np.linspace(1e-3, max(e["x"][-1] for e in res["collapse"].values()), 50)
    ax2.plot(xs, 5 * xs, "k-", lw=1, label="leading order 5(l−1)/n")
    ax2.plot(xs, np.expm1(5 * xs), "k--", lw=1, label="n → ∞ at fixed l/n: e^{5(l−1)/n} − 1")
    ax2.plot([], [], "k:", lw=1, label="exact at each n")
    ax2.set_yscale("log")
    plotting.label(ax2, "(l − 1)/n", "Cov(z_i², z_j²) / K²", "ReLU at criticality: several widths")
    return plotting.finish(fig)


def plot_gradients(res: dict):
    """Mean ‖∂z_1^(L)/∂z^(l)‖² against l on real networks, with Π χ⊥ (lines)."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for i, (c_w, run) in enumerate(res["runs"].items()):
        c = plotting.COLORS[i]
        ax.errorbar(res["l"], run["grad2"], yerr=2 * run["grad2_se"], fmt="o", ms=3, color=c,
                    label=f"C_W = {c_w:g} (measured)")
        ax.semilogy(res["l"], run["grad2_theory"], "-", lw=1, color=c)
    ax.plot([], [], "k-", lw=1, label="Π χ⊥ (infinite width)")
    cfg = res["config"]
    plotting.label(ax, "layer l", "‖∂z₁^(L)/∂z^(l)‖² (mean over networks)",
                   f"{cfg.activation}, n = {cfg.width}, L = {cfg.depth}, {cfg.n_networks} networks")
    return plotting.finish(fig)


def plot_aspect_ratio(res: dict):
    """Information between two outputs against the normalized vertex ``x``: the exact lognormal scaling
    limit, the series truncated at ``x²`` and ``x³`` (whose maximum is ``x*``), and real networks."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    x = res["x_curve"]
    c2, c3 = mutual_information_coefficients(1, 1)
    ax1.plot(x, res["exact"], "k-", lw=1.2, label="exact, lognormal scale (scaling limit)")
    ax1.plot(x, c2 * x ** 2, "k:", lw=1, label="series to x²")
    ax1.plot(x, c2 * x ** 2 + c3 * x ** 3, "k--", lw=1, label="series to x³")
    ax1.axvline(res["x_star"], color="0.6", lw=0.8)
    for i, (name, e) in enumerate(res["real"].items()):
        ax1.errorbar(e["x"], e["info"], yerr=2 * e["info_se"], fmt="o", ms=3, color=plotting.COLORS[i],
                     label=f"{name}, n = {e['width']}: real networks (±2 s.e.)")
    ax1.set_ylim(-0.1 * res["exact"][-1], 1.1 * res["exact"][-1])
    plotting.label(ax1, "normalized four-point vertex x = Var(s)/E[s]²", "I(z₁; z₂) (nats)",
                   f"two outputs; grey line: x* = {res['x_star']:.3f}")
    for i, (name, e) in enumerate(res["real"].items()):
        ax2.errorbar(e["r"] / e["r_star"], e["info"], yerr=2 * e["info_se"], fmt="o-", ms=3, lw=1,
                     color=plotting.COLORS[i], label=f"{name}, n = {e['width']} (r* = {e['r_star']:.3f})")
    ax2.axvline(1.0, color="0.6", lw=0.8)
    plotting.label(ax2, "depth-to-width ratio in units of the book's optimum, (l/n) / r*",
                   "I(z₁; z₂) (nats)", "real networks at criticality; grey line: r*")
    return plotting.finish(fig)


def cumulant_table(res: dict):
    """The fitted leading coefficients and the exact ones (a :class:`~sparsebook.stats.Results`)."""
    from sparsebook.stats import Results, exact

    rows = {}
    for name, e in res["per_activation"].items():
        rows[f"{name}: leading coefficient a (1 at leading order)"] = e["coefficient"]
        if "exact_coefficient" in e:
            rows[f"{name}: exact coefficient n·ln(1+ν/n)/ν"] = exact(round(e["exact_coefficient"], 6))
            rows[f"{name}: measured / exact cumulant, layers 2..L"] = e["exact_ratio"]
    cfg = res["config"]
    return Results(rows, title=f"{cfg.n_networks} networks per activation, width {cfg.width}, depth {cfg.depth}")


def plot_polycom(res: dict):
    """Training loss against step for PolyReLU, ReLU and GELU: mean over seeds, band = min..max over seeds."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for i, (name, loss) in enumerate(res["curves"].items()):
        steps = np.arange(1, loss.shape[0] + 1)
        ax.plot(steps, loss.mean(1), color=plotting.COLORS[i], lw=1.2, label=f"{name} (mean of {loss.shape[1]} seeds)")
        ax.fill_between(steps, loss.min(1), loss.max(1), color=plotting.COLORS[i], alpha=0.2, lw=0)
    ax.set_yscale("log")
    cfg = res["config"]
    plotting.label(ax, "training step", "minibatch cross-entropy (nats)",
                   f"digits, MLP {'-'.join(map(str, cfg.sizes))}, Adam {cfg.lr:g}; band: seed range")
    return plotting.finish(fig)


def plot_skan(res: dict):
    """Left: test RMSE per task of the S-KAN, the B-spline KAN and the matched MLP (dots: seeds, bar:
    geometric mean).  Right: the share of S-KAN nodes that selected each candidate space (all layers
    and seeds)."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    tasks = list(res["tasks"])
    xs = np.arange(len(tasks))
    labels = {"skan": "S-KAN", "kan": "KAN (B-spline)", "mlp": "MLP"}
    for j, m in enumerate(labels):
        for i, t in enumerate(tasks):
            r = res["tasks"][t][m]["rmse"]
            xo = xs[i] + (j - 1) * 0.25
            ax1.scatter(np.full(len(r), xo), r, s=10, color=plotting.COLORS[j], alpha=0.7,
                        label=f"{labels[m]} ({len(r)} seeds)" if i == 0 else None)
            ax1.hlines(np.exp(np.mean(np.log(r))), xo - 0.1, xo + 0.1, color=plotting.COLORS[j], lw=2)
    ax1.set_yscale("log")
    ax1.set_xticks(xs)
    ax1.set_xticklabels(tasks)
    plotting.label(ax1, "target function", "test RMSE", "equal parameter counts (MLP ≥ KAN)")
    sk = [res["tasks"][t]["skan"] for t in tasks]
    cands = sk[0]["candidates"]
    share = np.array([np.concatenate([m.reshape(-1, m.shape[-1]) for m in r["masks"]]).mean(0) for r in sk])
    bottom = np.zeros(len(tasks))
    for c in range(len(cands)):
        ax2.bar(xs, share[:, c], bottom=bottom, color=plotting.COLORS[(3, 4, 5, 7)[c % 4]], label=cands[c])
        bottom += share[:, c]
    ax2.set_ylim(0, 1.3)
    ax2.legend(ncol=len(cands), loc="upper center", fontsize="small", columnspacing=0.8, handlelength=1.2)
    ax2.set_xticks(xs)
    ax2.set_xticklabels(tasks)
    plotting.label(ax2, "target function", "share of S-KAN nodes", "selected activation space")
    return plotting.finish(fig)


def plot_skan_pruning(res: dict):
    """S-KAN's pruning stage.  Left: the share of hidden nodes the KAN node rule keeps, per task (dots:
    seeds, bar: mean).  Right: test RMSE per task of the selected S-KAN before pruning, of the
    unpruned control trained as many extra steps, and of the pruned network (one line per seed)."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    tasks = list(res["tasks"])
    xs = np.arange(len(tasks))
    for i, t in enumerate(tasks):
        kept = res["tasks"][t]["skan"]["nodes_kept"]
        ax1.scatter(np.full(len(kept), xs[i]) + np.linspace(-0.12, 0.12, len(kept)), kept, s=12,
                    color=plotting.COLORS[0], label=f"seeds ({len(kept)})" if i == 0 else None)
        ax1.hlines(kept.mean(), xs[i] - 0.2, xs[i] + 0.2, color=plotting.COLORS[0], lw=2,
                   label="mean" if i == 0 else None)
    ax1.set_ylim(-0.05, 1.1)
    ax1.set_xticks(xs)
    ax1.set_xticklabels(tasks)
    ax1.legend(fontsize="small", loc="lower right")
    cfg = res["config"]
    plotting.label(ax1, "target function", "share of hidden nodes kept",
                   f"KAN node rule, θ = {cfg.prune_threshold:g}, after sparsification λ = {cfg.prune_lambda:g}")
    stages = (("rmse", "selected (before pruning)"), ("rmse_unpruned", "unpruned, same extra steps"),
              ("rmse_pruned", "pruned"))
    off = np.array([-0.25, 0.0, 0.25])
    for i, t in enumerate(tasks):
        sk = res["tasks"][t]["skan"]
        vals = np.array([sk[key] for key, _ in stages])              # [3, K]
        for k in range(vals.shape[1]):
            ax2.plot(xs[i] + off, vals[:, k], color="0.7", lw=0.7, zorder=1)
        for j, (_, lab) in enumerate(stages):
            ax2.scatter(np.full(vals.shape[1], xs[i] + off[j]), vals[j], s=12, color=plotting.COLORS[(0, 2, 1)[j]],
                        zorder=2, label=lab if i == 0 else None)
    ax2.set_yscale("log")
    ax2.set_xticks(xs)
    ax2.set_xticklabels(tasks)
    ax2.legend(fontsize="small")
    plotting.label(ax2, "target function", "test RMSE", "pruning stage (lines: one seed)")
    return plotting.finish(fig)


# ---------------------------------------------------------------------------
# Explorable figure and try-your-own cell
# ---------------------------------------------------------------------------

#: Activations of the explorable kernel-flow figure (one of each universality class) and the
#: multiples of the critical C_W its slider offers.
EXPLORE_ACTIVATIONS = ("relu", "tanh", "sin", "gelu", "swish")
EXPLORE_CW_FACTORS = (0.9, 0.95, 0.99, 1.0, 1.01, 1.05, 1.1)


def _layers(depth: int, n: int = 40) -> np.ndarray:
    return np.unique(np.round(np.logspace(0, np.log10(depth), n)).astype(int))


def explore_kernel_flow(res: dict):
    """Explorable figure: K^(l) against l (exact recursion K^(l+1) = C_b + C_W⟨σ²⟩_K, Gauss-Hermite),
    with a selector for the activation and a slider for C_W in units of its critical value (C_b at
    its critical value).  ``res`` from :func:`run_kernel_flows` (its critical points are reused)."""
    from sparsebook.explore import explore, trace
    from sparsebook.rg_flow.kernels import critical_point, kernel_flow

    depth = int(res["depth"])
    k1 = float(res.get("k1", 1.0))
    layers = _layers(depth)
    points = {name: (res["critical"][name] if name in res.get("critical", {}) else
                     res["half_stable"][name]["point"] if name in res.get("half_stable", {}) else critical_point(name))
              for name in EXPLORE_ACTIVATIONS}

    critical = {name: kernel_flow(name, cp.c_b, cp.c_w, k1, depth)[layers - 1] for name, cp in points.items()}

    def fn(activation, cw_factor):
        cp = points[activation]
        out = [trace("critical C_W", layers, critical[activation], dash="dash", color="#777777")]
        if cw_factor != 1.0:
            flow = kernel_flow(activation, cp.c_b, cw_factor * cp.c_w, k1, depth)[layers - 1]
            out.append(trace(f"C_W = {cw_factor:g} × critical", layers, flow, color="#0072B2"))
        return out

    return explore(fn, {"activation": list(EXPLORE_ACTIVATIONS), "cw_factor": list(EXPLORE_CW_FACTORS)},
                   labels={"activation": "activation", "cw_factor": "C_W / critical C_W"},
                   default={"activation": "tanh", "cw_factor": 1.1},
                   title=f"Kernel flow K^(l), K^(1) = {k1:g}, C_b at its critical value (exact recursion)",
                   xlabel="layer l", ylabel="kernel K^(l)", log_x=True, log_y=True, y_range=[1e-5, 1e5], digits=6)


def plot_try_kernel_flow(activation: str = "tanh", c_w: float = 1.0, c_b: float = 0.0, k1: float = 1.0,
                         depth: int = 1000):
    """Try-your-own plot: K^(l) against l for any activation, C_W, C_b, K^(1) and depth (the
    chapter's exact recursion), and the parallel susceptibility χ∥ at the last layer.  Returns the figure."""
    from sparsebook import plotting
    from sparsebook.rg_flow.kernels import chi_parallel, kernel_flow

    flow = kernel_flow(activation, c_b, c_w, k1, depth)
    l = np.arange(1, depth + 1)
    fig, (ax,) = plotting.figure(ncols=1)
    ok = np.isfinite(flow) & (flow > 0)
    ax.loglog(l[ok], flow[ok], "-", label=f"{activation}, C_W = {c_w:g}, C_b = {c_b:g}")
    plotting.label(ax, "layer l", "kernel K^(l)", f"K^(1) = {k1:g}")
    last = flow[-1]
    chi = float(chi_parallel(activation, c_w, np.array([last]))[0]) if np.isfinite(last) and last > 0 else float("nan")
    print(f"K^({depth}) = {last:.4g}; χ∥ there = {chi:.4g} (1 at a critical fixed point)")
    return plotting.finish(fig)


def try_kernel_flow():
    """Try-your-own cell (JupyterLab): sliders over :func:`plot_try_kernel_flow`."""
    from sparsebook.explore import interact

    return interact(plot_try_kernel_flow,
                    {"activation": ["relu", "linear", "tanh", "erf", "sin", "gelu", "swish", "sigmoid", "softplus"],
                     "c_w": [round(v, 2) for v in np.arange(0.5, 2.51, 0.05)],
                     "c_b": [0.0, 0.05, 0.1, 0.17, 0.2, 0.3, 0.5, 0.56, 1.0],
                     "k1": [0.1, 0.3, 1.0, 3.0, 10.0], "depth": [10, 30, 100, 300, 1000]},
                    default={"activation": "tanh", "c_w": 1.0, "c_b": 0.0, "k1": 1.0, "depth": 1000})
