"""Essential sparsity: one-shot magnitude pruning, its sharp knee, and sparse training.

Kernels (PyTorch; JAX versions of the magnitude and N:M masks with a parity test):

- :func:`magnitude_mask` keeps the largest ``|w|`` (one global pool or per layer),
  :func:`nm_mask` keeps N of every M consecutive input weights, :func:`random_mask`
  draws a random mask with uniform or ERK layer-wise densities (:func:`erk_densities`).
  Masks are explicit boolean tensors of the weights' shapes (no
  ``torch.nn.utils.prune`` re-parametrization).
- :func:`cubic_sparsity_schedule` is the gradual-pruning schedule of Zhu & Gupta;
  :func:`pruning_window` turns start/end fractions of training into its ``t0``, ``n_steps``.
- :func:`essential_sparsity_point` finds the knee of a performance-versus-sparsity curve.
- :func:`average_state_dicts` makes a sparse model soup (models sharing one mask).

Experiment runners ``run_<experiment>(config, seed=0)`` train small MLPs on
scikit-learn's digits, and (:func:`run_transformer_oneshot`) a tiny Transformer on a
synthetic sorting task (:func:`sort_task`); each takes a frozen config with
``preset(scale)``.  Trained parents are cached per (config, seed) so experiments share them.
"""
from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from sparsebook.data import digits
from sparsebook.lazy_neurons import TinyTransformer
from sparsebook.nn import mlp
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import fit
from sparsebook.validate import check_int, check_real

__all__ = [
    "magnitude_mask", "nm_mask", "random_mask", "erk_densities", "magnitude_mask_jax", "nm_mask_jax",
    "cubic_sparsity_schedule", "pruning_window", "essential_sparsity_point", "hinge_fit", "knee_sharpness",
    "average_state_dicts", "n_pruned", "KNEE_METHODS",
    "ParentConfig", "OneShotConfig", "ArchitectureConfig", "run_architecture", "small_cnn", "ObjectiveConfig", "DataAmountConfig", "EmergenceConfig",
    "RandomPruningConfig", "GradualConfig", "JourneyConfig", "SoupConfig", "NMTrainConfig",
    "train_parent", "run_oneshot", "run_objectives", "run_data_amount", "run_emergence",
    "run_random_pruning", "run_gradual", "run_journey", "run_soups", "run_nm_training",
    "sort_task", "TransformerConfig", "transformer_pool", "run_transformer_oneshot",
]

KNEE_METHODS = ("hinge", "kneedle", "delta")


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------
def _check_sparsity(sparsity, name: str = "sparsity") -> float:
    """A fraction of weights to remove, in [0, 1)."""
    return check_real(sparsity, name, 0, 1, high_open=True)


_check_int = check_int


def _as_items(weights, name: str = "weights"):
    """(keys, list of tensors, rebuild) for a dict or list/tuple of tensors."""
    if isinstance(weights, dict):
        keys = list(weights.keys())
        tensors = [weights[k] for k in keys]
        rebuild = lambda ts: dict(zip(keys, ts))  # noqa: E731
    elif isinstance(weights, (list, tuple)):
        keys = list(range(len(weights)))
        tensors = list(weights)
        kind = type(weights)
        rebuild = lambda ts: kind(ts)  # noqa: E731
    else:
        raise TypeError(f"{name} must be a dict or a list/tuple of tensors; got {type(weights).__name__}")
    if not tensors:
        raise ValueError(f"{name} is empty: there is nothing to prune")
    for k, t in zip(keys, tensors):
        if not hasattr(t, "shape") or not hasattr(t, "dtype"):
            raise TypeError(f"{name}[{k!r}] must be a tensor; got {type(t).__name__}")
        if int(np.prod(t.shape)) == 0:
            raise ValueError(f"{name}[{k!r}] has no elements")
    return keys, tensors, rebuild


def n_pruned(sparsity: float, count: int) -> int:
    """Number of weights a mask at ``sparsity`` removes from ``count``: ``floor(s·count + 1/2)``.

    (round half up, so that ``n_pruned(0.5, 5) == 3`` on every backend.)
    """
    s = _check_sparsity(sparsity)
    count = _check_int(count, "count", 0)
    return int(math.floor(s * count + 0.5))


# ---------------------------------------------------------------------------
# Masks (PyTorch)
# ---------------------------------------------------------------------------
@torch.no_grad()
def magnitude_mask(weights, sparsity: float, scope: str = "global"):
    """Boolean masks that keep the largest-magnitude weights.

    With ``scope="global"`` (Jaiswal et al. 2023, authors' code) all tensors form one
    pool and the ``k = floor(s·N + 1/2)`` smallest ``|w|`` of the ``N`` weights are
    removed; with ``scope="layer"`` each tensor ``l`` loses its own
    ``floor(s·N_l + 1/2)`` smallest.  Ties: weights are ranked by ``|w|`` with a
    stable sort over the concatenation (tensors in the given order, each
    flattened row-major), so among equal magnitudes the earlier weight is removed
    first; the count removed is always exactly ``k``.

    Parameters
    ----------
    weights : dict[str, Tensor] or list/tuple of Tensor (any shapes)
    sparsity : float in [0, 1)
    scope : "global" | "layer"

    Returns
    -------
    masks of the same structure: bool tensors of the weights' shapes (True = kept).
    """
    _, tensors, rebuild = _as_items(weights)
    s = _check_sparsity(sparsity)
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer'; got {scope!r}")
    for t in tensors:
        if not torch.is_tensor(t):
            raise TypeError(f"weights must be torch tensors; got {type(t).__name__}")
        if not torch.isfinite(t).all():
            raise ValueError("weights must be finite (no NaN or inf)")
    if scope == "layer":
        return rebuild([_layer_mask(t, s) for t in tensors])
    flat = torch.cat([t.detach().reshape(-1).abs().float() for t in tensors])
    keep = _keep_largest(flat, n_pruned(s, flat.numel()))
    out, pos = [], 0
    for t in tensors:
        out.append(keep[pos:pos + t.numel()].reshape(t.shape))
        pos += t.numel()
    return rebuild(out)


