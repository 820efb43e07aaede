"""Experiments of the inductive_bias chapter: configs with ``preset("ci"|"full")``, the
``run_<experiment>(config, seed)`` runners, the chapter's tasks (data generators), the batched
MLP ensemble trainer and the networks of the guidance experiment.

The math they call is in :mod:`sparsebook.inductive_bias.kernels`; the figures are in
:mod:`sparsebook.inductive_bias.figures`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from sparsebook.inductive_bias.kernels import (_eps_at_bits, _finite_array, fit_scaled_ncx2, gaussian_test_loss,
                                               generalized_chi2_cdf_imhof, gp_posterior, guidance_penalty,
                                               kernel_test_loss, layer_pairs, linear_cka, median_lengthscale,
                                               ml_amplitude, rbf_kernel)
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import make_optimizer, run_steps
from sparsebook.validate import check_int, check_real


# ---------------------------------------------------------------------------
# neural-network hypothesis spaces: many networks trained at once
# ---------------------------------------------------------------------------


def train_mlp_ensemble(x_train, y_train, x_test, y_test, *, n_models: int, width: int, depth: int,
                       steps: int, lr: float = 1e-3, seed: int = 0, device: str | None = None,
                       with_train: bool = False):
    """Test MSEs of ``n_models`` ReLU MLPs trained from independent initializations, in one batch.

    Each network is ``d → width → … (depth hidden layers) → k``, PyTorch's default
    initialization, trained by full-batch Adam on the MSE to ``y_train`` (one-hot
    targets for classification, as in the authors' code).  The ensemble is one set
    of batched weight tensors ``(n_models, fan_in, fan_out)``; Adam acts per element, so
    this equals training each network alone.

    Shapes: x (n, d), y (n, k).  Returns ``(n_models,)`` test MSEs ``‖f − y‖²/(n_test·k)``, and with
    ``with_train=True`` the pair ``(test MSEs, training MSEs)`` (the hypotheses must fit the data).
    ``device``: ``None`` uses CPU for up to 10⁹ multiply-adds per step and a GPU, when one is
    present, above that (``SCALE = "full"``); the initialization is drawn on the CPU either way.
    """
    xtr = _finite_array(x_train, "x_train", ndim=(2,))
    ytr = _finite_array(y_train, "y_train", ndim=(2,))
    xte = _finite_array(x_test, "x_test", ndim=(2,))
    yte = _finite_array(y_test, "y_test", ndim=(2,))
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError("x and y must have the same number of rows")
    if xtr.shape[1] != xte.shape[1] or ytr.shape[1] != yte.shape[1]:
        raise ValueError("train and test must have the same input and output dimensions")
    e = check_int(n_models, "n_models", 1)
    width = check_int(width, "width", 1)
    depth = check_int(depth, "depth", 1)
    steps = check_int(steps, "steps", 1)
    lr = check_real(lr, "lr", 0, low_open=True)
    if not isinstance(with_train, bool):
        raise TypeError(f"with_train must be a bool; got {type(with_train).__name__}")
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    sizes = [xtr.shape[1]] + [width] * depth + [ytr.shape[1]]
    params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fi)
        w = (torch.rand(e, fi, fo, generator=g, dtype=torch.float32) * 2 - 1) * bound
        b = (torch.rand(e, 1, fo, generator=g, dtype=torch.float32) * 2 - 1) * bound
        params += [w.requires_grad_(), b.requires_grad_()]
    if device is None:
        work = e * len(xtr) * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        device = "cuda" if (work > 1e9 and torch.cuda.is_available()) else "cpu"
    params = [p.detach().to(device).requires_grad_() for p in params]
    xt = torch.as_tensor(xtr, dtype=torch.float32, device=device)
    yt = torch.as_tensor(ytr, dtype=torch.float32, device=device)

    def forward(x):
        h = x.expand(e, *x.shape)
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i + 2 < len(params):
                h = torch.relu(h)
        return h

    def objective(_):
        loss = ((forward(xt) - yt) ** 2).mean(dim=(1, 2)).sum()
        return loss, loss

    run_steps(make_optimizer(params, "adam", lr), objective, steps=steps)
    with torch.no_grad():
        out = ((forward(torch.as_tensor(xte, dtype=torch.float32, device=device))
                - torch.as_tensor(yte, dtype=torch.float32, device=device)) ** 2).mean(dim=(1, 2))
        train = ((forward(xt) - yt) ** 2).mean(dim=(1, 2))
    test = out.cpu().numpy().astype(np.float64)
    if with_train:
        return test, train.cpu().numpy().astype(np.float64)
    return test


# ---------------------------------------------------------------------------
# the networks of the guidance experiment
# ---------------------------------------------------------------------------


class _FCN(torch.nn.Module):
    """Target: 64 → width (× depth, ReLU) → 10; ``forward`` returns logits and hidden layers."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        sizes = [64] + [width] * depth
        self.hidden = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = torch.nn.Linear(width, 10)

    def forward(self, x):
        feats = []
        h = x.reshape(len(x), -1)
        for lin in self.hidden:
            h = torch.relu(lin(h))
            feats.append(h)
        return self.out(h), feats


class _CNN(torch.nn.Module):
    """Guide: 1×8×8 → conv3×3(c) → ReLU → conv3×3(2c) → ReLU → maxpool 2 → FC 64 → ReLU → 10."""

    def __init__(self, channels: int):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, channels, 3, padding=1)
        self.c2 = torch.nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc = torch.nn.Linear(2 * channels * 16, 64)
        self.out = torch.nn.Linear(64, 10)

    def forward(self, x):
        h1 = torch.relu(self.c1(x.reshape(len(x), 1, 8, 8)))
        h2 = torch.nn.functional.max_pool2d(torch.relu(self.c2(h1)), 2)
        h3 = torch.relu(self.fc(h2.reshape(len(x), -1)))
        return self.out(h3), [h1, h2, h3]


