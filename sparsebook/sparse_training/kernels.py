"""Sparse training, kernels: masks, scores, penalties and metrics (pure math, no training, no plotting).

Every function works on PyTorch tensors with optional leading batch dimensions (one slice per
seed), validates its arguments and states its formula and source in its docstring.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from sparsebook.validate import check_int, check_real


def _tensor(x, name: str, min_dim: int = 1, finite: bool = True) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s); got shape {tuple(x.shape)}")
    if finite and x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite")
    return x


def n_keep(n: int, sparsity: float) -> int:
    """Number of entries kept out of ``n`` at ``sparsity``: ``n − ⌊s·n + ½⌋`` (removal rounded half up)."""
    n = check_int(n, "n", 0)
    s = check_real(sparsity, "sparsity", 0, 1)
    return n - math.floor(s * n + 0.5)


# ---------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------
def row_topk_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``n_keep(d, s)`` largest scores of every row (last dimension), by ``torch.topk``.

    The per-output-row comparison group of Wanda (Sun et al. 2024, Eq. 1) and of DSnoT.  Exactly
    ``n_keep`` entries are kept; among tied scores at the cut, ``topk`` decides (deterministically).
    ``scores``: ``[..., rows, d]`` (not NaN: not checked, this runs every training step); returns a
    boolean mask of the same shape.
    """
    scores = _tensor(scores, "scores", finite=False)
    keep = n_keep(scores.shape[-1], sparsity)
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if keep:
        mask.scatter_(-1, scores.topk(keep, dim=-1, sorted=False).indices, True)
    return mask


def layer_topk_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``n_keep(rows·cols, s)`` largest scores of each matrix (last two dimensions) of ``scores``.

    ``scores``: ``[..., rows, cols]``; returns a boolean mask of the same shape (ties as :func:`row_topk_mask`).
    """
    scores = _tensor(scores, "scores", 2, finite=False)
    flat = scores.reshape(*scores.shape[:-2], -1)
    return row_topk_mask(flat, sparsity).reshape(scores.shape)


def smallest_magnitude_mask(w: torch.Tensor, count: int) -> torch.Tensor:
    """SaRA's trainable set: the ``count`` smallest ``|w|`` of each matrix (Hu et al. 2024, Sec. 3).

    ``w``: ``[..., rows, cols]``; returns a boolean mask with exactly ``count`` True per matrix.
    """
    w = _tensor(w, "w", 2)
    n = w.shape[-1] * w.shape[-2]
    count = check_int(count, "count", 0, n)
    return layer_topk_mask(-w.abs(), 1.0 - count / n) if n else torch.zeros_like(w, dtype=torch.bool)


def wanda_scores(w: torch.Tensor, x_norm: torch.Tensor) -> torch.Tensor:
    """Wanda importance ``S_ij = |W_ij|·‖X_j‖₂`` (Sun et al. 2024, Eq. 1).

    ``w``: ``[..., out, in]``; ``x_norm``: ``[..., in]``, the norm of input feature j over calibration rows.
    """
    w = _tensor(w, "w", 2)
    x_norm = _tensor(x_norm, "x_norm")
    if x_norm.shape[-1] != w.shape[-1]:
        raise ValueError(f"x_norm must have {w.shape[-1]} features (w's inputs); got {x_norm.shape[-1]}")
    if (x_norm < 0).any():
        raise ValueError("x_norm must be >= 0 (a norm)")
    return w.abs() * x_norm.unsqueeze(-2)


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``hard`` in the forward pass (exactly), the gradient of ``soft`` in the backward pass: ``hard + (soft − soft.detach())``."""
    return hard.to(soft.dtype) + (soft - soft.detach())


# ---------------------------------------------------------------------------
# DSnoT: training-free prune-and-grow (Zhang et al. 2024, Sec. 3)
# ---------------------------------------------------------------------------
def reconstruction_gap(w: torch.Tensor, mask: torch.Tensor, x_mean: torch.Tensor) -> torch.Tensor:
    """Expected reconstruction error of each output: ``Δ_r = Σ_j (1 − M_rj) W_rj E[X_j]`` (DSnoT, Eq. 3).

    The dense output minus the sparse output, averaged over calibration inputs.
    ``w``, ``mask``: ``[..., out, in]``; ``x_mean``: ``[..., in]``; returns ``[..., out]``.
    """
    w = _tensor(w, "w", 2)
    if mask.shape != w.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of w's shape {tuple(w.shape)}")
    return ((~mask) * w * x_mean.unsqueeze(-2)).sum(-1)