def _keep_largest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask removing the ``k`` smallest entries of 1-D ``flat``, ties by position (as a stable sort).

    O(N) selection instead of a sort: with ``t`` the k-th smallest value, remove every
    entry ``< t`` and then the first ``k - #{< t}`` entries equal to ``t``.
    """
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k <= 0:
        return keep
    if k >= flat.numel():
        return ~keep
    t = torch.kthvalue(flat, k).values
    below = flat < t
    keep &= ~below
    rest = k - int(below.sum())
    if rest:
        keep[torch.nonzero(flat == t).reshape(-1)[:rest]] = False
    return keep


def _layer_mask(t: torch.Tensor, s: float) -> torch.Tensor:
    flat = t.detach().reshape(-1).abs().float()
    return _keep_largest(flat, n_pruned(s, flat.numel())).reshape(t.shape)


def _nm_groups_shape(shape, n, m, name="weight"):
    if len(shape) < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (out, in, ...); got shape {tuple(shape)}")
    n = _check_int(n, "n", 1)
    m = _check_int(m, "m", 2)
    if n >= m:
        raise ValueError(f"n must be < m (N:M keeps N of every M); got n={n}, m={m}")
    if shape[1] % m:
        raise ValueError(f"the input dimension of {name} (shape[1] = {shape[1]}) must be divisible by m = {m}")
    return n, m


@torch.no_grad()
def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """N:M mask: in each group of ``m`` consecutive input weights keep the ``n`` largest ``|w|``.

    ``weight`` has shape ``(out, in)`` (``nn.Linear``) or ``(out, in, k1, ...)``
    (convolutions; groups run along ``in`` at each kernel position).  Requires
    ``1 <= n < m`` and ``in % m == 0``.  Sparsity is ``1 - n/m`` exactly.  Ties:
    among equal magnitudes the earlier input (lower index) is kept (stable sort).

    Returns a bool tensor of ``weight``'s shape (True = kept).
    """
    if not torch.is_tensor(weight):
        raise TypeError(f"weight must be a torch tensor; got {type(weight).__name__}")
    n, m = _nm_groups_shape(tuple(weight.shape), n, m)
    w = weight.detach().abs().float()
    w = w.movedim(1, -1)  # (out, k..., in)
    moved_shape = w.shape
    g = w.reshape(-1, m)
    top = g.topk(n + 1, dim=1)
    keep = torch.zeros_like(g, dtype=torch.bool)
    keep.scatter_(1, top.indices[:, :n], True)
    # topk's order among equal values is unspecified: redo groups with a tie at the boundary by a stable sort
    tied = torch.nonzero(top.values[:, n - 1] == top.values[:, n]).reshape(-1)
    if tied.numel():
        order = torch.argsort(g[tied], dim=-1, descending=True, stable=True)
        fix = torch.zeros(len(tied), m, dtype=torch.bool)
        fix.scatter_(1, order[:, :n], True)
        keep[tied] = fix
    return keep.reshape(moved_shape).movedim(-1, 1)


# ---------------------------------------------------------------------------
# Masks (JAX)
# ---------------------------------------------------------------------------
def magnitude_mask_jax(weights, sparsity: float, scope: str = "global"):
    """JAX version of :func:`magnitude_mask` (same ranking and ties; arrays in, bool arrays out)."""
    import jax.numpy as jnp

    _, tensors, rebuild = _as_items(weights)
    s = _check_sparsity(sparsity)
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer'; got {scope!r}")
    arrs = [jnp.asarray(t) for t in tensors]

    def one(flat, k):
        keep = jnp.ones(flat.shape[0], dtype=bool)
        if k:
            keep = keep.at[jnp.argsort(flat, stable=True)[:k]].set(False)
        return keep

    if scope == "layer":
        return rebuild([one(jnp.abs(a).reshape(-1).astype(jnp.float32), n_pruned(s, a.size)).reshape(a.shape)
                        for a in arrs])
    flat = jnp.concatenate([jnp.abs(a).reshape(-1).astype(jnp.float32) for a in arrs])
    keep = one(flat, n_pruned(s, flat.shape[0]))
    out, pos = [], 0
    for a in arrs:
        out.append(keep[pos:pos + a.size].reshape(a.shape))
        pos += a.size
    return rebuild(out)


def nm_mask_jax(weight, n: int, m: int):
    """JAX version of :func:`nm_mask` (same groups and ties)."""
    import jax.numpy as jnp

    w = jnp.asarray(weight)
    n, m = _nm_groups_shape(tuple(w.shape), n, m)
    a = jnp.moveaxis(jnp.abs(w).astype(jnp.float32), 1, -1)
    moved_shape = a.shape
    g = a.reshape(-1, m)
    order = jnp.argsort(-g, axis=-1, stable=True)
    ranks = jnp.argsort(order, axis=-1, stable=True)  # rank of each entry within its group
    keep = ranks < n
    return jnp.moveaxis(keep.reshape(moved_shape), -1, 1)


# ---------------------------------------------------------------------------
# Random masks with layer-wise densities
# ---------------------------------------------------------------------------
def erk_densities(shapes: Sequence[Sequence[int]], density: float) -> list[float]:
    """Erdős–Rényi–Kernel layer densities with a global budget (Liu et al. 2022, after Evci et al. 2020).

    Layer ``l`` with shape ``(n_out, n_in, k_1, ...)`` gets density
    ``d_l = min(1, ε·(n_out + n_in + Σk)/(n_out·n_in·Πk))``; ``ε`` solves
    ``Σ_l d_l·N_l = D·Σ_l N_l`` (``N_l`` weights in layer ``l``), layers whose
    density would exceed 1 are kept dense and ε is solved again.

    Returns the list of densities, one per shape; ``Σ d_l N_l = D Σ N_l`` up to rounding.
    """
    if not isinstance(shapes, (list, tuple)) or not shapes:
        raise ValueError("shapes must be a non-empty list of tensor shapes")
    d = float(density) if not isinstance(density, bool) and isinstance(density, (int, float, np.floating)) else None
    if d is None:
        raise TypeError(f"density must be a number in (0, 1]; got {type(density).__name__}")
    if not 0.0 < d <= 1.0:
        raise ValueError(f"density must be in (0, 1]; got {density}")
    shapes = [tuple(int(v) for v in s) for s in shapes]
    for s in shapes:
        if len(s) < 1 or any(v < 1 for v in s):
            raise ValueError(f"every shape must have positive dimensions; got {s}")
    counts = np.array([float(np.prod(s)) for s in shapes])
    raw = np.array([sum(s) / np.prod(s) if len(s) > 1 else 1.0 for s in shapes])
    budget = d * counts.sum()
    dense = np.zeros(len(shapes), dtype=bool)
    while True:
        rest = budget - counts[dense].sum()
        eps = rest / (raw[~dense] * counts[~dense]).sum() if (~dense).any() else 0.0
        over = (~dense) & (eps * raw > 1.0)
        if not over.any():
            break
        dense |= over
    return [1.0 if dense[i] else float(eps * raw[i]) for i in range(len(shapes))]


def random_mask(weights, density: float, distribution: str = "uniform", seed: int = 0):
    """A random mask keeping ``density`` of the weights, with uniform or ERK layer densities.

    The global count kept is exactly ``K = floor(D·N + 1/2)``: layer counts
    ``d_l·N_l`` are rounded by largest remainder so that they sum to ``K``; each
    layer then keeps a uniformly random subset of its ``K_l`` weights (a seeded
    ``torch.randperm``).  ``distribution="uniform"`` gives every layer density ``D``;
    ``"erk"`` uses :func:`erk_densities` (Liu et al. 2022).

    Returns masks of the same structure as ``weights`` (bool tensors, True = kept).
    """
    _, tensors, rebuild = _as_items(weights)
    if distribution not in ("uniform", "erk"):
        raise ValueError(f"distribution must be 'uniform' or 'erk'; got {distribution!r}")
    seed = _check_int(seed, "seed", 0)
    shapes = [tuple(t.shape) for t in tensors]
    dens = erk_densities(shapes, density)  # validates density; ERK densities
    if distribution == "uniform":
        dens = [float(density)] * len(shapes)
    counts = np.array([int(np.prod(s)) for s in shapes])
    target = int(math.floor(float(density) * counts.sum() + 0.5))
    exact = np.minimum(np.array(dens) * counts, counts)
    kept = np.floor(exact).astype(int)
    short = target - kept.sum()
    if short > 0:
        rem = exact - kept
        for i in np.argsort(-rem, kind="stable")[:short]:
            kept[i] += 1
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t, k in zip(tensors, kept):
        flat = torch.zeros(t.numel(), dtype=torch.bool)
        flat[torch.randperm(t.numel(), generator=gen)[:int(k)]] = True
        out.append(flat.reshape(t.shape))
    return rebuild(out)


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------
def cubic_sparsity_schedule(step: int, s_initial: float, s_final: float, t0: int, n_steps: int, dt: int) -> float:
    """Gradual-pruning sparsity at training step ``step`` (Zhu & Gupta 2017, Eq. 1).

    ``s_t = s_f + (s_i - s_f)·(1 - (t - t0)/(n·Δt))³`` for ``t`` in
    ``{t0, t0 + Δt, …, t0 + n·Δt}``; the sparsity is updated only at those steps,
    so between them it holds its last value: ``t`` is replaced by
    ``t0 + Δt·floor((t - t0)/Δt)``.  Before ``t0`` it is ``s_i``, after
    ``t0 + n·Δt`` it is ``s_f``.
    """
    step = _check_int(step, "step", 0)
    si = _check_sparsity(s_initial, "s_initial")
    sf = _check_sparsity(s_final, "s_final")
    if sf < si:
        raise ValueError(f"s_final must be >= s_initial; got s_initial={s_initial}, s_final={s_final}")
    t0 = _check_int(t0, "t0", 0)
    n_steps = _check_int(n_steps, "n_steps", 1)
    dt = _check_int(dt, "dt", 1)
    if step < t0:
        return si
    k = min((step - t0) // dt, n_steps)
    return sf + (si - sf) * (1.0 - k / n_steps) ** 3


def pruning_window(total_steps: int, start: float, end: float, dt: int) -> tuple[int, int]:
    """``(t0, n_steps)`` for pruning from fraction ``start`` to fraction ``end`` of ``total_steps``.

    ``t0 = round(start·T)``, ``n_steps = max(1, round((end - start)·T/Δt))``, so the
    final sparsity is reached at ``t0 + n_steps·Δt ≈ end·T`` (The Journey Matters
    expresses pruning schedules this way; its best window is 25% → 75%).
    """
    total_steps = _check_int(total_steps, "total_steps", 1)
    dt = _check_int(dt, "dt", 1)
    for name, v in (("start", start), ("end", end)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1]; got {v!r}")
    if not start < end:
        raise ValueError(f"start must be < end; got start={start}, end={end}")
    t0 = int(round(start * total_steps))
    n = max(1, int(round((end - start) * total_steps / dt)))
    return t0, n


# ---------------------------------------------------------------------------
# The knee
# ---------------------------------------------------------------------------
def _check_curve(sparsities, scores, min_len: int = 4):
    x = np.asarray(sparsities, dtype=float)
    y = np.asarray(scores, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"sparsities and scores must be 1-D of equal length; got {x.shape} and {y.shape}")
    if x.size < min_len:
        raise ValueError(f"need at least {min_len} points; got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("sparsities and scores must be finite")
    if (x < 0).any() or (x >= 1).any():
        raise ValueError("sparsities must be in [0, 1)")
    if (np.diff(x) <= 0).any():
        raise ValueError("sparsities must be strictly increasing")
    return x, y


def hinge_fit(sparsities, scores, knee: float) -> dict:
    """Least-squares hinge ``y ≈ a + b·s + c·max(0, s - knee)``.

    Returns ``{"a", "b", "c", "slope_before": b, "slope_after": b + c, "sse"}``.
    """
    x, y = _check_curve(sparsities, scores, min_len=3)
    A = np.stack([np.ones_like(x), x, np.maximum(0.0, x - float(knee))], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    sse = float(((A @ coef - y) ** 2).sum())
    a, b, c = (float(v) for v in coef)
    return {"a": a, "b": b, "c": c, "slope_before": b, "slope_after": b + c, "sse": sse}


def knee_sharpness(sparsities, scores, *, method: str = "hinge", flat: float = 0.01) -> dict:
    """How much faster performance falls after the knee than before it.

    The knee ``s*`` is :func:`essential_sparsity_point` (``method``); the slopes are
    those of the least-squares hinge :func:`hinge_fit` at ``s*``, and
    ``ratio = |slope_after| / max(|slope_before|, flat)`` (slopes below ``flat``,
    in score per unit sparsity, count as flat).

    Returns ``{"knee", "slope_before", "slope_after", "ratio"}``.
    """
    knee = essential_sparsity_point(sparsities, scores, method=method)
    h = hinge_fit(sparsities, scores, knee)
    ratio = abs(h["slope_after"]) / max(abs(h["slope_before"]), float(flat))
    return {"knee": knee, "slope_before": h["slope_before"], "slope_after": h["slope_after"], "ratio": ratio}


def essential_sparsity_point(sparsities, scores, *, method: str = "hinge", delta: float = 0.01) -> float:
    """The essential sparsity: the sparsity beyond which performance falls much faster than before.

    Jaiswal et al. (2023) define it as the "sharp dropping point" of performance
    against one-shot magnitude-pruning sparsity.  Definitions (all deterministic;
    ties go to the smallest sparsity):

    - ``"hinge"`` (default): fit ``a + b·s + c·max(0, s - s_k)`` by least squares
      for every interior grid point ``s_k`` and return the ``s_k`` with the
      smallest squared error: the best two-segment (continuous) linear fit.
    - ``"kneedle"``: normalise both axes to [0, 1]
      (``x̂ = (s - s_0)/(s_L - s_0)``, ``ŷ = (y - min y)/(max y - min y)``) and return
      the ``s`` maximising ``ŷ - (1 - x̂)``, the distance above the chord.
    - ``"delta"``: the largest grid sparsity ``s_i`` with ``y_j >= y_0 - delta`` for
      every ``j <= i`` (the last point still within ``delta`` of the first).

    ``sparsities`` must be strictly increasing in [0, 1); ``scores`` are higher-is-better.
    """
    x, y = _check_curve(sparsities, scores)
    if method not in KNEE_METHODS:
        raise ValueError(f"method must be one of {KNEE_METHODS}; got {method!r}")
    if method == "hinge":
        sse = np.array([hinge_fit(x, y, x[k])["sse"] for k in range(1, x.size - 1)])
        scale = max(float(((y - y.mean()) ** 2).sum()), 1e-300)
        sse = np.round(sse / scale, 12)  # make ties exact so argmin picks the smallest sparsity
        return float(x[1 + int(np.argmin(sse))])
    if method == "kneedle":
        span = y.max() - y.min()
        if span == 0:
            return float(x[-1])
        xn = (x - x[0]) / (x[-1] - x[0])
        yn = (y - y.min()) / span
        return float(x[int(np.argmax(np.round(yn - (1 - xn), 12)))])
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta >= 0:
        raise ValueError(f"delta must be a number >= 0; got {delta!r}")
    ok = y >= y[0] - delta
    bad = np.flatnonzero(~ok)
    last = (bad[0] - 1) if bad.size else x.size - 1
    return float(x[last])


# ---------------------------------------------------------------------------
# Models, masks on models, soups
# ---------------------------------------------------------------------------
def prunable(model: nn.Module, include_head: bool = False) -> dict[str, nn.Parameter]:
    """The weight matrices (ndim >= 2) of ``model`` by name; the last one (the head) only if ``include_head``.

    For a :class:`~sparsebook.lazy_neurons.TinyTransformer` the pool is :func:`transformer_pool`
    (attention and FFN matrices; embeddings stay dense), plus ``head.weight`` if ``include_head``.
    """
    if isinstance(model, TinyTransformer):
        ws = transformer_pool(model)
        if include_head:
            ws["head.weight"] = model.head.weight
        return ws
    ws = {k: p for k, p in model.named_parameters() if p.ndim >= 2}
    if not ws:
        raise ValueError("model has no weight matrices to prune")
    if not include_head:
        ws.pop(list(ws)[-1])
        if not ws:
            raise ValueError("model has only a head; nothing to prune with include_head=False")
    return ws


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Zero the pruned weights of ``model`` in place (``w ← w ⊙ m``) and return it."""
    params = dict(model.named_parameters())
    for k, m in masks.items():
        params[k].mul_(m.to(params[k].dtype))
    return model