# ---------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------


def single_index_task(d: int, n_train: int, n_test: int, seed: int = 0, frequency: float = 2.0):
    """A task of input dimension ``d`` and fixed complexity: ``y = sin(frequency · aᵀx)``.

    ``x ~ N(0, I_d)``, ``a`` a random unit vector; the target varies along one
    direction whatever ``d`` is, so only the dimension of the input changes.
    Returns ``x_train (n_train, d), y_train (n_train,), x_test, y_test``.
    """
    d = check_int(d, "d", 1)
    n_train = check_int(n_train, "n_train", 1)
    n_test = check_int(n_test, "n_test", 1)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(d)
    a /= np.linalg.norm(a)
    x = rng.standard_normal((n_train + n_test, d))
    y = np.sin(frequency * x @ a)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


@dataclass(frozen=True)
class EstimatorConfig:
    """Exact tail vs Monte Carlo vs the fitted scaled χ², on one kernel task."""

    d: int = 4
    n_train: int = 32
    n_test: int = 48
    n_mc: int = 1_000_000          # direct GP samples: the Monte Carlo reference and the population fits draw from
    n_fit: int = 1000              # sampled hypotheses for the practical estimator
    tail_bits: float = 20.0        # level of the convergence study (bits)
    tail_levels: tuple = (20.0, 40.0, 100.0)  # depths at which the fitted tail is compared with the exact one
    check_bits: tuple = (4.0, 8.0)  # depths at which the exact tail is compared with Monte Carlo
    imhof_levels: tuple = (1.0, 4.0, 8.0, 16.0)  # depths at which the saddlepoint is compared with Imhof's CDF
    sample_sizes: tuple = (50, 100, 200, 400, 800)
    repeats: int = 100
    convergence_method: str = "moments"  # fit used in the repeated fits (depth and convergence studies)

    @classmethod
    def preset(cls, scale: str = "ci") -> "EstimatorConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=64, n_test=128, n_mc=4_000_000, n_fit=10_000,
                   sample_sizes=(50, 100, 200, 400, 800, 1600, 3200, 6400), repeats=40,
                   convergence_method="mle")


def _imhof_bits(loss, eps: float) -> float:
    """−log₂ P(e ≤ ε) of a kernel loss by Imhof's integral (exact in the bulk)."""
    return float(-math.log2(generalized_chi2_cdf_imhof(eps - loss.offset, loss.weights, loss.noncentralities)))