def dsnot(w: torch.Tensor, mask: torch.Tensor, x_mean: torch.Tensor, x_var: torch.Tensor, x_norm: torch.Tensor,
          cycles: int = 50, tol: float = 0.0) -> torch.Tensor:
    """DSnoT mask update without weight updates (Zhang et al. 2024, Sec. 3.2), every row in parallel.

    With ``c_rj = W_rj E[X_j]`` and the gap ``Δ_r = Σ_{j pruned} c_rj`` (:func:`reconstruction_gap`),
    each cycle proposes for every row r one swap:

    - **grow** the pruned weight that moves Δ towards 0 the most per unit of input variance,
      ``j* = argmax_{j pruned, sign(c_rj) = sign(Δ_r)} |c_rj| / Var(X_j)`` (Eq. 5);
    - **prune** the kept weight with the smallest Wanda score ``|W_rk|·‖X_k‖`` among those whose
      removal moves Δ towards 0, ``sign(c_rk) = −sign(Δ_r)`` (Eq. 6).

    The swap is made while ``|Δ_r| > tol·|Δ_r⁽⁰⁾|`` and the gap after it keeps the sign of the
    initial gap (the authors' stopping rule: a row whose next swap would overshoot stops for good),
    for at most ``cycles`` cycles.  Every row keeps its number of weights.  Shapes: ``w``, ``mask``
    ``[..., out, in]``; ``x_mean``, ``x_var``, ``x_norm`` ``[..., in]``.  Returns the new mask.
    """
    w = _tensor(w, "w", 2)
    cycles = check_int(cycles, "cycles", 0)
    tol = check_real(tol, "tol", 0, 1)
    for name, v in (("x_mean", x_mean), ("x_var", x_var), ("x_norm", x_norm)):
        _tensor(v, name)
        if v.shape[-1] != w.shape[-1]:
            raise ValueError(f"{name} must have {w.shape[-1]} features; got {v.shape[-1]}")
    if (x_var < 0).any():
        raise ValueError("x_var must be >= 0 (a variance)")
    mask = mask.clone()
    contrib = w * x_mean.unsqueeze(-2)                      # c_rj = W_rj E[X_j]
    grow_score = contrib.abs() / (x_var.unsqueeze(-2) + 1e-8)
    prune_score = wanda_scores(w, x_norm)
    gap = reconstruction_gap(w, mask, x_mean)
    sign0, gap0 = torch.sign(gap), gap.abs()
    alive = gap0 > 0
    inf = torch.tensor(float("inf"), dtype=w.dtype, device=w.device)
    for _ in range(cycles):
        if not alive.any():
            break
        sgn = torch.sign(gap).unsqueeze(-1)
        g_val = torch.where((~mask) & (torch.sign(contrib) == sgn), grow_score, -inf)
        j = g_val.argmax(-1, keepdim=True)
        p_val = torch.where(mask & (torch.sign(contrib) == -sgn), prune_score, inf)
        k = p_val.argmin(-1, keepdim=True)
        c_j, c_k = contrib.gather(-1, j).squeeze(-1), contrib.gather(-1, k).squeeze(-1)
        after = gap - c_j + c_k
        alive = (alive & torch.isfinite(g_val.gather(-1, j)).squeeze(-1) & torch.isfinite(p_val.gather(-1, k)).squeeze(-1)
                 & (gap.abs() > tol * gap0) & (torch.sign(after) == sign0))
        go = alive.unsqueeze(-1)
        mask.scatter_(-1, j, mask.gather(-1, j) | go)
        mask.scatter_(-1, k, mask.gather(-1, k) & ~go)
        gap = torch.where(alive, after, gap)
    return mask


