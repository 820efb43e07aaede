"""Figures of the inductive_bias chapter, one plotting function per figure (house style from
:mod:`sparsebook.plotting`, imported when a figure is drawn)."""
from __future__ import annotations

import numpy as np

from sparsebook.inductive_bias.kernels import fit_scaled_ncx2


def _plain_log_ticks(axis, subs=(1.0, 2.0, 3.0, 5.0)) -> None:
    """Label a log ``axis`` (``ax.yaxis``) with plain numbers (0.5, 1, 2, ...) at ``subs`` × powers of
    ten, instead of ``2×10⁰``-style labels; minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_estimator(r: dict):
    """Left: bits against ε (exact, Monte Carlo, fitted scaled χ²). Right: estimator error against n."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    a.plot(r["eps"], r["exact_bits"], color=c[0], label="tail of eq. 3 (saddlepoint)")
    ok = np.isfinite(r["mc_bits"])
    p = 2.0 ** -r["mc_bits"][ok]                       # Monte Carlo frequency; 95% bars by the delta method
    half = 1.96 * np.sqrt((1 - p) / (r["n_mc"] * p)) / np.log(2)
    a.errorbar(r["eps"][ok], r["mc_bits"][ok], yerr=half, fmt="o", color=c[1], ms=3, elinewidth=0.8,
               label="Monte Carlo (95% bars)")
    a.plot(r["eps"], r["fitted_bits"], "--", color=c[2], label="fitted scaled χ²")
    a.axhline(r["mc_max_bits"], color="0.5", lw=0.8, ls=":", label="Monte Carlo reach")
    a.axvline(r["eps_tail"], color="0.7", lw=0.8, label=f"ε of the {r['exact_tail_bits']:.0f}-bit level")
    a.set_yscale("log")
    _plain_log_ticks(a.yaxis, subs=(1.0,))
    plotting.label(a, "error level ε (test MSE)", "inductive bias (bits)", "a kernel task: tail of the test error")
    n = r["sample_sizes"]
    b.loglog(n, r["spread_bits"], "o-", color=c[0], label="spread over repeats (sd)")
    b.loglog(n, r["rmse_bits"], "s-", color=c[1], label="RMS error vs exact")
    b.loglog(n, r["spread_bits"][0] * np.sqrt(n[0] / n), ":", color="0.4", label="∝ n^-1/2")
    from matplotlib.ticker import FixedLocator, NullLocator
    b.xaxis.set_major_locator(FixedLocator(n))
    b.xaxis.set_minor_locator(NullLocator())
    b.set_xticklabels([f"{int(v)}" for v in n])
    _plain_log_ticks(b.yaxis)
    plotting.label(b, "sampled hypotheses n", "error of the estimate (bits)",
                   f"convergence in n, at the {r['exact_tail_bits']:.0f}-bit level")
    return plotting.finish(fig)