def average_state_dicts(states: Sequence[dict]) -> dict:
    """The uniform soup ``θ̄ = (1/K) Σ_k θ_k`` (Wortsman et al. 2022; Zimmer et al. 2024).

    Models retrained from one pruned parent with one shared mask keep their zeros in
    the same places, so the soup has the parent's sparsity.
    """
    if not isinstance(states, (list, tuple)) or not states:
        raise ValueError("states must be a non-empty list of state dicts")
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise ValueError("all state dicts must have the same keys")
    return {k: torch.stack([s[k].float() for s in states]).mean(0) for k in keys}


def sparsity_of(masks: dict[str, torch.Tensor]) -> float:
    """Fraction of zeros over all masks."""
    tot = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / tot


class MaskedReconstruction(nn.Module):
    """Encoder ``64 → h → … → h`` (ReLU) with a linear decoder back to the 64 pixels.

    In training mode a random ``mask_ratio`` of input pixels is zeroed (standardised
    pixels: zero is the mean) and the model reconstructs all pixels: a masked
    autoencoder objective.  ``features(x)`` is the encoder output.
    """

    def __init__(self, width: int, depth: int, n_in: int = 64, mask_ratio: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        sizes = [n_in] + [width] * depth
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_in)
        self.mask_ratio = mask_ratio

    def features(self, x):
        return self.encoder(x)

    def forward(self, x):
        if self.training and self.mask_ratio > 0:
            x = x * (torch.rand(x.shape) >= self.mask_ratio).to(x.dtype)
        return self.head(self.encoder(x))


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(model, MaskedReconstruction):
        return model.features(x)
    return model[:-1](x)  # an nn.Sequential MLP: everything before the head