# ---------------------------------------------------------------------------
# PST and SaRA / LoRA
# ---------------------------------------------------------------------------
def pst_importance(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """PST importance ``S = |W| + A B + r 1ᵀ + 1 cᵀ`` (Li et al. 2022, Eqs. 6-9).

    ``|W|`` is the data-free part; the data-driven part is low-rank (``A``: ``[..., out, k]``,
    ``B``: ``[..., k, in]``) plus structured (a row vector ``r``: ``[..., out]`` and a column
    vector ``c``: ``[..., in]``).  Trainable parameters: ``k(out + in) + out + in`` per matrix.
    """
    w = _tensor(w, "w", 2)
    if a.shape[-2] != w.shape[-2] or b.shape[-1] != w.shape[-1] or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"a must be [..., {w.shape[-2]}, k] and b [..., k, {w.shape[-1]}]; got {tuple(a.shape)}, {tuple(b.shape)}")
    if r.shape[-1] != w.shape[-2] or c.shape[-1] != w.shape[-1]:
        raise ValueError(f"r must have {w.shape[-2]} entries and c {w.shape[-1]}")
    return w.abs() + a @ b + r.unsqueeze(-1) + c.unsqueeze(-2)


def lora_rank_for_budget(rows: int, cols: int, budget: int) -> int:
    """The largest LoRA rank whose ``rank·(rows + cols)`` trainable parameters fit in ``budget``."""
    rows, cols = check_int(rows, "rows", 1), check_int(cols, "cols", 1)
    budget = check_int(budget, "budget", rows + cols)
    return budget // (rows + cols)


def nuclear_norm(x: torch.Tensor) -> torch.Tensor:
    """``‖X‖_* = Σ σ_i(X)`` of each matrix (last two dims): SaRA's low-rank penalty (Hu et al. 2024, Eq. 4)."""
    x = _tensor(x, "x", 2)
    return torch.linalg.svdvals(x).sum(-1)


# ---------------------------------------------------------------------------
# Sparse-IFT: iso-FLOP sparse wide layers (Saxena et al. 2024, Sec. 2)
# ---------------------------------------------------------------------------
def sparse_wide_factor(sparsity: float) -> float:
    """Width multiplier of Sparse Wide at equal FLOPs: ``k = 1/√(1 − s)`` (both sides of a hidden layer widen)."""
    s = check_real(sparsity, "sparsity", 0, 1, high_open=True)
    return 1.0 / math.sqrt(1.0 - s)


def mlp_flops(sizes, densities) -> int:
    """Forward multiply-adds ×2 of one example through an MLP: ``2 Σ_ℓ round(d_ℓ·n_{ℓ−1}·n_ℓ)`` (biases ignored).

    ``sizes``: layer widths ``[n_0, …, n_L]``; ``densities``: ``L`` fractions of kept weights.  Training
    costs three times this per example (forward, two backward products), so equal forward FLOPs
    mean equal training FLOPs at equal steps and batch size.
    """
    sizes = [check_int(n, "sizes[i]", 1) for n in sizes]
    densities = [check_real(d, "densities[i]", 0, 1) for d in densities]
    if len(densities) != len(sizes) - 1:
        raise ValueError(f"densities must have {len(sizes) - 1} entries (one per layer); got {len(densities)}")
    return 2 * sum(round(d * a * b) for d, a, b in zip(densities, sizes[:-1], sizes[1:]))


# ---------------------------------------------------------------------------
# WGSEF: the sparse envelope of group norms (Refael et al. 2024)
# ---------------------------------------------------------------------------
def sparse_envelope(x: torch.Tensor, k: int) -> torch.Tensor:
    """The sparse envelope function ``S_k(x) = (½‖·‖² + δ_{‖·‖₀ ≤ k})**(x)`` on the last dimension.

    It equals ``½‖x‖²_{(k)}``, half the squared k-support norm (Argyriou et al. 2012, Prop. 2.1):
    with ``z = |x|`` sorted decreasingly and ``r ∈ {0, …, k−1}`` the unique index with
    ``z_{k−r−1} > (1/(r+1)) Σ_{i ≥ k−r} z_i ≥ z_{k−r}`` (``z_0 = +∞``),
    ``‖x‖²_{(k)} = Σ_{i < k−r} z_i² + (Σ_{i ≥ k−r} z_i)²/(r+1)`` (1-based indices).
    ``S_k(x) = ½‖x‖²`` exactly when ``x`` has at most ``k`` nonzeros, and is larger otherwise.
    """
    x = _tensor(x, "x")
    d = x.shape[-1]
    k = check_int(k, "k", 1, d)
    z = torch.sort(x.abs(), dim=-1, descending=True).values
    tail = torch.flip(torch.cumsum(torch.flip(z, [-1]), -1), [-1])   # tail[i] = Σ_{j ≥ i} z_j (0-based)
    head_sq = torch.cumsum(z * z, -1)
    chosen = torch.zeros(x.shape[:-1], dtype=torch.bool, device=x.device)
    out = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    for r in range(k):
        i = k - r - 1                                   # 0-based start of the averaged tail
        avg = tail[..., i] / (r + 1)
        upper = z[..., i - 1] if i >= 1 else torch.full_like(avg, float("inf"))
        ok = (upper > avg) & (avg >= z[..., i]) & ~chosen
        val = (head_sq[..., i - 1] if i >= 1 else 0.0) + tail[..., i] ** 2 / (r + 1)
        out = torch.where(ok, val, out)
        chosen = chosen | ok
    # ties at the boundary can miss the strict inequality: fall back to the r = k−1 formula (continuous)
    out = torch.where(chosen, out, tail[..., 0] ** 2 / k)
    return 0.5 * out


