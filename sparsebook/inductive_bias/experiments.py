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
from scipy import stats

from sparsebook.inductive_bias.kernels import (ScaledNcx2, _finite_array, _kernel_bits_at, _nll, fit_scaled_ncx2,
                                               gaussian_test_loss, gp_posterior, guidance_penalty, kernel_test_loss,
                                               layer_pairs, linear_cka, median_lengthscale, rbf_kernel)
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import make_optimizer, run_steps
from sparsebook.validate import check_int, check_real


# ---------------------------------------------------------------------------
# neural-network hypothesis spaces: many networks trained at once
# ---------------------------------------------------------------------------


def train_mlp_ensemble(x_train, y_train, x_test, y_test, *, n_models: int, width: int, depth: int,
                       steps: int, lr: float = 1e-3, seed: int = 0, device: str | None = None) -> np.ndarray:
    """Test MSEs of ``n_models`` ReLU MLPs trained from independent initializations, in one batch.

    Each network is ``d → width → … (depth hidden layers) → k``, PyTorch's default
    initialization, trained by full-batch Adam on the MSE to ``y_train`` (one-hot
    targets for classification, as in the authors' code).  The ensemble is one set
    of batched weight tensors ``(n_models, fan_in, fan_out)``; Adam acts per element, so
    this equals training each network alone.

    Shapes: x (n, d), y (n, k).  Returns ``(n_models,)`` test MSEs ``‖f − y‖²/(n_test·k)``.
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
    return out.cpu().numpy().astype(np.float64)


# ---------------------------------------------------------------------------
# the networks of the guidance experiment
# ---------------------------------------------------------------------------


def _nets():

    from torch import nn

    class FCN(nn.Module):
        """Target: 64 → width (× depth, ReLU) → 10; ``forward`` returns logits and hidden layers."""

        def __init__(self, width: int, depth: int):
            super().__init__()
            sizes = [64] + [width] * depth
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.out = nn.Linear(width, 10)

        def forward(self, x):
            feats = []
            h = x.reshape(len(x), -1)
            for lin in self.hidden:
                h = torch.relu(lin(h))
                feats.append(h)
            return self.out(h), feats

    class CNN(nn.Module):
        """Guide: 1×8×8 → conv3×3(c) → ReLU → conv3×3(2c) → ReLU → maxpool 2 → FC 64 → ReLU → 10."""

        def __init__(self, channels: int):
            super().__init__()
            self.c1 = nn.Conv2d(1, channels, 3, padding=1)
            self.c2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
            self.fc = nn.Linear(2 * channels * 16, 64)
            self.out = nn.Linear(64, 10)

        def forward(self, x):
            h1 = torch.relu(self.c1(x.reshape(len(x), 1, 8, 8)))
            h2 = torch.nn.functional.max_pool2d(torch.relu(self.c2(h1)), 2)
            h3 = torch.relu(self.fc(h2.reshape(len(x), -1)))
            return self.out(h3), [h1, h2, h3]

    return FCN, CNN


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
    n_mc: int = 100_000            # Monte Carlo reference for the exact tail
    n_fit: int = 1000              # sampled hypotheses for the practical estimator
    tail_bits: float = 20.0        # where the fitted tail is compared with the exact one (bits)
    sample_sizes: tuple = (50, 100, 200, 400, 800)
    repeats: int = 100
    convergence_method: str = "moments"  # fit used in the convergence study
    min_hits: int = 1000           # MC points used for comparison need at least this many hits

    @classmethod
    def preset(cls, scale: str = "ci") -> "EstimatorConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=64, n_test=128, n_mc=1_000_000, n_fit=10_000,
                   sample_sizes=(50, 100, 200, 400, 800, 1600, 3200, 6400), repeats=40,
                   convergence_method="mle")



def run_estimator(config: EstimatorConfig, seed: int = 0) -> dict:
    """Check eq. 3 and the estimator on a single-index task in ``config.d`` dimensions.

    Returns a dict with the ε grid, exact/MC/fitted bits, the direct GP-sample check,
    the far-tail comparison and the convergence in the number of sampled hypotheses.
    """
    if not isinstance(config, EstimatorConfig):
        raise TypeError(f"config must be an EstimatorConfig; got {type(config).__name__}")
    rng = seed_everything(seed)
    xtr, ytr, xte, yte = single_index_task(config.d, config.n_train, config.n_test, seed)
    ell = median_lengthscale(xtr)
    mean, cov = gp_posterior(rbf_kernel(xtr, xtr, ell), rbf_kernel(xte, xtr, ell), rbf_kernel(xte, xte, ell), ytr)
    loss = gaussian_test_loss(mean, cov, yte)
    # Monte Carlo by sampling the GP posterior directly (f = μ + C z): checks eq. 3 too
    lam, u = np.linalg.eigh(cov)
    root = u * np.sqrt(np.clip(lam, 0, None))
    mc = np.empty(config.n_mc)
    chunk = 8192
    for s in range(0, config.n_mc, chunk):
        z = rng.standard_normal((min(chunk, config.n_mc - s), len(lam)))
        f = mean[:, 0][None, :] + z @ root.T
        mc[s:s + len(z)] = np.mean((f - yte[None, :]) ** 2, axis=1)
    mc.sort()
    # ε grid: from where MC still has min_hits down to 30 bits (far beyond sampling)
    eps_lo = _kernel_bits_at(loss, 40.0)
    eps_grid = np.geomspace(eps_lo, float(np.quantile(mc, 0.9)), 40)
    exact = loss.bits(eps_grid)
    hits = np.searchsorted(mc, eps_grid, side="right")
    with np.errstate(divide="ignore"):
        mc_bits = -np.log2(hits / config.n_mc)
    resolved = hits >= config.min_hits
    mc_gap = float(np.max(np.abs(exact[resolved] - mc_bits[resolved])))
    # the practical estimator from n_fit sampled hypotheses
    sampled = mc[rng.permutation(config.n_mc)[:config.n_fit]]
    fit = fit_scaled_ncx2(sampled)
    fit_mom = fit_scaled_ncx2(sampled, method="moments")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, nc, _, sc = stats.ncx2.fit(sampled, floc=0)
    fit_default = ScaledNcx2(float(df), float(nc), float(sc), "scipy default")
    fitted = fit.bits(eps_grid)
    eps_tail = _kernel_bits_at(loss, config.tail_bits)
    exact_tail = float(loss.bits(eps_tail))
    fit_tail = float(fit.bits(eps_tail))
    # convergence in the number of sampled hypotheses (spread over independent repeats)
    spread, rmse = [], []
    for n in config.sample_sizes:
        est = np.array([fit_scaled_ncx2(mc[rng.integers(0, config.n_mc, n)], config.convergence_method).bits(eps_tail)
                        for _ in range(config.repeats)])
        spread.append(float(np.std(est, ddof=1)))
        rmse.append(float(np.sqrt(np.mean((est - exact_tail) ** 2))))
    ns = np.asarray(config.sample_sizes, dtype=float)
    slope = float(np.polyfit(np.log(ns), np.log(spread), 1)[0])
    return {
        "eps": eps_grid, "exact_bits": exact, "mc_bits": mc_bits, "mc_resolved": resolved,
        "fitted_bits": fitted, "mc_gap_bits": mc_gap, "fit": fit, "fit_moments": fit_mom,
        "fit_scipy_default": fit_default,
        "nll": {f.method: _nll(f, sampled) for f in (fit, fit_mom, fit_default)},
        "eps_tail": eps_tail, "exact_tail_bits": exact_tail, "fit_tail_bits": fit_tail,
        "default_tail_bits": float(fit_default.bits(eps_tail)),
        "moments_tail_bits": float(fit_mom.bits(eps_tail)),
        "fit_tail_rel_err": abs(fit_tail / exact_tail - 1.0),
        "sample_sizes": ns, "spread_bits": np.asarray(spread), "rmse_bits": np.asarray(rmse),
        "spread_slope": slope, "mc_max_bits": float(math.log2(config.n_mc)),
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
    tasks: int = 4                 # independent tasks (seeds) averaged per dimension

    @classmethod
    def preset(cls, scale: str = "ci") -> "DimensionConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(dims=(8, 16, 32, 64, 128, 256), n_train=256, n_test=256, tasks=20)


def run_dimension(config: DimensionConfig, seed: int = 0) -> dict:
    """Exact inductive bias (bits, eq. 1 with eq. 3) of the RBF-kernel space for each input dimension.

    Returns ``{"dims", "bits" (dims, tasks), "mean_bits" (dims,), "mean_error" (dims,)}``:
    ``mean_error`` is the average test MSE of a random interpolating hypothesis.
    """
    if not isinstance(config, DimensionConfig):
        raise TypeError(f"config must be a DimensionConfig; got {type(config).__name__}")
    seed_everything(seed)
    out = np.empty((len(config.dims), config.tasks))
    mean_err = np.empty_like(out)
    for i, d in enumerate(config.dims):
        for t in range(config.tasks):
            xtr, ytr, xte, yte, ell = gp_task(d, config.n_train, config.n_test, seed=1000 * seed + t)
            loss = kernel_test_loss(xtr, ytr, xte, yte, lengthscale=ell)
            out[i, t] = loss.bits(config.eps)
            mean_err[i, t] = loss.cumulants()[0]
    return {"dims": np.asarray(config.dims), "bits": out, "mean_bits": out.mean(1),
            "mean_error": mean_err.mean(1), "eps": config.eps}


@dataclass(frozen=True)
class NetworkConfig:
    """Kernel bits at trained networks' error levels, and bits within the network space (digits)."""

    n_train: int = 150
    n_test: int = 200
    n_models: int = 24
    steps: int = 150
    lr: float = 2e-3
    base: tuple = (32, 1)                              # (width, depth) of the reference network
    archs: tuple = ((8, 1), (32, 1), (128, 1), (32, 2), (32, 3))

    @classmethod
    def preset(cls, scale: str = "ci") -> "NetworkConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=1000, n_test=400, n_models=256, steps=2000, lr=1e-3, base=(64, 1),
                   archs=((16, 1), (64, 1), (256, 1), (1024, 1), (64, 2), (64, 3), (64, 4)))