@torch.no_grad()
def ridge_probe_accuracy(f_tr, y_tr, f_te, y_te, n_classes: int = 10, lam: float = 1e-2) -> float:
    """Test accuracy of a ridge-regression linear probe on features (one-hot targets, bias, float64)."""
    def aug(f):
        f = f.double()
        return torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
    A, B = aug(f_tr), aug(f_te)
    Y = torch.nn.functional.one_hot(y_tr, n_classes).double()
    G = A.T @ A + lam * len(A) * torch.eye(A.shape[1], dtype=A.dtype)
    W = torch.linalg.solve(G, A.T @ Y)
    return float(((B @ W).argmax(1) == y_te).double().mean())


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------
def _grid(scale: str) -> tuple[float, ...]:
    if check_scale(scale) == "ci":
        return (0.0, 0.2, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.84, 0.87, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98,
                0.99)
    return tuple([0.0, 0.1, 0.2, 0.3, 0.4, 0.5] + [round(v, 3) for v in np.arange(0.6, 0.97, 0.01)] + [0.98, 0.99])


@dataclass(frozen=True)
class ParentConfig:
    """A dense MLP trained on digits: ``64 → width (× depth) → 10`` (supervised) or a masked autoencoder."""

    width: int = 256
    depth: int = 2
    steps: int = 400
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    objective: str = "supervised"  # or "masked" (masked-pixel reconstruction)
    mask_ratio: float = 0.5
    data_fraction: float = 1.0
    track_every: int = 0  # > 0: record the essential sparsity every this many steps (run_emergence)
    track_sparsities: tuple = ()
    arch: str = "mlp"  # or "cnn" (supervised only): see :func:`small_cnn`; ``width`` is its second conv's channels

    @classmethod
    def preset(cls, scale: str = "ci") -> "ParentConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(width=512, depth=3, steps=3000)

    def __post_init__(self):
        _check_int(self.width, "width", 1)
        _check_int(self.depth, "depth", 1)
        _check_int(self.steps, "steps", 1)
        if self.objective not in ("supervised", "masked"):
            raise ValueError(f"objective must be 'supervised' or 'masked'; got {self.objective!r}")
        if self.arch not in ("mlp", "cnn"):
            raise ValueError(f"arch must be 'mlp' or 'cnn'; got {self.arch!r}")
        if self.arch == "cnn" and self.objective != "supervised":
            raise ValueError("arch='cnn' supports objective='supervised' only")
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1]; got {self.data_fraction}")