def group_norms(w: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted norms of the groups of ``w`` (one group a row, last dimension): ``v_g = ω_g ‖w_g‖₂``.

    ``w``: ``[..., groups, size]``; ``weights`` ``ω``: ``[groups]`` (default ``√size``, the usual group-lasso weight).
    """
    w = _tensor(w, "w", 2)
    if weights is None:
        weights = torch.full((w.shape[-2],), math.sqrt(w.shape[-1]), dtype=w.dtype, device=w.device)
    if weights.shape[-1] != w.shape[-2] or (weights < 0).any():
        raise ValueError(f"weights must hold {w.shape[-2]} non-negative numbers")
    return weights * torch.sqrt((w * w).sum(-1) + 1e-12)


# ---------------------------------------------------------------------------
# search: DARTS mixing, node masks
# ---------------------------------------------------------------------------
def random_node_masks(n: int, keep: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random node configurations: boolean ``[count, n]``, each with exactly ``keep`` nodes kept."""
    n, keep, count = check_int(n, "n", 1), check_int(keep, "keep", 0, n), check_int(count, "count", 1)
    out = np.zeros((count, n), dtype=bool)
    for i in range(count):
        out[i, rng.choice(n, size=keep, replace=False)] = True
    return out


# ---------------------------------------------------------------------------
# variational inference and calibration
# ---------------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, prior_sigma: float) -> torch.Tensor:
    """Elementwise ``KL(N(μ, σ²) ‖ N(0, σ_p²)) = log(σ_p/σ) + (σ² + μ²)/(2σ_p²) − ½``."""
    mu, sigma = _tensor(mu, "mu", 0), _tensor(sigma, "sigma", 0)
    if (sigma <= 0).any():
        raise ValueError("sigma must be > 0")
    sp = check_real(prior_sigma, "prior_sigma", 0, None, low_open=True)
    return math.log(sp) - torch.log(sigma) + (sigma ** 2 + mu ** 2) / (2 * sp * sp) - 0.5


def ssvi_swap(mu: torch.Tensor, sigma: torch.Tensor, mask: torch.Tensor, n_swap: int,
              generator: torch.Generator) -> torch.Tensor:
    """SSVI's removal-and-addition step (Li et al. 2024, Sec. 3.3) on each matrix (last two dims).

    Remove the ``n_swap`` active weights with the smallest signal-to-noise ratio ``|μ|/σ`` (the
    weight-distribution criterion), and activate ``n_swap`` inactive ones drawn uniformly
    (``generator``).  The number of active weights is unchanged.  Returns the new mask.
    """
    mask = mask.clone()
    flat = mask.reshape(-1, mask.shape[-2] * mask.shape[-1])
    snr = (mu.abs() / sigma).reshape(flat.shape)
    n_swap = check_int(n_swap, "n_swap", 0)
    for i in range(flat.shape[0]):
        act = torch.nonzero(flat[i]).squeeze(-1)
        ina = torch.nonzero(~flat[i]).squeeze(-1)
        m = min(n_swap, len(act), len(ina))
        if m == 0:
            continue
        drop = act[torch.argsort(snr[i, act], stable=True)[:m]]
        add = ina[torch.randperm(len(ina), generator=generator)[:m].to(ina.device)]
        flat[i, drop] = False
        flat[i, add] = True
    return flat.reshape(mask.shape)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> torch.Tensor:
    """ECE with ``bins`` equal-width confidence bins (Guo et al. 2017, Eq. 3), per leading slice.

    ``ECE = Σ_b (|B_b|/n) |acc(B_b) − conf(B_b)|``, confidence = max probability.
    ``probs``: ``[..., n, classes]`` (rows sum to 1); ``labels``: ``[..., n]``.  Returns ``[...]``.
    """
    probs = _tensor(probs, "probs", 2)
    bins = check_int(bins, "bins", 1)
    if labels.shape != probs.shape[:-1]:
        raise ValueError(f"labels must have shape {tuple(probs.shape[:-1])}; got {tuple(labels.shape)}")
    if not torch.allclose(probs.sum(-1), torch.ones((), dtype=probs.dtype, device=probs.device), atol=1e-4):
        raise ValueError("probs rows must sum to 1")
    conf, pred = probs.max(-1)
    correct = (pred == labels).to(probs.dtype)
    idx = torch.clamp((conf * bins).long(), max=bins - 1)
    onehot = torch.nn.functional.one_hot(idx, bins).to(probs.dtype)          # [..., n, bins]
    n = probs.shape[-2]
    gap = ((correct.unsqueeze(-1) - conf.unsqueeze(-1)) * onehot).sum(-2)    # Σ_b (acc − conf)·|B_b|
    return gap.abs().sum(-1) / n


# ---------------------------------------------------------------------------
# SparK: patch masks (Tian et al. 2023, Sec. 3.1)
# ---------------------------------------------------------------------------
def patch_mask(batch: int, grid: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Random patch masks ``[batch, grid, grid]`` (True = visible), each hiding exactly ``⌊ratio·grid² + ½⌋`` patches."""
    batch, grid = check_int(batch, "batch", 1), check_int(grid, "grid", 1)
    ratio = check_real(ratio, "ratio", 0, 1, high_open=True)
    n = grid * grid
    hide = math.floor(ratio * n + 0.5)
    order = torch.argsort(torch.rand(batch, n, generator=generator), dim=-1)
    vis = torch.ones(batch, n, dtype=torch.bool)
    vis.scatter_(1, order[:, :hide], False)
    return vis.reshape(batch, grid, grid)


def upsample_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Repeat every patch of a ``[..., g, g]`` mask ``factor`` times along both axes: ``[..., g·f, g·f]``."""
    factor = check_int(factor, "factor", 1)
    return mask.repeat_interleave(factor, -1).repeat_interleave(factor, -2)


# ---------------------------------------------------------------------------
# linear probe
# ---------------------------------------------------------------------------
def ridge_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, classes: int,
                alpha: float = 1.0) -> torch.Tensor:
    """Predicted test classes of a ridge classifier, batched over leading dimensions.

    As scikit-learn's ``RidgeClassifier``: targets ``T ∈ {−1, 1}^{n×C}``, inputs and targets centred on
    the training means (intercept), ``W = (XᵀX + αI)⁻¹ XᵀT``, prediction ``argmax_c (x − x̄)W + t̄``.
    ``x_train``: ``[..., n, d]``; ``y_train``: ``[..., n]`` ints in ``[0, classes)``; ``x_test``: ``[..., m, d]``.
    Returns ``[..., m]`` (int64).  Solved in float64.
    """
    x_train, x_test = _tensor(x_train, "x_train", 2), _tensor(x_test, "x_test", 2)
    classes = check_int(classes, "classes", 2)
    alpha = check_real(alpha, "alpha", 0, None, low_open=True)
    if x_train.shape[-1] != x_test.shape[-1] or y_train.shape != x_train.shape[:-1]:
        raise ValueError("x_train [..., n, d], y_train [..., n] and x_test [..., m, d] must agree")
    if int(y_train.min()) < 0 or int(y_train.max()) >= classes:
        raise ValueError(f"y_train must hold class indices in [0, {classes})")
    xtr, xte = x_train.double(), x_test.double()
    t = 2.0 * torch.nn.functional.one_hot(y_train, classes).double() - 1.0
    mx, mt = xtr.mean(-2, keepdim=True), t.mean(-2, keepdim=True)
    xc = xtr - mx
    gram = xc.transpose(-1, -2) @ xc + alpha * torch.eye(xtr.shape[-1], dtype=torch.float64, device=xtr.device)
    w = torch.linalg.solve(gram, xc.transpose(-1, -2) @ (t - mt))
    return ((xte - mx) @ w + mt).argmax(-1)