def run_estimator(config: EstimatorConfig, seed: int = 0) -> dict:
    """Check eq. 3 and the estimator on a single-index task in ``config.d`` dimensions.

    Returns a dict with the ε grid and the exact/MC/fitted bits along it (for the figure), and:

    - ``mc_checks``: at each depth of ``config.check_bits``, the exact bits (Imhof's integral,
      ``imhof_bits``; the saddlepoint's, ``exact_bits``), the Monte Carlo bits ``−log₂(hits/n_mc)``
      and their standard error ``√((1−p)/(n_mc p))/ln 2`` (delta method);
    - ``saddle_minus_imhof`` (len(imhof_levels),): saddlepoint bits − Imhof bits at those depths;
    - ``depth_rel_err`` ``(repeats, len(tail_levels))``: ``fitted/exact − 1`` of the bits at each depth,
      one fit to ``n_fit`` fresh draws per repeat (``convergence_method``);
    - ``sq_err`` ``(len(sample_sizes), repeats)``: squared error (bits²) of the estimate at
      ``tail_bits`` against the exact value, per n and repeat; ``spread_bits`` and ``rmse_bits`` summarise it.
    """
    if not isinstance(config, EstimatorConfig):
        raise TypeError(f"config must be an EstimatorConfig; got {type(config).__name__}")
    if config.convergence_method not in ("mle", "moments"):
        raise ValueError(f"convergence_method must be 'mle' or 'moments'; got {config.convergence_method!r}")
    rng = seed_everything(seed)
    xtr, ytr, xte, yte = single_index_task(config.d, config.n_train, config.n_test, seed)
    ell = median_lengthscale(xtr)
    mean, cov = gp_posterior(rbf_kernel(xtr, xtr, ell), rbf_kernel(xte, xtr, ell), rbf_kernel(xte, xte, ell), ytr)
    loss = gaussian_test_loss(mean, cov, yte)
    # Monte Carlo by sampling the GP posterior directly (f = μ + C z): checks eq. 3 too
    lam, u = np.linalg.eigh(cov)
    root = u * np.sqrt(np.clip(lam, 0, None))
    mc = np.empty(config.n_mc)
    chunk = 16384
    for s in range(0, config.n_mc, chunk):
        z = rng.standard_normal((min(chunk, config.n_mc - s), len(lam)))
        f = mean[:, 0][None, :] + z @ root.T
        mc[s:s + len(z)] = np.mean((f - yte[None, :]) ** 2, axis=1)
    mc.sort()
    # ε grid for the figure: from 40 bits (far beyond sampling) up to the 90% quantile
    eps_lo = _eps_at_bits(loss, 40.0)
    eps_grid = np.geomspace(eps_lo, float(np.quantile(mc, 0.9)), 40)
    exact = loss.bits(eps_grid)
    hits = np.searchsorted(mc, eps_grid, side="right")
    with np.errstate(divide="ignore"):
        mc_bits = -np.log2(hits / config.n_mc)
    # exact vs Monte Carlo at fixed depths, with the Monte Carlo standard error
    checks = []
    for b in config.check_bits:
        e = _eps_at_bits(loss, float(b))
        k = int(np.searchsorted(mc, e, side="right"))
        p = k / config.n_mc
        if k == 0:
            raise ValueError(f"check_bits {b} is beyond the reach of n_mc = {config.n_mc} samples")
        checks.append({"eps": e, "exact_bits": float(loss.bits(e)), "mc_bits": float(-math.log2(p)),
                       "imhof_bits": _imhof_bits(loss, e),
                       "se_bits": float(math.sqrt((1 - p) / (config.n_mc * p)) / math.log(2)), "hits": k})
    eps_im = [_eps_at_bits(loss, float(b)) for b in config.imhof_levels]
    saddle_minus_imhof = np.array([float(loss.bits(e)) - _imhof_bits(loss, e) for e in eps_im])
    # the practical estimator from n_fit sampled hypotheses (one fit, for the figure)
    sampled = mc[rng.permutation(config.n_mc)[:config.n_fit]]
    fit = fit_scaled_ncx2(sampled)
    fitted = fit.bits(eps_grid)
    # the fitted tail at several depths, over independent draws of n_fit hypotheses
    eps_levels = np.array([_eps_at_bits(loss, float(b)) for b in config.tail_levels])
    exact_levels = loss.bits(eps_levels)
    depth = np.empty((config.repeats, len(eps_levels)))
    for r in range(config.repeats):
        fr = fit_scaled_ncx2(mc[rng.integers(0, config.n_mc, config.n_fit)], config.convergence_method)
        depth[r] = fr.bits(eps_levels) / exact_levels - 1.0
    # convergence in the number of sampled hypotheses
    eps_tail = _eps_at_bits(loss, config.tail_bits)
    exact_tail = float(loss.bits(eps_tail))
    est = np.empty((len(config.sample_sizes), config.repeats))
    for i, n in enumerate(config.sample_sizes):
        est[i] = [fit_scaled_ncx2(mc[rng.integers(0, config.n_mc, n)], config.convergence_method).bits(eps_tail)
                  for _ in range(config.repeats)]
    ns = np.asarray(config.sample_sizes, dtype=float)
    spread = est.std(axis=1, ddof=1)
    return {
        "eps": eps_grid, "exact_bits": exact, "mc_bits": mc_bits, "fitted_bits": fitted, "fit": fit,
        "mc_checks": checks, "saddle_minus_imhof": saddle_minus_imhof,
        "imhof_levels": np.asarray(config.imhof_levels, dtype=float), "tail_levels": np.asarray(config.tail_levels, dtype=float),
        "exact_level_bits": exact_levels, "eps_levels": eps_levels, "depth_rel_err": depth,
        "eps_tail": eps_tail, "exact_tail_bits": exact_tail, "estimates": est,
        "sq_err": (est - exact_tail) ** 2, "sample_sizes": ns, "spread_bits": spread,
        "rmse_bits": np.sqrt(np.mean((est - exact_tail) ** 2, axis=1)),
        "mc_max_bits": float(math.log2(config.n_mc)), "n_mc": config.n_mc, "repeats": config.repeats,
    }


def gp_task(d: int, n_train: int, n_test: int, seed: int = 0, lengthscale: float = 1.0):
    """A task of input dimension ``d`` drawn from the kernel's own prior (a well-specified task).

    ``x ~ N(0, I_d)``; ``y`` is one draw of a GP with the RBF kernel of length scale
    ``lengthscale·√d`` (so that ``‖x − x'‖²/ℓ²`` stays of order 1 in every dimension)
    and amplitude 1, at the training and test inputs jointly.  Only ``d`` changes the
    task; its prior variance is 1 everywhere.  Returns ``x_train, y_train, x_test, y_test, ℓ``.
    """
    d = check_int(d, "d", 1)
    n_train = check_int(n_train, "n_train", 1)
    n_test = check_int(n_test, "n_test", 1)
    ell = check_real(lengthscale, "lengthscale", 0, low_open=True) * math.sqrt(d)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, d))
    k = rbf_kernel(x, x, ell)
    y = np.linalg.cholesky(k + 1e-8 * np.eye(len(x))) @ rng.standard_normal(len(x))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], ell


@dataclass(frozen=True)
class DimensionConfig:
    """Bits needed by the RBF-kernel space against input dimension (tasks drawn from the kernel's prior)."""

    dims: tuple = (4, 8, 16, 32, 64)
    n_train: int = 64
    n_test: int = 64
    eps: float = 0.25              # target test MSE (the prior variance of the task is 1)
    tasks: int = 5                 # independent tasks (seeds) per dimension

    @classmethod
    def preset(cls, scale: str = "ci") -> "DimensionConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(dims=(8, 16, 32, 64, 128, 256), n_train=256, n_test=256, tasks=20)