def run_network_bias(config: NetworkConfig, seed: int = 0) -> dict:
    """Train ensembles of MLPs on a digits subset (MSE to one-hot) and measure, in bits:

    - ``kernel_bits``: −log₂ P_kernel(e ≤ ε) at ε = each architecture's median test MSE
      (the information the network class supplies relative to the RBF-kernel space);
    - ``network_bits``: −log₂ P_network(e ≤ ε) from the scaled-χ² fit to the ensemble's losses.
    """
    if not isinstance(config, NetworkConfig):
        raise TypeError(f"config must be a NetworkConfig; got {type(config).__name__}")
    from sparsebook.data import digits

    seed_everything(seed)
    data = digits(test_fraction=0.3, seed=seed)
    xtr, xte = data["x_train"][:config.n_train].astype(np.float64), data["x_test"][:config.n_test].astype(np.float64)
    ytr = np.eye(10)[data["y_train"][:config.n_train]]
    yte = np.eye(10)[data["y_test"][:config.n_test]]
    kloss = kernel_test_loss(xtr, ytr, xte, yte)
    rows = []
    for width, depth in config.archs:
        losses = train_mlp_ensemble(xtr, ytr, xte, yte, n_models=config.n_models, width=width, depth=depth,
                                    steps=config.steps, lr=config.lr, seed=seed)
        eps = float(np.median(losses))
        fit = fit_scaled_ncx2(losses)
        rows.append({"width": width, "depth": depth, "median_mse": eps,
                     "min_mse": float(losses.min()), "kernel_bits": float(kloss.bits(eps)),
                     "network_bits": float(fit.bits(eps)), "losses": losses})
    eps_grid = np.geomspace(0.5 * min(r["median_mse"] for r in rows), kloss.cumulants()[0], 40)
    return {"rows": rows, "kernel_mean_mse": kloss.cumulants()[0],
            "kernel_eps": eps_grid, "kernel_bits": kloss.bits(eps_grid),
            "kernel_mean_fn_mse": float(kloss.offset + np.sum(kloss.weights * kloss.noncentralities)),
            "base": config.base}