@functools.lru_cache(maxsize=4)
def _data(seed: int) -> dict:
    d = digits(test_fraction=0.25, seed=seed, standardize=True)
    return {k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def small_cnn(channels: int = 16) -> nn.Sequential:
    """A small CNN for 8×8 digits given as 64-vectors: ``conv3×3(1→c/2) → ReLU → conv3×3(c/2→c) → ReLU →
    maxpool 2 → linear(16c → 10)``."""
    c = _check_int(channels, "channels", 2)
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, c // 2, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c // 2, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * c, 10))


def _new_model(cfg: ParentConfig) -> nn.Module:
    if cfg.arch == "cnn":
        return small_cnn(cfg.width)
    if cfg.objective == "masked":
        return MaskedReconstruction(cfg.width, cfg.depth, mask_ratio=cfg.mask_ratio)
    return mlp([64] + [cfg.width] * cfg.depth + [10])


def _subset(data: dict, fraction: float, seed: int):
    x, y = data["x_train"], data["y_train"]
    if fraction >= 1.0:
        return x, y
    rng = np.random.default_rng(seed + 1)
    # stratified: the same fraction of every class
    idx = np.concatenate([rng.permutation(np.flatnonzero(y.numpy() == c))[:max(1, int(round(fraction * int((y == c).sum()))))]
                          for c in range(10)])
    idx = torch.as_tensor(np.sort(idx))
    return x[idx], y[idx]


def _token_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) over every scored target: logits ``(..., C)``, targets ``(...)``;
    targets equal to -100 are not scored (PyTorch's ``ignore_index``)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)


@torch.no_grad()
def evaluate(model: nn.Module, data: dict, metric: str = "accuracy") -> float:
    """``accuracy`` or ``loss`` (test cross-entropy, nats) of a classifier; ``probe`` (ridge probe accuracy on features).

    Logits ``(n, C)`` against labels ``(n,)``, or per token ``(n, T, C)`` against ``(n, T)``;
    labels -100 are not scored.
    """
    model.eval()
    if metric == "probe":
        return ridge_probe_accuracy(_features(model, data["x_train"]), data["y_train"],
                                    _features(model, data["x_test"]), data["y_test"])
    logits = model(data["x_test"])
    if metric == "loss":
        return float(_token_ce(logits, data["y_test"]))
    y = data["y_test"].reshape(-1)
    scored = y != -100
    return float((logits.argmax(-1).reshape(-1)[scored] == y[scored]).double().mean())


@torch.no_grad()
def oneshot_curve(model: nn.Module, data: dict, sparsities, scope: str = "global", metric: str = "accuracy",
                  include_head: bool = False) -> np.ndarray:
    """Scores of ``model`` after one-shot magnitude pruning (no retraining) at each sparsity."""
    ws = prunable(model, include_head)
    saved = {k: p.detach().clone() for k, p in ws.items()}
    out = []
    for s in sparsities:
        masks = magnitude_mask({k: saved[k] for k in ws}, float(s), scope=scope)
        for k, p in ws.items():
            p.copy_(saved[k] * masks[k])
        out.append(evaluate(model, data, metric))
    for k, p in ws.items():
        p.copy_(saved[k])
    return np.array(out)


def _mse(pred, target):
    return nn.functional.mse_loss(pred, target)


@functools.lru_cache(maxsize=16)
def _train_parent_cached(cfg: ParentConfig, seed: int):
    seed_everything(seed)
    data = _data(seed)
    x, y = _subset(data, cfg.data_fraction, seed)
    model = _new_model(cfg)
    track: list[tuple[int, float, float]] = []

    def cb(m, step):
        if cfg.track_every and step % cfg.track_every == 0:
            curve = oneshot_curve(m, data, cfg.track_sparsities, metric="accuracy")
            knee = essential_sparsity_point(cfg.track_sparsities, curve, method="delta", delta=0.01)
            track.append((step, float(curve[0]), knee))

    if cfg.objective == "masked":
        hist = fit(model, x, x, steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed,
                   weight_decay=cfg.weight_decay, loss_fn=_mse)
    else:
        hist = fit(model, x, y, steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed,
                   weight_decay=cfg.weight_decay, callback=cb if cfg.track_every else None,
                   every=cfg.track_every)
    return copy.deepcopy(model.state_dict()), hist["loss"], tuple(track)


def train_parent(cfg: ParentConfig, seed: int = 0) -> tuple[nn.Module, dict]:
    """A trained dense parent (a fresh copy; training is cached per ``(cfg, seed)``) and its info."""
    if not isinstance(cfg, ParentConfig):
        raise TypeError(f"cfg must be a ParentConfig; got {type(cfg).__name__}")
    seed = _check_int(seed, "seed", 0)
    state, loss, track = _train_parent_cached(cfg, seed)
    model = _new_model(cfg)
    model.load_state_dict(state)
    model.eval()
    return model, {"train_loss": loss, "track": track}


def _train_sparse(model: nn.Module, data: dict, *, steps: int, lr: float, batch_size: int, seed: int,
                  names: Sequence[str], masks: dict | None = None, schedule=None, weight_decay: float = 0.0,
                  x=None, y=None) -> nn.Module:
    """Train ``model`` keeping ``masks`` fixed (``w ← w ⊙ m`` after every step), or, with ``schedule``
    (``step -> sparsity``), re-prune the weights ``names`` by global magnitude whenever the target rises."""
    state = {"masks": dict(masks) if masks else None, "s": -1.0}
    params = dict(model.named_parameters())

    def cb(m, step):
        if schedule is not None:
            s = schedule(step)
            if s > state["s"] + 1e-12:
                state["masks"] = magnitude_mask({k: params[k].detach() for k in names}, s)
                state["s"] = s
        if state["masks"]:
            apply_masks(m, state["masks"])

    x = data["x_train"] if x is None else x
    y = data["y_train"] if y is None else y
    fit(model, x, y, steps=steps, lr=lr, batch_size=batch_size, seed=seed, weight_decay=weight_decay,
        callback=cb, every=1)
    return model


# ---------------------------------------------------------------------------
# Experiment 1: one-shot pruning, global vs layer-wise, N:M
# ---------------------------------------------------------------------------
NM_PATTERNS = ((2, 4), (4, 8), (1, 2), (3, 8), (1, 4), (2, 8), (1, 8), (1, 16))


@dataclass(frozen=True)
class OneShotConfig:
    """One-shot magnitude pruning of a trained parent, without retraining."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))
    nm_patterns: tuple = NM_PATTERNS

    @classmethod
    def preset(cls, scale: str = "ci") -> "OneShotConfig":
        return cls(parent=ParentConfig.preset(scale), sparsities=_grid(scale))


def run_oneshot(config: OneShotConfig, seed: int = 0) -> dict:
    """Accuracy and test loss against sparsity (global and layer-wise pools) and for N:M patterns.

    Returns ``{"sparsities", "acc_global", "acc_layer", "loss_global", "dense_acc",
    "nm": [(n, m, sparsity, acc, acc_unstructured_layer)], "knees": {method: sparsity}}``.
    """
    if not isinstance(config, OneShotConfig):
        raise TypeError(f"config must be a OneShotConfig; got {type(config).__name__}")
    seed_everything(seed)
    model, _ = train_parent(config.parent, seed)
    data = _data(seed)
    s = np.array(config.sparsities)
    acc_g = oneshot_curve(model, data, s, "global")
    acc_l = oneshot_curve(model, data, s, "layer")
    loss_g = oneshot_curve(model, data, s, "global", metric="loss")
    ws = prunable(model)
    saved = {k: p.detach().clone() for k, p in ws.items()}
    nm = []
    for n, m in config.nm_patterns:
        with torch.no_grad():
            for k, p in ws.items():
                p.copy_(saved[k] * nm_mask(saved[k], n, m))
        a = evaluate(model, data)
        with torch.no_grad():
            for k, p in ws.items():
                p.copy_(saved[k])
        a_u = float(oneshot_curve(model, data, [1 - n / m], "layer")[0])
        nm.append((n, m, 1 - n / m, a, a_u))
    knees = {meth: essential_sparsity_point(s, acc_g, method=meth) for meth in KNEE_METHODS}
    return {"sparsities": s, "acc_global": acc_g, "acc_layer": acc_l, "loss_global": loss_g,
            "dense_acc": evaluate(model, data), "nm": nm, "knees": knees,
            "hinge": hinge_fit(s, acc_g, knees["hinge"])}


@dataclass(frozen=True)
class ArchitectureConfig:
    """The one-shot global curve of a small CNN (:func:`small_cnn`), to check the knee is not an MLP artefact."""

    parent: ParentConfig = field(default_factory=lambda: ParentConfig(arch="cnn", width=16, steps=300))
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "ArchitectureConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig(arch="cnn", width=64, steps=3000), sparsities=_grid(scale))


def run_architecture(config: ArchitectureConfig, seed: int = 0) -> dict:
    """``{"sparsities", "acc", "dense_acc", "n_weights", "sharpness"}`` for the CNN pruned one-shot (global pool)."""
    if not isinstance(config, ArchitectureConfig):
        raise TypeError(f"config must be an ArchitectureConfig; got {type(config).__name__}")
    seed_everything(seed)
    model, _ = train_parent(config.parent, seed)
    data = _data(seed)
    s = np.array(config.sparsities)
    acc = oneshot_curve(model, data, s, "global")
    return {"sparsities": s, "acc": acc, "dense_acc": float(acc[0]),
            "n_weights": sum(p.numel() for p in prunable(model).values()),
            "sharpness": knee_sharpness(s, acc)}


# ---------------------------------------------------------------------------
# Experiment 2: supervised vs self-supervised objective; amount of data
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectiveConfig:
    """Supervised and masked-reconstruction parents pruned one-shot; both scored by a ridge probe on the encoder."""

    supervised: ParentConfig = field(default_factory=ParentConfig)
    masked: ParentConfig = field(default_factory=lambda: ParentConfig(objective="masked"))
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "ObjectiveConfig":
        p = ParentConfig.preset(scale)
        return cls(supervised=p, masked=replace(p, objective="masked"), sparsities=_grid(scale))


def run_objectives(config: ObjectiveConfig, seed: int = 0) -> dict:
    """Probe accuracy against sparsity for both objectives, their knees (all methods) and dense probe accuracies."""
    if not isinstance(config, ObjectiveConfig):
        raise TypeError(f"config must be an ObjectiveConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed)
    s = np.array(config.sparsities)
    out = {"sparsities": s}
    for name, cfg in (("supervised", config.supervised), ("masked", config.masked)):
        model, _ = train_parent(cfg, seed)
        # prune the encoder only (the head is not used by the probe)
        include_head = False
        curve = oneshot_curve(model, data, s, "global", metric="probe", include_head=include_head)
        out[name] = {"probe": curve, "knees": {m: essential_sparsity_point(s, curve, method=m) for m in KNEE_METHODS}}
    return out


@dataclass(frozen=True)
class DataAmountConfig:
    """Parents trained on growing fractions of the training set (same steps), pruned one-shot."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    fractions: tuple = (0.1, 0.3, 1.0)
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "DataAmountConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), fractions=(0.1, 0.2, 0.4, 0.7, 1.0), sparsities=_grid(scale))


def run_data_amount(config: DataAmountConfig, seed: int = 0) -> dict:
    """Knees (all methods) and curves for each data fraction."""
    if not isinstance(config, DataAmountConfig):
        raise TypeError(f"config must be a DataAmountConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed)
    s = np.array(config.sparsities)
    rows = []
    for f in config.fractions:
        model, _ = train_parent(replace(config.parent, data_fraction=float(f)), seed)
        curve = oneshot_curve(model, data, s, "global")
        rows.append({"fraction": float(f), "acc": curve,
                     "knees": {m: essential_sparsity_point(s, curve, method=m) for m in KNEE_METHODS}})
    return {"sparsities": s, "rows": rows}


# ---------------------------------------------------------------------------
# Experiment 3: emergence of sparsity during training
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EmergenceConfig:
    """Essential sparsity (``delta`` knee, 1 point of accuracy) of checkpoints taken every ``every`` steps."""

    parent: ParentConfig = field(default_factory=lambda: ParentConfig(lr=2e-4, steps=600))
    every: int = 20
    min_accuracy: float = 0.5  # checkpoints whose dense accuracy is below this are not scored
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "EmergenceConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=replace(ParentConfig.preset(scale), lr=2e-4, steps=6000), every=50, sparsities=_grid(scale))


def run_emergence(config: EmergenceConfig, seed: int = 0) -> dict:
    """``{"steps", "dense_acc", "essential", "scored", "jump_fraction", "jump_step"}``.

    ``jump_fraction`` = (largest rise of the essential sparsity between consecutive
    scored checkpoints) / (its total rise from the first scored checkpoint to its
    maximum); a smooth rise over K checkpoints gives about 1/K, a single jump 1.
    """
    if not isinstance(config, EmergenceConfig):
        raise TypeError(f"config must be an EmergenceConfig; got {type(config).__name__}")
    seed_everything(seed)
    cfg = replace(config.parent, track_every=config.every, track_sparsities=tuple(config.sparsities))
    _, info = train_parent(cfg, seed)
    steps = np.array([t[0] for t in info["track"]])
    acc = np.array([t[1] for t in info["track"]])
    ess = np.array([t[2] for t in info["track"]])
    scored = acc >= config.min_accuracy
    e = ess[scored]
    rises = np.diff(e)
    total = float(e.max() - e[0]) if e.size else 0.0
    jump = float(rises.max() / total) if total > 0 and rises.size else 0.0
    jump_step = int(steps[scored][1 + int(np.argmax(rises))]) if rises.size else -1
    return {"steps": steps, "dense_acc": acc, "essential": ess, "scored": scored,
            "jump_fraction": jump, "jump_step": jump_step, "total_rise": total}


# ---------------------------------------------------------------------------
# Experiment 4: random pruning at initialisation (uniform vs ERK, narrow vs wide)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RandomPruningConfig:
    """Sparse training from scratch with a random mask (all layers, head included) at ``density``."""

    widths: tuple = (32, 256)
    density: float = 0.1
    steps: int = 400
    lr: float = 1e-3
    batch_size: int = 64
    depth: int = 2

    @classmethod
    def preset(cls, scale: str = "ci") -> "RandomPruningConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(widths=(16, 32, 64, 128, 256, 512, 1024), steps=3000)


def run_random_pruning(config: RandomPruningConfig, seed: int = 0) -> dict:
    """Test accuracy of dense, uniform-random and ERK-random networks per width: ``{"rows": [...]}``."""
    if not isinstance(config, RandomPruningConfig):
        raise TypeError(f"config must be a RandomPruningConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed)
    rows = []
    for w in config.widths:
        row = {"width": int(w)}
        parent = ParentConfig(width=int(w), depth=config.depth, steps=config.steps, lr=config.lr,
                              batch_size=config.batch_size)
        dense, _ = train_parent(parent, seed)
        row["dense"] = evaluate(dense, data)
        for dist in ("uniform", "erk"):
            seed_everything(seed)
            model = _new_model(parent)
            ws = prunable(model, include_head=True)
            masks = random_mask({k: p.detach() for k, p in ws.items()}, config.density, dist, seed=seed)
            apply_masks(model, masks)
            _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=config.batch_size,
                          seed=seed, names=list(ws), masks=masks)
            row[dist] = evaluate(model, data)
        rows.append(row)
    return {"rows": rows, "density": config.density}


# ---------------------------------------------------------------------------
# Experiment 5: gradual (cubic) vs one-shot pruning; large-sparse vs small-dense
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GradualConfig:
    """From the trained parent: one-shot prune + retrain vs cubic gradual pruning over the same steps."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    sparsities: tuple = (0.9, 0.97, 0.99)
    steps: int = 200
    lr: float = 1e-3
    dt: int = 10
    prune_fraction: float = 0.75  # the cubic ramp ends at this fraction of the retraining steps

    @classmethod
    def preset(cls, scale: str = "ci") -> "GradualConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), sparsities=(0.8, 0.9, 0.95, 0.97, 0.98, 0.99), steps=2000)


def _small_dense_width(n_in: int, n_out: int, depth: int, nonzeros: int) -> int:
    """Width ``h`` of a dense MLP whose pruned layers have about ``nonzeros`` weights: ``n_in·h + (depth-1)·h²``."""
    best = 1
    for h in range(1, 4096):
        if n_in * h + (depth - 1) * h * h <= nonzeros:
            best = h
    return best


def run_gradual(config: GradualConfig, seed: int = 0) -> dict:
    """Rows per sparsity: one-shot (no retraining), one-shot + retraining, gradual, small dense (equal nonzeros)."""
    if not isinstance(config, GradualConfig):
        raise TypeError(f"config must be a GradualConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed)
    p = config.parent
    rows = []
    for s in config.sparsities:
        row = {"sparsity": float(s)}
        model, _ = train_parent(p, seed)
        ws = prunable(model)
        masks = magnitude_mask({k: v.detach() for k, v in ws.items()}, s)
        apply_masks(model, masks)
        row["oneshot_noretrain"] = evaluate(model, data)
        _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=p.batch_size, seed=seed + 1,
                      names=list(ws), masks=masks)
        row["oneshot"] = evaluate(model, data)
        row["oneshot_loss"] = evaluate(model, data, "loss")
        model, _ = train_parent(p, seed)
        names = list(prunable(model))
        dt = config.dt
        t0, n = pruning_window(config.steps, 0.0, config.prune_fraction, dt)
        sched = functools.partial(cubic_sparsity_schedule, s_initial=0.0, s_final=float(s), t0=t0, n_steps=n, dt=dt)
        _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=p.batch_size, seed=seed + 1,
                      names=names, schedule=sched)
        row["gradual"] = evaluate(model, data)
        row["gradual_loss"] = evaluate(model, data, "loss")
        pw = prunable(model)
        row["gradual_sparsity"] = float(sum(int((v == 0).sum()) for v in pw.values()) / sum(v.numel() for v in pw.values()))
        nonzeros = sum(v.numel() for v in ws.values()) - n_pruned(s, sum(v.numel() for v in ws.values()))
        h = _small_dense_width(64, 10, p.depth, nonzeros)
        small = ParentConfig(width=h, depth=p.depth, steps=p.steps + config.steps, lr=p.lr, batch_size=p.batch_size)
        sm, _ = train_parent(small, seed)
        row["small_width"] = h
        row["small_dense"] = evaluate(sm, data)
        row["small_dense_loss"] = evaluate(sm, data, "loss")
        rows.append(row)
    return {"rows": rows}


# ---------------------------------------------------------------------------
# Experiment 6: pruning windows over training (The Journey Matters)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class JourneyConfig:
    """Train from scratch while pruning to ``sparsity`` with a cubic ramp over a window of training."""

    width: int = 256
    depth: int = 2
    steps: int = 400
    lr: float = 1e-3
    batch_size: int = 64
    sparsity: float = 0.97
    windows: tuple = ((0.0, 0.5), (0.25, 0.75), (0.5, 1.0))
    dt: int = 10

    @classmethod
    def preset(cls, scale: str = "ci") -> "JourneyConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(width=512, steps=3000, windows=((0.0, 0.25), (0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.75, 1.0)))


def run_journey(config: JourneyConfig, seed: int = 0) -> dict:
    """Final test loss and accuracy per window: ``{"rows": [{"start", "end", "loss", "acc"}]}``."""
    if not isinstance(config, JourneyConfig):
        raise TypeError(f"config must be a JourneyConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed)
    rows = []
    for a, b in config.windows:
        seed_everything(seed)
        model = mlp([64] + [config.width] * config.depth + [10])
        names = list(prunable(model))
        t0, n = pruning_window(config.steps, a, b, config.dt)
        # the last step at which the schedule rises must be < steps, so the final mask is applied
        sched = functools.partial(cubic_sparsity_schedule, s_initial=0.0, s_final=config.sparsity, t0=t0,
                                  n_steps=n, dt=min(config.dt, max(1, (config.steps - 1 - t0) // n)))
        _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=config.batch_size, seed=seed,
                      names=names, schedule=sched)
        rows.append({"start": a, "end": b, "loss": evaluate(model, data, "loss"), "acc": evaluate(model, data)})
    return {"rows": rows}


# ---------------------------------------------------------------------------
# Experiment 7: sparse model soups
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SoupConfig:
    """Prune the parent once, retrain ``n_ingredients`` copies (different batch orders), average them."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    sparsity: float = 0.9
    n_ingredients: int = 3
    steps: int = 150
    lr: float = 1e-3

    @classmethod
    def preset(cls, scale: str = "ci") -> "SoupConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), n_ingredients=5, steps=1000)


def run_soups(config: SoupConfig, seed: int = 0) -> dict:
    """``{"ingredients": [(acc, loss)], "soup": (acc, loss), "soup_sparsity"}``."""
    if not isinstance(config, SoupConfig):
        raise TypeError(f"config must be a SoupConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed)
    parent, _ = train_parent(config.parent, seed)
    ws = prunable(parent)
    masks = magnitude_mask({k: v.detach() for k, v in ws.items()}, config.sparsity)
    apply_masks(parent, masks)
    pruned_acc = evaluate(parent, data)
    states, ingredients = [], []
    for i in range(config.n_ingredients):
        model = copy.deepcopy(parent)
        _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=config.parent.batch_size,
                      seed=seed + 100 + i, names=list(ws), masks=masks)
        states.append(copy.deepcopy(model.state_dict()))
        ingredients.append((evaluate(model, data), evaluate(model, data, "loss")))
    soup = copy.deepcopy(parent)
    soup.load_state_dict(average_state_dicts(states))
    sp = float(sum(int((v == 0).sum()) for v in prunable(soup).values()) / sum(v.numel() for v in ws.values()))
    return {"pruned_acc": pruned_acc, "ingredients": ingredients,
            "soup": (evaluate(soup, data), evaluate(soup, data, "loss")), "soup_sparsity": sp}


# ---------------------------------------------------------------------------
# Experiment 8: N:M training, fixed mask vs progressive gradient flow
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NMTrainConfig:
    """Fine-tune the parent to an N:M pattern: fixed one-shot mask vs decaying dense gradient flow."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    n: int = 1
    m: int = 16
    steps: int = 200
    lr: float = 1e-3
    decay_fraction: float = 0.5  # β(t) falls linearly from 1 to 0 over this fraction of the steps

    @classmethod
    def preset(cls, scale: str = "ci") -> "NMTrainConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), steps=2000)


class _PGFLinear(nn.Module):
    """``y = x (w ⊙ (m + (1 − m) β))ᵀ + b``, ``m = nm_mask(w)`` recomputed every forward pass."""

    def __init__(self, lin: nn.Linear, n: int, m: int):
        super().__init__()
        self.weight, self.bias, self.n, self.m, self.beta = lin.weight, lin.bias, n, m, 1.0

    def forward(self, x):
        mask = nm_mask(self.weight, self.n, self.m).to(self.weight.dtype)
        w = self.weight * (mask + (1 - mask) * self.beta)
        return nn.functional.linear(x, w, self.bias)


def run_nm_training(config: NMTrainConfig, seed: int = 0) -> dict:
    """Test accuracy after N:M fine-tuning with a fixed mask and with progressive gradient flow."""
    if not isinstance(config, NMTrainConfig):
        raise TypeError(f"config must be an NMTrainConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed)
    n, m = config.n, config.m
    # fixed: one-shot N:M mask from the parent, then masked retraining
    model, _ = train_parent(config.parent, seed)
    ws = prunable(model)
    masks = {k: nm_mask(v.detach(), n, m) for k, v in ws.items()}
    apply_masks(model, masks)
    oneshot = evaluate(model, data)
    _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=config.parent.batch_size,
                  seed=seed + 1, names=list(ws), masks=masks)
    fixed = evaluate(model, data)
    # progressive gradient flow: pruned weights scaled by β(t) → 0, mask recomputed every step
    model, _ = train_parent(config.parent, seed)
    names = list(prunable(model))
    idx = [int(k.split(".")[0]) for k in names]
    wrapped = {}
    for i in idx:
        wrapped[i] = _PGFLinear(model[i], n, m)
        model[i] = wrapped[i]
    t_end = max(1, int(config.decay_fraction * config.steps))

    def cb(_, step):
        for w in wrapped.values():
            w.beta = max(0.0, 1.0 - step / t_end)

    fit(model, data["x_train"], data["y_train"], steps=config.steps, lr=config.lr,
        batch_size=config.parent.batch_size, seed=seed + 1, callback=cb, every=1)
    for w in wrapped.values():
        w.beta = 0.0
    pgf = evaluate(model, data)
    return {"n": n, "m": m, "oneshot": oneshot, "fixed": fixed, "pgf": pgf}


# ---------------------------------------------------------------------------
# Experiment 9: a small Transformer on a synthetic sorting task, pruned one-shot
# ---------------------------------------------------------------------------
def sort_task(n_seqs: int, length: int, vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token prediction on sorting: ``a_1 … a_n SEP sort(a)_1 … sort(a)_n``.

    The ``a_i`` are drawn uniformly (seeded NumPy generator) from ``{0, …, vocab - 2}``;
    ``SEP = vocab - 1``.  The model reads the sequence without its last token and predicts
    the next one; only the ``n`` sorted tokens are scored (the others are random and get
    target -100, PyTorch's ``ignore_index``).

    Returns ``x`` (n_seqs, 2·length) and ``y`` (n_seqs, 2·length), int64:
    ``x = s[:, :-1]``, ``y = s[:, 1:]`` with ``y[:, :length] = -100``, for ``s`` of shape (n_seqs, 2·length + 1).
    """
    n_seqs = _check_int(n_seqs, "n_seqs", 1)
    length = _check_int(length, "length", 2)
    vocab = _check_int(vocab, "vocab", 3)
    seed = _check_int(seed, "seed", 0)
    a = np.random.default_rng(seed).integers(0, vocab - 1, (n_seqs, length))
    s = torch.as_tensor(np.concatenate([a, np.full((n_seqs, 1), vocab - 1), np.sort(a, axis=1)], axis=1))
    x, y = s[:, :-1].clone(), s[:, 1:].clone()
    y[:, :length] = -100
    return x, y


def transformer_pool(model: TinyTransformer) -> dict[str, nn.Parameter]:
    """The pruning pool of Jaiswal et al.'s code: every block's attention and FFN weight matrices.

    Per block: ``qkv`` (3d, d), ``out`` (d, d), ``up`` (ff, d), ``down`` (d, ff).  Token and
    position embeddings, LayerNorms, biases and the head stay dense.
    """
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"model must be a TinyTransformer; got {type(model).__name__}")
    return {f"blocks.{i}.{name}.weight": getattr(blk, name).weight
            for i, blk in enumerate(model.blocks) for name in ("qkv", "out", "up", "down")}


@dataclass(frozen=True)
class TransformerConfig:
    """A decoder-only :class:`~sparsebook.lazy_neurons.TinyTransformer` (pre-LayerNorm, causal) trained on
    :func:`sort_task` from scratch, then pruned one-shot over :func:`transformer_pool`."""

    length: int = 8          # numbers to sort (sequence 2·length tokens)
    vocab: int = 16          # values 0..vocab-2 and the separator
    d_model: int = 32
    ff: int = 128
    layers: int = 2
    heads: int = 2
    steps: int = 1000
    lr: float = 3e-3
    batch_size: int = 64
    n_train: int = 20000     # training sequences (fit cycles over them)
    n_test: int = 500        # held-out sequences (length scored tokens each)
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "TransformerConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(length=12, vocab=32, d_model=64, ff=256, layers=2, heads=4, steps=6000, n_train=100000,
                   n_test=2000, sparsities=_grid(scale))

    def __post_init__(self):
        for name, low in (("length", 2), ("vocab", 3), ("d_model", 1), ("ff", 1), ("layers", 1), ("heads", 1),
                          ("steps", 1), ("batch_size", 1), ("n_train", 1), ("n_test", 1)):
            _check_int(getattr(self, name), name, low)
        check_real(self.lr, "lr", 0, None, low_open=True)
        if self.d_model % self.heads:
            raise ValueError(f"d_model must be divisible by heads; got d_model={self.d_model}, heads={self.heads}")
        s = np.asarray(self.sparsities, dtype=float)
        if s.ndim != 1 or s.size < 4 or s[0] != 0.0 or (np.diff(s) <= 0).any() or s[-1] >= 1:
            raise ValueError("sparsities must start at 0, increase strictly, stay below 1 and have at least 4 points; "
                             f"got {self.sparsities}")

    def model(self) -> TinyTransformer:
        """A freshly initialised model (seed first): tokens (B, 2·length) → logits (B, 2·length, vocab)."""
        return TinyTransformer(self.vocab, 2 * self.length, self.d_model, self.ff, self.layers, heads=self.heads)