def run_dimension(config: DimensionConfig, seed: int = 0) -> dict:
    """Exact inductive bias (bits, eq. 1 with eq. 3) of the RBF-kernel space for each input dimension.

    Returns ``{"dims", "bits" (dims, tasks), "mean_bits" (dims,), "mean_error" (dims,)}``:
    ``mean_error`` is the average test MSE of a random interpolating hypothesis.  ``bits_sine``,
    ``mean_error_sine``: the same for a misspecified target, the single-index task
    :func:`single_index_task` (``sin(2 aᵀx)``, prior variance about 1/2) with the median-distance
    length scale, as in the estimator section, on the same number of tasks.
    """
    if not isinstance(config, DimensionConfig):
        raise TypeError(f"config must be a DimensionConfig; got {type(config).__name__}")
    seed_everything(seed)
    out = np.empty((len(config.dims), config.tasks))
    mean_err = np.empty_like(out)
    out_s, err_s = np.empty_like(out), np.empty_like(out)
    for i, d in enumerate(config.dims):
        for t in range(config.tasks):
            xtr, ytr, xte, yte, ell = gp_task(d, config.n_train, config.n_test, seed=1000 * seed + t)
            loss = kernel_test_loss(xtr, ytr, xte, yte, lengthscale=ell)
            out[i, t] = loss.bits(config.eps)
            mean_err[i, t] = loss.cumulants()[0]
            xtr, ytr, xte, yte = single_index_task(d, config.n_train, config.n_test, seed=1000 * seed + t)
            loss = kernel_test_loss(xtr, ytr, xte, yte)
            out_s[i, t] = loss.bits(config.eps)
            err_s[i, t] = loss.cumulants()[0]
    return {"dims": np.asarray(config.dims), "bits": out, "mean_bits": out.mean(1),
            "mean_error": mean_err.mean(1), "eps": config.eps, "bits_sine": out_s,
            "mean_bits_sine": out_s.mean(1), "mean_error_sine": err_s.mean(1)}


@dataclass(frozen=True)
class NetworkConfig:
    """Kernel bits at trained networks' error levels, and bits within the network space (digits)."""

    n_train: int = 150
    n_test: int = 200
    n_models: int = 24
    steps: int = 150
    lr: float = 2e-3
    base: tuple = (32, 1)                              # (width, depth) of the reference network
    archs: tuple = ((8, 1), (32, 1), (32, 2))
    amplitudes: tuple = (0.01, 0.03, 0.09, 0.3, 1.0)   # kernel prior amplitudes of the sweep
    seeds: int = 5                                     # data splits × initializations
    test_sizes: tuple = (50, 100, 200)                 # first n_* test images: the gap against the test-set size

    @classmethod
    def preset(cls, scale: str = "ci") -> "NetworkConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=1000, n_test=400, n_models=256, steps=2000, lr=1e-3, base=(64, 1),
                   archs=((16, 1), (64, 1), (256, 1), (1024, 1), (64, 2), (64, 3), (64, 4)), seeds=10,
                   test_sizes=(100, 200, 400))


def run_network_bias(config: NetworkConfig, seed: int = 0) -> dict:
    """Train ensembles of MLPs on a digits subset (MSE to one-hot) and measure, in bits:

    - ``kernel_bits``: −log₂ P_kernel(e ≤ ε) at ε = each architecture's median test MSE
      (the information the network class supplies relative to the RBF-kernel space), for the
      kernel at amplitude 1 (the authors' convention) and ``kernel_bits_ml`` at the amplitude
      fitted by maximum marginal likelihood (:func:`~sparsebook.inductive_bias.kernels.ml_amplitude`);
    - ``network_bits``: −log₂ P_network(e ≤ ε) from the scaled-χ² fit to the ensemble's losses;
    - ``amplitude_bits``: kernel bits at the base architecture's median MSE for each of ``config.amplitudes``;
    - ``test_size_gap``: kernel bits (amplitude 1) minus network bits of the base architecture when only
      the first ``m`` test images count, for each ``m`` of ``config.test_sizes`` (same training: the
      ensemble is deterministic given the seed).

    ``seed`` picks the data split and the initializations.
    """
    if not isinstance(config, NetworkConfig):
        raise TypeError(f"config must be a NetworkConfig; got {type(config).__name__}")
    from sparsebook.data import digits

    for m in config.test_sizes:
        check_int(m, "test_sizes", 2, config.n_test)
    seed_everything(seed)
    data = digits(test_fraction=0.3, seed=seed)
    xtr, xte = data["x_train"][:config.n_train].astype(np.float64), data["x_test"][:config.n_test].astype(np.float64)
    ytr = np.eye(10)[data["y_train"][:config.n_train]]
    yte = np.eye(10)[data["y_test"][:config.n_test]]
    ell = median_lengthscale(xtr)
    a_ml = ml_amplitude(rbf_kernel(xtr, xtr, ell), ytr)
    kloss = kernel_test_loss(xtr, ytr, xte, yte, lengthscale=ell)
    kloss_ml = kloss.rescaled(a_ml)
    rows = []
    for width, depth in config.archs:
        losses, train = train_mlp_ensemble(xtr, ytr, xte, yte, n_models=config.n_models, width=width, depth=depth,
                                           steps=config.steps, lr=config.lr, seed=seed, with_train=True)
        eps = float(np.median(losses))
        fit = fit_scaled_ncx2(losses)
        rows.append({"width": width, "depth": depth, "median_mse": eps, "train_mse": float(np.median(train)),
                     "min_mse": float(losses.min()), "kernel_bits": float(kloss.bits(eps)),
                     "kernel_bits_ml": float(kloss_ml.bits(eps)),
                     "network_bits": float(fit.bits(eps)), "losses": losses})
    base = next(r for r in rows if (r["width"], r["depth"]) == tuple(config.base))
    amp_bits = np.array([kloss.rescaled(a).bits(base["median_mse"]) for a in config.amplitudes])
    size_gap = []
    for m in config.test_sizes:
        if m == config.n_test:
            size_gap.append(base["kernel_bits"] - base["network_bits"])
            continue
        lm = train_mlp_ensemble(xtr, ytr, xte[:m], yte[:m], n_models=config.n_models, width=config.base[0],
                                depth=config.base[1], steps=config.steps, lr=config.lr, seed=seed)
        em = float(np.median(lm))
        km = kernel_test_loss(xtr, ytr, xte[:m], yte[:m], lengthscale=ell)
        size_gap.append(float(km.bits(em)) - float(fit_scaled_ncx2(lm).bits(em)))
    eps_grid = np.geomspace(0.5 * min(r["median_mse"] for r in rows), kloss.cumulants()[0], 40)
    return {"rows": rows, "kernel_mean_mse": kloss.cumulants()[0], "kernel_mean_mse_ml": kloss_ml.cumulants()[0],
            "kernel_eps": eps_grid, "kernel_curve_bits": kloss.bits(eps_grid),
            "kernel_curve_bits_ml": kloss_ml.bits(eps_grid), "ml_amplitude": a_ml,
            "amplitudes": np.asarray(config.amplitudes, dtype=float), "amplitude_bits": amp_bits,
            "kernel_mean_fn_mse": float(kloss.offset + np.sum(kloss.weights * kloss.noncentralities)),
            "base": config.base, "seed": seed, "test_sizes": np.asarray(config.test_sizes),
            "test_size_gap": np.asarray(size_gap)}


