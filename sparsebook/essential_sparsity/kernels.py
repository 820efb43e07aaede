"""Essential sparsity, pure math: magnitude, N:M and random masks (PyTorch, and JAX twins), ERK densities,
the cubic pruning schedule, knee finders, masks on models and soups, the ridge probe."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from sparsebook.validate import check_int, check_real


KNEE_METHODS = ("hinge", "kneedle", "delta")


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------
def _check_sparsity(sparsity, name: str = "sparsity") -> float:
    """A fraction of weights to remove, in [0, 1)."""
    return check_real(sparsity, name, 0, 1, high_open=True)


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
    count = check_int(count, "count", 0)
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
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
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
    n = check_int(n, "n", 1)
    m = check_int(m, "m", 2)
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
        fix = torch.zeros(len(tied), m, dtype=torch.bool, device=g.device)
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

    Returns masks of the same structure as ``weights`` (bool tensors, True = kept), each on its
    weight's device (drawn on the CPU, so the same seed gives the same mask on a GPU).
    """
    _, tensors, rebuild = _as_items(weights)
    if distribution not in ("uniform", "erk"):
        raise ValueError(f"distribution must be 'uniform' or 'erk'; got {distribution!r}")
    seed = check_int(seed, "seed", 0)
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
        out.append(flat.reshape(t.shape).to(t.device))  # drawn on the CPU: the same mask on every device
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
    step = check_int(step, "step", 0)
    si = _check_sparsity(s_initial, "s_initial")
    sf = _check_sparsity(s_final, "s_final")
    if sf < si:
        raise ValueError(f"s_final must be >= s_initial; got s_initial={s_initial}, s_final={s_final}")
    t0 = check_int(t0, "t0", 0)
    n_steps = check_int(n_steps, "n_steps", 1)
    dt = check_int(dt, "dt", 1)
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
    total_steps = check_int(total_steps, "total_steps", 1)
    dt = check_int(dt, "dt", 1)
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


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Zero the pruned weights of ``model`` in place (``w ← w ⊙ m``) and return it."""
    params = dict(model.named_parameters())
    for k, m in masks.items():
        params[k].mul_(m.to(device=params[k].device, dtype=params[k].dtype))
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


@torch.no_grad()
def ridge_probe_accuracy(f_tr, y_tr, f_te, y_te, n_classes: int = 10, lam: float = 1e-2) -> float:
    """Test accuracy of a ridge-regression linear probe on features (one-hot targets, bias, float64)."""
    def aug(f):
        f = f.double()
        return torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
    A, B = aug(f_tr), aug(f_te)
    Y = torch.nn.functional.one_hot(y_tr, n_classes).double()
    G = A.T @ A + lam * len(A) * torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
    W = torch.linalg.solve(G, A.T @ Y)
    return float(((B @ W).argmax(1) == y_te.to(B.device)).double().mean())


def largest_rise_fraction(values) -> float:
    """Largest rise between consecutive values over the total rise of the curve.

    ``r = max_i (v_{i+1} − v_i) / max_{i<j} (v_j − v_i)`` (the total rise is the largest rise from a
    value to a later one, so ``0 <= r <= 1`` even after a dip); 0 when the curve never rises.
    A linear rise over K steps gives 1/K, a single jump 1.  The statistic of the abrupt-sparsification
    claim; applied to the accuracy curve of the same checkpoints it is the control.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"values must be 1-D with at least 2 points; got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    total = float((v - np.minimum.accumulate(v)).max())
    if total <= 0:
        return 0.0
    return float(max(np.diff(v).max(), 0.0) / total)


def average_density(schedule, steps: int) -> float:
    """Mean over training steps ``t = 0 … steps−1`` of the density ``1 − s_t`` of a sparsity schedule
    (``step -> sparsity``): Jin et al.'s average parameter count over training, as a fraction of the
    dense pool (their N_avg)."""
    if not callable(schedule):
        raise TypeError(f"schedule must be callable (step -> sparsity); got {type(schedule).__name__}")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    return float(np.mean([1.0 - float(schedule(t)) for t in range(steps)]))


#: Bin edges of :func:`log_magnitude_histogram`: log10 |w| from 1e-5 to 10, 0.1 decade per bin.
MAGNITUDE_EDGES = np.round(np.linspace(-5.0, 1.0, 61), 10)


@torch.no_grad()
def log_magnitude_histogram(weights, edges=MAGNITUDE_EDGES) -> np.ndarray:
    """The distribution of the pooled weight magnitudes on a log scale.

    ``h_i = #{w : e_i <= log10|w| < e_{i+1}} / N`` over all ``N`` weights of ``weights`` (a dict or list of
    tensors, pooled as in global magnitude pruning); exact zeros and magnitudes outside the edges fall in no
    bin, so ``sum(h) <= 1``.  ``edges``: increasing, at least 2 (shape ``(B + 1,)``); returns shape ``(B,)``.
    """
    _, tensors, _ = _as_items(weights)
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError(f"edges must be 1-D, increasing, with at least 2 values; got {edges!r}")
    a = torch.cat([t.detach().reshape(-1).abs().double().cpu() for t in tensors]).numpy()
    with np.errstate(divide="ignore"):
        counts, _ = np.histogram(np.log10(a[a > 0]), bins=e)
    return counts / a.size


@torch.no_grad()
def magnitude_threshold(weights, sparsity: float) -> float:
    """The largest magnitude that global magnitude pruning at ``sparsity`` removes: the ``k``-th smallest
    ``|w|`` of the pool, ``k = n_pruned(sparsity, N)`` (0.0 when ``k = 0``)."""
    _, tensors, _ = _as_items(weights)
    s = _check_sparsity(sparsity)
    a = torch.cat([t.detach().reshape(-1).abs().double().cpu() for t in tensors])
    k = n_pruned(s, a.numel())
    return 0.0 if k == 0 else float(torch.kthvalue(a, k).values)