def plot_dimension(r: dict):
    """Left: bits against input dimension (tasks as dots, mean as line). Right: mean error of a random hypothesis."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    d = r["dims"]
    for t in range(r["bits"].shape[1]):
        a.plot(d, r["bits"][:, t], "o", color=c[0], alpha=0.35, ms=3)
    a.plot(d, r["mean_bits"], "-", color=c[0], label="target from the kernel's prior")
    if "bits_sine" in r:
        for t in range(r["bits_sine"].shape[1]):
            a.plot(d, r["bits_sine"][:, t], "s", color=c[1], alpha=0.35, ms=3)
        a.plot(d, r["mean_bits_sine"], "--", color=c[1], label="misspecified target sin(2aᵀx)")
        a.set_yscale("symlog", linthresh=1.0)
    a.set_xscale("log", base=2)
    plotting.label(a, "input dimension d", f"inductive bias at ε = {r['eps']:g} (bits)", "RBF-kernel hypotheses")
    b.plot(d, r["mean_error"], "o-", color=c[0], label="random interpolant, prior target")
    if "mean_error_sine" in r:
        b.plot(d, r["mean_error_sine"], "s--", color=c[1], label="random interpolant, sin(2aᵀx)")
    b.axhline(r["eps"], color="0.4", ls=":", label="target ε")
    b.set_xscale("log", base=2)
    plotting.label(b, "input dimension d", "mean test MSE", "how far the hypotheses are from ε")
    return plotting.finish(fig)


def plot_network_bias(results: list[dict]):
    """Left: one seed's trained networks' losses with the fitted scaled χ². Middle: kernel bits at each
    network's error (amplitude 1 and fitted amplitude; one marker per seed). Right: kernel − network
    bits at the base architecture's error against the kernel's prior amplitude (seeds as dots)."""
    from sparsebook import plotting

    r = results[0]
    fig, (a, b, m) = plotting.figure(3, 1)
    c = plotting.COLORS
    base = next(x for x in r["rows"] if (x["width"], x["depth"]) == tuple(r["base"]))
    losses = np.sort(base["losses"])
    a.step(losses, np.arange(1, len(losses) + 1) / len(losses), where="post", color=c[0], label="trained networks")
    fit = fit_scaled_ncx2(base["losses"])
    grid = np.linspace(0.8 * losses[0], 1.1 * losses[-1], 200)
    a.plot(grid, np.exp(fit.logcdf(grid)), "--", color=c[2], label="fitted scaled χ²")
    a.axvline(base["median_mse"], color="0.6", lw=0.8, ls=":", label="median (ε)")
    plotting.label(a, "test MSE", "fraction of networks ≤ MSE",
                   f"width {base['width']}, depth {base['depth']} (seed {r['seed']})")
    b.plot(r["kernel_eps"], r["kernel_curve_bits"], color="0.5", label="kernel, amplitude 1")
    b.plot(r["kernel_eps"], r["kernel_curve_bits_ml"], color="0.5", ls="--", label="kernel, fitted amplitude")
    for i, x in enumerate(r["rows"]):
        col = c[(i + 1) % len(c)]
        for k, rr in enumerate(results):
            y = rr["rows"][i]
            b.plot(y["median_mse"], max(y["kernel_bits"], 1e-2), "o", color=col, ms=3,
                   label=f"width {x['width']}, depth {x['depth']}" if k == 0 else None)
    b.axvline(r["kernel_mean_fn_mse"], color="0.3", lw=0.8, ls=":", label="kernel posterior mean's MSE")
    b.axvline(r["kernel_mean_mse"], color="0.3", lw=0.8, ls="-.", label="kernel's mean MSE (amplitude 1)")
    b.set_yscale("log")
    b.set_ylim(bottom=1e-2)
    plotting.label(b, "error level ε (test MSE)", "kernel inductive bias (bits)", "bits a kernel needs (seed dots)")
    amps = r["amplitudes"]
    gaps = np.array([rr["amplitude_bits"] - next(x for x in rr["rows"] if (x["width"], x["depth"]) == tuple(rr["base"]))["network_bits"]
                     for rr in results])
    for g in gaps:
        m.plot(amps, g, "o", color=c[0], alpha=0.35, ms=3)
    m.plot(amps, gaps.mean(0), "-", color=c[0], label="mean over seeds")
    m.axhline(10, color="0.4", ls=":", label="criterion (10 bits)")
    m.axvline(float(np.mean([rr["ml_amplitude"] for rr in results])), color=c[2], lw=0.8, label="fitted amplitude")
    m.set_xscale("log")
    m.set_yscale("symlog", linthresh=1)
    plotting.label(m, "kernel prior amplitude", "kernel − network bits", "dependence on the amplitude")
    return plotting.finish(fig)


def plot_guidance(results: list[dict]):
    """Test cross-entropy and test accuracy during training (mean over seeds, band min–max), and held-out CKA."""
    from sparsebook import plotting

    fig, (a, acc, b) = plotting.figure(3, 1)
    c = plotting.COLORS
    names = {"none": "no guide", "untrained": "untrained CNN guide", "trained": "trained CNN guide"}
    runs = list(results[0]["runs"])
    for i, k in enumerate(runs):
        curves = np.stack([r["runs"][k]["curve"] for r in results])      # (seeds, points, 3)
        step = curves[0, :, 0]
        for ax, j in ((a, 1), (acc, 2)):
            ax.plot(step, curves[:, :, j].mean(0), "-", color=c[i], label=names[k])
            ax.fill_between(step, curves[:, :, j].min(0), curves[:, :, j].max(0), color=c[i], alpha=0.15, lw=0)
    a.set_yscale("log")
    _plain_log_ticks(a.yaxis)
    plotting.label(a, "training step", "test cross-entropy (nats)", f"FCN on a digits subset ({len(results)} seeds)")
    plotting.label(acc, "training step", "test accuracy", "accuracy (band: min–max over seeds)")
    x = np.arange(len(runs))
    for off, key, col, lab in ((-0.2, "cka_untrained", c[3], "to untrained CNN"), (0.2, "cka_trained", c[4], "to trained CNN")):
        vals = np.array([[r["runs"][k][key] for k in runs] for r in results])
        b.bar(x + off, vals.mean(0), 0.4, color=col, label=lab)
        for v in vals:
            b.plot(x + off, v, "o", color="0.2", ms=2)
    b.set_xticks(x, [names[k] for k in runs], rotation=15)
    b.set_ylim(0, 1)
    plotting.label(b, "target trained with", "held-out CKA (mean over layers)", "representational alignment")
    return plotting.finish(fig)


# ---------------------------------------------------------------------------
# Explorable figure and try-your-own cell (the task dimension)
# ---------------------------------------------------------------------------
#: Input dimensions offered by the explorable figure's slider, and its error levels (x axis).
EXPLORE_DIMS = (2, 4, 8, 16, 32, 64)
EXPLORE_EPS = np.round(np.geomspace(0.02, 1.0, 30), 6)


def _task_loss(d: int, n_train: int, n_test: int, task: int):
    from sparsebook.inductive_bias.experiments import gp_task
    from sparsebook.inductive_bias.kernels import kernel_test_loss

    xtr, ytr, xte, yte, ell = gp_task(d, n_train, n_test, seed=task)
    return kernel_test_loss(xtr, ytr, xte, yte, lengthscale=ell)


def explore_dimension(config=None, seed: int = 0):
    """Explorable figure: the exact inductive bias (bits, eq. 1 with eq. 3) of the RBF-kernel space
    against the target error ε, one curve per task drawn from the kernel's prior, with a slider for
    the input dimension d (the tasks of :func:`run_dimension`: ``config`` a ``DimensionConfig``)."""
    from sparsebook.explore import explore, trace
    from sparsebook.inductive_bias.experiments import DimensionConfig

    cfg = config or DimensionConfig.preset("ci")
    eps_line = trace(f"target ε = {cfg.eps:g} (the chapter's claim)", [cfg.eps, cfg.eps], [1e-2, 1e4],
                     dash="dot", color="#777777")

    def fn(d):
        curves = np.array([_task_loss(d, cfg.n_train, cfg.n_test, 1000 * seed + t).bits(EXPLORE_EPS)
                           for t in range(cfg.tasks)])
        out = [trace(f"task {t + 1}", EXPLORE_EPS, c, color="#9ecae1") for t, c in enumerate(curves)]
        return out + [trace("mean over tasks", EXPLORE_EPS, curves.mean(0), color="#0072B2", mode="lines+markers")]

    return explore(fn, {"d": list(EXPLORE_DIMS)}, fixed=[eps_line], labels={"d": "input dimension d"},
                   default={"d": 16}, title=f"Inductive bias of the RBF-kernel space ({cfg.n_train} training points, exact)",
                   xlabel="target test MSE ε", ylabel="inductive bias (bits)", log_x=True, log_y=True,
                   y_range=[1e-2, 1e4], digits=6)


def plot_try_dimension(d: int = 16, n_train: int = 64, eps: float = 0.25, task: int = 0):
    """Try-your-own plot: bits against ε for one task of input dimension ``d`` with ``n_train``
    training points (exact), ``eps`` marked; prints the bits there and the mean error of a random
    interpolating hypothesis.  Returns the figure."""
    from sparsebook import plotting

    loss = _task_loss(d, n_train, 64, task)
    b = loss.bits(EXPLORE_EPS)
    fig, (ax,) = plotting.figure(ncols=1)
    ok = np.isfinite(b)
    ax.loglog(EXPLORE_EPS[ok], b[ok], "-", label=f"d = {d}, {n_train} training points, task {task}")
    at = loss.bits(eps)
    if np.isfinite(at):
        ax.plot([eps], [at], "o", ms=8, mfc="none", mec="k", label=f"ε = {eps:g}: {at:.3g} bits")
    plotting.label(ax, "target test MSE ε", "inductive bias (bits)", "RBF-kernel hypotheses (exact)")
    print(f"bits at ε = {eps:g}: {at:.4g}; mean test MSE of a random interpolating hypothesis: {loss.cumulants()[0]:.4g}")
    return plotting.finish(fig)


def try_dimension():
    """Try-your-own cell (JupyterLab): sliders over :func:`plot_try_dimension`."""
    from sparsebook.explore import interact

    return interact(plot_try_dimension,
                    {"d": [1, 2, 4, 8, 16, 32, 64, 128, 256], "n_train": [8, 16, 32, 64, 128, 256],
                     "eps": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7], "task": list(range(10))},
                    default={"d": 16, "n_train": 64, "eps": 0.25, "task": 0})


def plot_hypotheses_1d(n_train: int = 6, n_test: int = 12, n_draws: int = 20, n_mc: int = 10_000, seed: int = 0):
    """What the bits count, in one dimension.  Left: a GP (RBF, length scale 1, amplitude 1) conditioned
    without noise on ``n_train`` points of ``sin(2x)``: its posterior mean and ``n_draws`` random
    interpolating hypotheses, with the ``n_test`` test points.  Right: ``P(e ≤ ε)`` of the test MSE of
    a random hypothesis, exact (eq. 3, saddlepoint) and the frequency among ``n_mc`` draws; the
    bits at ε are ``−log₂`` of this curve."""
    from sparsebook import plotting
    from sparsebook.inductive_bias.kernels import gaussian_test_loss, gp_posterior, rbf_kernel

    rng = np.random.default_rng(seed)
    xtr = np.sort(rng.uniform(-3, 3, n_train))[:, None]
    xte = rng.uniform(-3, 3, n_test)[:, None]
    ytr, yte = np.sin(2 * xtr[:, 0]), np.sin(2 * xte[:, 0])
    grid = np.linspace(-3.2, 3.2, 161)[:, None]
    pts = np.vstack([grid, xte])
    mean, cov = gp_posterior(rbf_kernel(xtr, xtr, 1.0), rbf_kernel(pts, xtr, 1.0), rbf_kernel(pts, pts, 1.0), ytr)
    lam, u = np.linalg.eigh(cov)
    root = u * np.sqrt(np.clip(lam, 0, None))
    draws = mean[:, 0][None, :] + rng.standard_normal((n_mc, len(pts))) @ root.T
    g, t = slice(0, len(grid)), slice(len(grid), None)
    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    for k in range(n_draws):
        a.plot(grid[:, 0], draws[k, g], color=c[0], lw=0.6, alpha=0.35, label="random interpolants" if k == 0 else None)
    a.plot(grid[:, 0], mean[g, 0], color="k", lw=1.5, label="posterior mean")
    a.plot(grid[:, 0], np.sin(2 * grid[:, 0]), ":", color="0.4", label="target sin(2x)")
    a.plot(xtr[:, 0], ytr, "o", color="k", ms=5, label="training points")
    a.plot(xte[:, 0], yte, "x", color=c[1], ms=6, label="test points")
    a.set_ylim(-2.2, 1.6)
    a.legend(loc="lower left", fontsize=7, ncol=2)
    plotting.label(a, "input x", "hypothesis f(x)", "hypotheses that fit the training set")
    loss = gaussian_test_loss(mean[t], cov[t, t], yte)
    mse = np.sort(np.mean((draws[:, t] - yte[None, :]) ** 2, axis=1))
    eps = np.geomspace(mse[9], mse[-1], 60)
    b.plot(eps, 2.0 ** -loss.bits(eps), color=c[0], label="exact (eq. 3)")
    b.plot(eps, np.searchsorted(mse, eps, side="right") / n_mc, "--", color=c[1], label=f"{n_mc:,} draws")
    b.set_xscale("log")
    b.set_yscale("log")
    plotting.label(b, "error level ε (test MSE)", "P(test MSE ≤ ε)", "bits needed = −log₂ P")
    return plotting.finish(fig)