def network_bias_seed(seed: int, config: NetworkConfig) -> dict:
    """:func:`run_network_bias` with the seed first (for :func:`sparsebook.seeding.over_seeds`)."""
    return run_network_bias(config, seed)


@dataclass(frozen=True)
class GuidanceConfig:
    """An overfitting FCN on a digits subset, unguided or guided by an untrained / a trained CNN."""

    n_train: int = 100
    n_test: int = 400
    width: int = 256
    depth: int = 4
    channels: int = 8
    steps: int = 100
    guide_steps: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    alpha: float = 1.0
    every: int = 10
    seeds: int = 5

    @classmethod
    def preset(cls, scale: str = "ci") -> "GuidanceConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=300, n_test=1000, width=512, depth=6, channels=16, steps=3000, guide_steps=3000,
                   every=20, seeds=10)


def run_guidance(config: GuidanceConfig, seed: int = 0) -> dict:
    """Train the target FCN three ways: ``none`` (CE only), ``untrained`` and ``trained`` CNN guide.

    loss = CE + α Σ_l (1 − CKA(FCN layer l, CNN layer g(l))) on each minibatch, guide frozen,
    layers paired by :func:`layer_pairs`.  Returns per run: final test loss/accuracy, train
    accuracy, held-out CKA to the guide (mean over layer pairs) and the test-loss curve.
    """
    if not isinstance(config, GuidanceConfig):
        raise TypeError(f"config must be a GuidanceConfig; got {type(config).__name__}")

    from torch.nn import functional as F

    from sparsebook.data import digits
    from sparsebook.train import fit

    seed_everything(seed)
    data = digits(test_fraction=0.4, seed=seed)
    xtr = torch.as_tensor(data["x_train"][:config.n_train])
    ytr = torch.as_tensor(data["y_train"][:config.n_train])
    xte = torch.as_tensor(data["x_test"][:config.n_test])
    yte = torch.as_tensor(data["y_test"][:config.n_test])
    seed_everything(seed + 1)
    guide_untrained = _CNN(config.channels)
    seed_everything(seed + 1)
    guide_trained = _CNN(config.channels)
    fit(_Logits(guide_trained), xtr, ytr, steps=config.guide_steps, lr=config.lr,
        batch_size=config.batch_size, seed=seed + 1)
    guide_trained.eval()
    for g in (guide_untrained, guide_trained):
        g.eval()
        for p in g.parameters():
            p.requires_grad_(False)
    pairs = layer_pairs(config.depth, 3)

    def held_out_cka(target, guide):
        with torch.no_grad():
            _, tf = target(xte)
            _, gf = guide(xte)
        return float(np.mean([float(linear_cka(tf[i].double(), gf[j].double())) for i, j in pairs]))

    guide_acc = int((guide_trained(xte)[0].argmax(1) == yte).sum()) / len(yte)
    runs = {}
    for name, guide in (("none", None), ("untrained", guide_untrained), ("trained", guide_trained)):
        seed_everything(seed)
        target = _FCN(config.width, config.depth)
        curve = []

        def callback(model, step):
            logits, _ = model(xte)
            curve.append((step, float(F.cross_entropy(logits, yte)), int((logits.argmax(1) == yte).sum()) / len(yte)))

        wrapped = _Guided(target, guide, pairs, config.alpha)
        fit(wrapped, xtr, ytr, steps=config.steps, lr=config.lr, batch_size=config.batch_size, seed=seed,
            penalty=(lambda m, step: m.last_penalty) if guide is not None else None,
            callback=lambda m, step: callback(target, step), every=config.every)
        with torch.no_grad():
            logits, _ = target(xte)
            tr_logits, _ = target(xtr)
        curve = np.array(curve)
        final = float(F.cross_entropy(logits, yte))
        runs[name] = {
            "test_loss": final,
            "min_test_loss": float(min(curve[:, 1].min(), final)),
            "rise": final - float(min(curve[:, 1].min(), final)),
            # counts are exact integers: differences of accuracies are taken on them (a float32 mean
            # turned a gain of exactly 4 of 400 images into 0.00999999)
            "test_correct": int((logits.argmax(1) == yte).sum()),
            "n_test": int(len(yte)),
            "test_acc": int((logits.argmax(1) == yte).sum()) / len(yte),
            "train_acc": int((tr_logits.argmax(1) == ytr).sum()) / len(ytr),
            "cka_untrained": held_out_cka(target, guide_untrained),
            "cka_trained": held_out_cka(target, guide_trained),
            "curve": curve,
        }
    return {"runs": runs, "guide_test_acc": guide_acc, "pairs": pairs}