@dataclass(frozen=True)
class GuidanceConfig:
    """An overfitting FCN on a digits subset, unguided or guided by an untrained / a trained CNN."""

    n_train: int = 100
    n_test: int = 400
    width: int = 256
    depth: int = 4
    channels: int = 8
    steps: int = 300
    guide_steps: int = 300
    batch_size: int = 100
    lr: float = 1e-3
    alpha: float = 1.0
    every: int = 20

    @classmethod
    def preset(cls, scale: str = "ci") -> "GuidanceConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=300, n_test=1000, width=512, depth=6, channels=16, steps=3000, guide_steps=3000)


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
    FCN, CNN = _nets()
    seed_everything(seed + 1)
    guide_untrained = CNN(config.channels)
    seed_everything(seed + 1)
    guide_trained = CNN(config.channels)
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
        target = FCN(config.width, config.depth)
        curve = []

        def callback(model, step):
            logits, _ = model(xte)
            curve.append((step, float(F.cross_entropy(logits, yte))))

        wrapped = _Guided(target, guide, pairs, config.alpha)
        fit(wrapped, xtr, ytr, steps=config.steps, lr=config.lr, batch_size=config.batch_size, seed=seed,
            penalty=(lambda m, step: m.last_penalty) if guide is not None else None,
            callback=lambda m, step: callback(target, step), every=config.every)
        with torch.no_grad():
            logits, _ = target(xte)
            tr_logits, _ = target(xtr)
        runs[name] = {
            "test_loss": float(F.cross_entropy(logits, yte)),
            # counts are exact integers: differences of accuracies are taken on them (a float32 mean
            # turned a gain of exactly 4 of 400 images into 0.00999999)
            "test_correct": int((logits.argmax(1) == yte).sum()),
            "n_test": int(len(yte)),
            "test_acc": int((logits.argmax(1) == yte).sum()) / len(yte),
            "train_acc": int((tr_logits.argmax(1) == ytr).sum()) / len(ytr),
            "cka_untrained": held_out_cka(target, guide_untrained),
            "cka_trained": held_out_cka(target, guide_trained),
            "curve": np.array(curve),
        }
    return {"runs": runs, "guide_test_acc": guide_acc, "pairs": pairs}


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