@functools.lru_cache(maxsize=4)
def _transformer_data(cfg: TransformerConfig, seed: int) -> dict:
    x_tr, y_tr = sort_task(cfg.n_train, cfg.length, cfg.vocab, seed=2 * seed + 1)
    x_te, y_te = sort_task(cfg.n_test, cfg.length, cfg.vocab, seed=2 * seed + 2)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


@functools.lru_cache(maxsize=4)
def _train_transformer_cached(cfg: TransformerConfig, seed: int):
    seed_everything(seed)
    data = _transformer_data(cfg, seed)
    model = cfg.model()
    hist = fit(model, data["x_train"], data["y_train"], steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size,
               seed=seed, loss_fn=_token_ce)
    return copy.deepcopy(model.state_dict()), hist["loss"]


def run_transformer_oneshot(config: TransformerConfig, seed: int = 0) -> dict:
    """Train the dense Transformer, prune its attention + FFN pool one-shot (one global magnitude pool,
    :func:`magnitude_mask`) at every grid sparsity without retraining, and find the knee.

    Returns ``{"sparsities" (S,), "acc" (S,), "loss" (S,) (held-out per-token accuracy and
    cross-entropy in nats over the sorted half), "dense_acc", "knees": {method: sparsity},
    "sharpness": knee_sharpness(...), "n_pool", "n_params", "train_loss" (steps,)}``.
    """
    if not isinstance(config, TransformerConfig):
        raise TypeError(f"config must be a TransformerConfig; got {type(config).__name__}")
    seed = _check_int(seed, "seed", 0)
    seed_everything(seed)
    state, train_loss = _train_transformer_cached(config, seed)
    model = config.model()
    model.load_state_dict(state)
    model.eval()
    data = _transformer_data(config, seed)
    s = np.array(config.sparsities, dtype=float)
    acc = oneshot_curve(model, data, s, "global")
    loss = oneshot_curve(model, data, s, "global", metric="loss")
    return {"sparsities": s, "acc": acc, "loss": loss, "dense_acc": float(acc[0]),
            "knees": {m: essential_sparsity_point(s, acc, method=m) for m in KNEE_METHODS},
            "sharpness": knee_sharpness(s, acc),
            "n_pool": sum(p.numel() for p in transformer_pool(model).values()),
            "n_params": sum(p.numel() for p in model.parameters()), "train_loss": train_loss}


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