def guidance_seed(seed: int, config: GuidanceConfig) -> dict:
    """:func:`run_guidance` with the seed first (for :func:`sparsebook.seeding.over_seeds`)."""
    return run_guidance(config, seed)


class _Logits(torch.nn.Module):
    """Wraps a network returning ``(logits, features)`` so that :func:`sparsebook.train.fit` sees logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


class _Guided(torch.nn.Module):
    """Target network whose forward also computes the guidance penalty against a frozen guide."""

    def __init__(self, target, guide, pairs, alpha):
        super().__init__()
        self.target = target
        self.guide = [guide]            # a list, so the guide is not registered as a submodule
        self.pairs = pairs
        self.alpha = alpha
        self.last_penalty = None

    def forward(self, x):
        logits, tf = self.target(x)
        guide = self.guide[0]
        if guide is not None and self.training:
            with torch.no_grad():
                _, gf = guide(x)
            self.last_penalty = guidance_penalty([tf[i] for i, _ in self.pairs], [gf[j] for _, j in self.pairs],
                                                 self.alpha)
        return logits


# ---------------------------------------------------------------------------
# several seeds, and the estimates the claims rest on
# ---------------------------------------------------------------------------


def _seed_list(first: int, k: int) -> list[int]:
    first = check_int(first, "seed", 0)
    return list(range(first, first + check_int(k, "seeds", 2)))


def run_network_bias_seeds(config: NetworkConfig, seed: int = 0, workers: int | None = None) -> list[dict]:
    """:func:`run_network_bias` for seeds ``seed, …, seed + config.seeds − 1`` (a pool of workers)."""
    if not isinstance(config, NetworkConfig):
        raise TypeError(f"config must be a NetworkConfig; got {type(config).__name__}")
    from sparsebook.seeding import over_seeds

    return over_seeds(network_bias_seed, _seed_list(seed, config.seeds), config, workers=workers)


def run_guidance_seeds(config: GuidanceConfig, seed: int = 0, workers: int | None = None) -> list[dict]:
    """:func:`run_guidance` for seeds ``seed, …, seed + config.seeds − 1`` (a pool of workers)."""
    if not isinstance(config, GuidanceConfig):
        raise TypeError(f"config must be a GuidanceConfig; got {type(config).__name__}")
    from sparsebook.seeding import over_seeds

    return over_seeds(guidance_seed, _seed_list(seed, config.seeds), config, workers=workers)


def estimator_estimates(r: dict) -> dict:
    """The Monte Carlo estimates of :func:`run_estimator`'s output that the claims rest on.

    - ``mc_minus_exact[b]``: Monte Carlo bits − exact (Imhof) bits at depth ``b`` (se of the MC bits);
    - ``saddle_minus_imhof``: the largest |saddlepoint − Imhof| bits over ``imhof_levels`` (exact);
    - ``abs_rel_err[b]``: mean over repeats of ``|fitted/exact − 1|`` at depth ``b`` (``from_samples``);
    - ``rmse``: RMS error (bits) at ``tail_bits`` for each n; ``rmse_steps``: differences between
      neighbouring n (independent repeats, so independent estimates);
    - ``spread_slope``: log-log slope of the spread of the estimate against n.
    """
    from sparsebook.inductive_bias.kernels import independent_difference, log_slope_estimate, rms_estimate
    from sparsebook.stats import exact, from_samples, monte_carlo

    mc = {}
    for c in r["mc_checks"]:
        mc[round(c["exact_bits"])] = monte_carlo(c["mc_bits"] - c["imhof_bits"], c["se_bits"], c["hits"])
    rel = {float(b): from_samples(np.abs(r["depth_rel_err"][:, i])) for i, b in enumerate(r["tail_levels"])}
    rmse = [rms_estimate(row) for row in r["sq_err"]]
    return {"mc_minus_exact": mc, "abs_rel_err": rel, "rmse": rmse,
            # rounded to 1e-6 bits: the quadrature's own error is far below, float noise too
            "saddle_minus_imhof": exact(round(float(np.max(np.abs(r["saddle_minus_imhof"]))), 6)),
            "rmse_steps": [independent_difference(b, a) for a, b in zip(rmse[:-1], rmse[1:])],
            "spread_slope": log_slope_estimate(r["sample_sizes"], r["spread_bits"], r["repeats"])}


def dimension_estimates(r: dict) -> dict:
    """Mean bits per dimension over tasks and the paired steps between neighbouring dimensions."""
    from sparsebook.stats import from_seeds, steps

    b = np.asarray(r["bits"], dtype=float)        # (dims, tasks)
    out = {"bits": {int(d): from_seeds(b[i]) for i, d in enumerate(r["dims"])}, "steps": steps(b.T)}
    if "bits_sine" in r:
        bs = np.asarray(r["bits_sine"], dtype=float)
        out["bits_sine"] = {int(d): from_seeds(bs[i]) for i, d in enumerate(r["dims"])}
        out["steps_sine"] = steps(bs.T)
    return out


def network_estimates(results: list[dict]) -> dict:
    """Estimates over seeds from :func:`run_network_bias_seeds`: per architecture and per amplitude.

    ``gap`` / ``gap_ml``: kernel bits − network bits at the base architecture's median MSE for the
    kernel at amplitude 1 and at the fitted amplitude; ``amplitude_gap[a]``: the same for each amplitude
    of the sweep.
    """
    from sparsebook.stats import from_seeds

    if not results:
        raise ValueError("results must hold one run per seed")
    base = [next(x for x in r["rows"] if (x["width"], x["depth"]) == tuple(r["base"])) for r in results]
    net_bits = np.array([b["network_bits"] for b in base])
    archs = [(x["width"], x["depth"]) for x in results[0]["rows"]]

    def per_arch(key):
        return {a: from_seeds([r["rows"][i][key] for r in results]) for i, a in enumerate(archs)}

    return {
        "gap": from_seeds(np.array([b["kernel_bits"] for b in base]) - net_bits),
        "gap_ml": from_seeds(np.array([b["kernel_bits_ml"] for b in base]) - net_bits),
        "ml_amplitude": from_seeds([r["ml_amplitude"] for r in results]),
        "kernel_mean_mse": from_seeds([r["kernel_mean_mse"] for r in results]),
        "kernel_mean_mse_ml": from_seeds([r["kernel_mean_mse_ml"] for r in results]),
        "kernel_mean_fn_mse": from_seeds([r["kernel_mean_fn_mse"] for r in results]),
        "amplitude_gap": {float(a): from_seeds(np.array([r["amplitude_bits"][j] for r in results]) - net_bits)
                          for j, a in enumerate(results[0]["amplitudes"])},
        "median_mse": per_arch("median_mse"), "train_mse": per_arch("train_mse"),
        "kernel_bits": per_arch("kernel_bits"), "kernel_bits_ml": per_arch("kernel_bits_ml"),
        "network_bits": per_arch("network_bits"),
        "test_size_gap": {int(m): from_seeds([r["test_size_gap"][j] for r in results])
                          for j, m in enumerate(results[0]["test_sizes"])},
    }


def guidance_estimates(results: list[dict]) -> dict:
    """Estimates over seeds from :func:`run_guidance_seeds`: per run and the paired differences the claims use.

    ``rise_reduction`` = rise(none) − rise(untrained) (nats); ``cka_gain`` = held-out CKA to the
    untrained guide, guided minus unguided; ``acc_gain_trained`` / ``acc_gain_untrained`` = test
    accuracy, guided minus unguided.
    """
    from sparsebook.stats import from_seeds, paired_difference

    if not results:
        raise ValueError("results must hold one run per seed")

    def col(run, key):
        return np.array([r["runs"][run][key] for r in results], dtype=float)

    out = {"per_run": {name: {k: from_seeds(col(name, k)) for k in
                              ("test_loss", "min_test_loss", "rise", "test_acc", "cka_untrained", "cka_trained")}
                       for name in results[0]["runs"]},
           "guide_test_acc": from_seeds([r["guide_test_acc"] for r in results]),
           "rise_reduction": paired_difference(col("none", "rise"), col("untrained", "rise")),
           "cka_gain": paired_difference(col("untrained", "cka_untrained"), col("none", "cka_untrained")),
           "acc_gain_trained": paired_difference(col("trained", "test_acc"), col("none", "test_acc")),
           "acc_gain_untrained": paired_difference(col("untrained", "test_acc"), col("none", "test_acc")),
           "loss_reduction_untrained": paired_difference(col("none", "test_loss"), col("untrained", "test_loss"))}
    return out


# ---------------------------------------------------------------------------
# active multi-task representation learning via the Lasso (Wang et al. 2023)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiTaskConfig:
    """Synthetic multi-task linear regression with a planted shared representation.

    ``y = xᵀ B w_t + σ ε`` with ``x ~ N(0, I_d)``, ``B`` (d × k) with orthonormal columns, source
    tasks ``w_t = e_t`` (``T = k`` sources, each revealing one direction of the representation) and a
    target ``w_0 = Σ_t ν_t w_t`` with a sparse ``ν`` (``relevance``; the other sources are irrelevant).
    The pilot size follows a rule fixed in advance: each pilot estimate ``β̂_t = Xᵀy/n`` has
    ``E‖β̂_t − β_t‖² ≈ d(‖β_t‖² + σ²)/n``, at most a quarter of ``‖β_t‖² = 1``: ``n_pilot = 4d(1 + σ²)``.
    The Lasso penalty is the universal threshold of the target estimate's noise in scikit-learn's
    convention, ``α = σ/√n_target · √(2 ln T)/T``.  The second-stage budget equals the pilot's total.
    """

    d: int = 30
    k: int = 10
    relevance: tuple = (1.0, 0.7)
    sigma: float = 1.0
    n_target: int = 50
    seeds: int = 10

    @property
    def n_pilot(self) -> int:
        return int(math.ceil(4 * self.d * (1 + self.sigma ** 2)))

    @property
    def budget(self) -> int:
        return self.k * self.n_pilot

    @property
    def alpha(self) -> float:
        return self.sigma / math.sqrt(self.n_target) * math.sqrt(2 * math.log(self.k)) / self.k

    @classmethod
    def preset(cls, scale: str = "ci") -> "MultiTaskConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(d=60, k=20, n_target=100, seeds=40)


def run_multitask(config: MultiTaskConfig, seed: int = 0) -> dict:
    """Target excess risk after spending the source budget by Lasso relevance vs evenly.

    Stage 1: ``n_pilot`` samples per source give moment estimates ``β̂_t = Xᵀy/n`` and a pilot
    representation ``B̂`` (the top-k left singular vectors of ``[β̂_t]``); the target samples give
    ``ŵ_0`` by least squares in it, and ``ν̂`` = :func:`lasso_relevance` of ``ŵ_0`` on
    ``Ŵ = B̂ᵀ[β̂_t]`` (the A-MTRL scheme of Chen et al. 2022 with the ν¹ estimate of Wang et al. 2023).
    Stage 2: the budget is split ∝ |ν̂| (``lasso``), evenly (``uniform``) or ∝ |ν| (``known``) and added to each source's
    pilot samples; ``β̂_t`` are re-estimated from all of them, ``B̂`` is their top-k span, and the
    target is fitted by least squares in it on the same target samples.  Returns the excess risks
    ``‖B̂ŵ − β_0‖²`` (the target's excess test MSE for isotropic inputs) and the allocations.
    """
    from sparsebook.inductive_bias.kernels import allocate_samples, lasso_relevance

    if not isinstance(config, MultiTaskConfig):
        raise TypeError(f"config must be a MultiTaskConfig; got {type(config).__name__}")
    d, k = check_int(config.d, "d", 2), check_int(config.k, "k", 2)
    if k > d:
        raise ValueError(f"k must be <= d; got k={k}, d={d}")
    if not 1 <= len(config.relevance) <= k:
        raise ValueError(f"relevance must have between 1 and k = {k} entries")
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    b = np.linalg.qr(rng.standard_normal((d, k)))[0]
    nu = np.zeros(k)
    nu[:len(config.relevance)] = config.relevance
    beta0 = b @ nu

    def draw(beta, n):
        x = rng.standard_normal((n, d))
        return x, x @ beta + config.sigma * rng.standard_normal(n)

    pilot = [draw(b[:, t], config.n_pilot) for t in range(k)]
    xt, yt = draw(beta0, config.n_target)
    est = np.stack([x.T @ y / len(y) for x, y in pilot], axis=1)
    bp = np.linalg.svd(est, full_matrices=False)[0][:, :k]
    w0 = np.linalg.lstsq(xt @ bp, yt, rcond=None)[0]
    nu_hat = lasso_relevance(bp.T @ est, w0, config.alpha)
    out = {"nu_hat": nu_hat, "nu": nu}
    for name, weights in (("lasso", nu_hat), ("uniform", np.ones(k)), ("known", nu)):
        n_t = allocate_samples(weights, config.budget)
        cols = []
        for t in range(k):
            x, y = pilot[t]
            if n_t[t]:
                x2, y2 = draw(b[:, t], int(n_t[t]))
                x, y = np.vstack([x, x2]), np.concatenate([y, y2])
            cols.append(x.T @ y / len(y))
        basis = np.linalg.svd(np.stack(cols, axis=1), full_matrices=False)[0][:, :k]
        w = np.linalg.lstsq(xt @ basis, yt, rcond=None)[0]
        out[name] = float(np.sum((basis @ w - beta0) ** 2))
        out[f"{name}_allocation"] = n_t
    return out


def run_multitask_seeds(config: MultiTaskConfig, seed: int = 0) -> list[dict]:
    """:func:`run_multitask` for seeds ``seed, …, seed + config.seeds − 1`` (NumPy, one process: cheap)."""
    if not isinstance(config, MultiTaskConfig):
        raise TypeError(f"config must be a MultiTaskConfig; got {type(config).__name__}")
    return [run_multitask(config, s) for s in _seed_list(seed, config.seeds)]


def multitask_estimates(results: list[dict]) -> dict:
    """Estimates over seeds: mean excess risks, the paired ``log(uniform / lasso)`` (> 0: the Lasso
    allocation wins) and the share of the budget the Lasso gives the relevant sources."""
    from sparsebook.stats import from_seeds, paired_difference

    if not results:
        raise ValueError("results must hold one run per seed")
    lasso = np.array([r["lasso"] for r in results])
    uni = np.array([r["uniform"] for r in results])
    share = [r["lasso_allocation"][r["nu"] != 0].sum() / max(r["lasso_allocation"].sum(), 1) for r in results]
    known = np.array([r["known"] for r in results])
    return {"lasso": from_seeds(lasso), "uniform": from_seeds(uni), "known": from_seeds(known),
            "log_ratio_known": paired_difference(np.log(lasso), np.log(known)),
            "log_ratio": paired_difference(np.log(uni), np.log(lasso)),
            "relevant_share": from_seeds(share)}
