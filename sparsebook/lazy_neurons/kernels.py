"""Lazy neurons, pure math: activation statistics, thresholds (CATS, CHESS, FATReLU), ProSparse and
DEFT penalties, calibration error, CETT and the sparse MLP forward."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch.nn import functional as F

from sparsebook.models import _as_tensor
from sparsebook.validate import check_int, check_real


def _rows(a: torch.Tensor) -> torch.Tensor:
    """``a`` [… , h] as a matrix [rows, h] (a 1-D ``a`` is one row)."""
    return a.reshape(1, -1) if a.ndim == 1 else a.reshape(-1, a.shape[-1])


# ---------------------------------------------------------------------------
# activation statistics
# ---------------------------------------------------------------------------


def nonzero_fraction(activations, tau: float = 0.0, per_token: bool = False):
    """Fraction of activation entries with ``|a| > tau`` (Li et al. 2023, Sec. 2: "% nonzero").

    ``ρ = (1 / (rows·h)) Σ_{r,i} 1[|a_{r,i}| > τ]``; with ``per_token`` the
    fraction of each row (token) instead, ``ρ_r = (1/h) Σ_i 1[|a_{r,i}| > τ]``.

    Parameters
    ----------
    activations : Tensor | ndarray [… , h], or a dict ``{layer: array}``
        e.g. the output of :func:`record_activations`.
    tau : float >= 0
        magnitude threshold (``0``: exact nonzeros).
    per_token : bool
        return the per-row fractions (a tensor of shape ``[…]``) instead of the mean.

    Returns
    -------
    float (or tensor with ``per_token``), or a dict of them for a dict input.
    """
    tau = check_real(tau, "tau", 0.0, math.inf)
    if isinstance(activations, Mapping):
        if not activations:
            raise ValueError("activations must not be an empty dict")
        return {k: nonzero_fraction(v, tau, per_token) for k, v in activations.items()}
    a = _as_tensor(activations, "activations")
    active = (a.abs() > tau) if a.dtype != torch.bool else a
    if per_token:
        return active.float().mean(-1)
    return float(active.double().mean())


def dead_fraction(activations, tau: float = 0.0):
    """Fraction of units never active on the given rows: ``(1/h) Σ_i 1[max_r |a_{r,i}| ≤ τ]``.

    A unit that is dead on the evaluation set contributes zeros to every row: report
    this beside :func:`nonzero_fraction` so that collapse is not mistaken for laziness.

    activations : Tensor | ndarray [… , h] (all leading dims are rows), or a dict of them.
    Returns a float, or a dict of floats for a dict input.
    """
    tau = check_real(tau, "tau", 0.0, math.inf)
    if isinstance(activations, Mapping):
        if not activations:
            raise ValueError("activations must not be an empty dict")
        return {k: dead_fraction(v, tau) for k, v in activations.items()}
    a = _rows(_as_tensor(activations, "activations"))
    return float((~(a.abs() > tau).any(0)).double().mean())


# ---------------------------------------------------------------------------
# sparsifying activations
# ---------------------------------------------------------------------------


def _quantile(v: torch.Tensor, q: float, dim=None) -> torch.Tensor:
    """Quantile of ``v`` (linear interpolation) for any size (``torch.quantile`` caps the size)."""
    v = v.double()
    if dim is None:
        v = v.reshape(-1)
        dim = 0
    s = v.sort(dim=dim).values
    n = s.shape[dim]
    pos = q * (n - 1)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    w = pos - lo
    a, b = s.select(dim, lo), s.select(dim, hi)
    return a + (b - a) * w  # exact when a == b (a·(1−w) + a·w is not), and between a and b


def cats_threshold(activations, sparsity: float):
    """CATS threshold: the ``sparsity``-quantile of ``|a|`` on calibration data (Lee et al. 2024).

    ``t = Quantile_s(|a|)`` so that ``CATS(a) = a·1[|a| ≥ t]`` zeroes a fraction ``s`` of
    the calibration entries (one threshold per layer).

    activations : Tensor | ndarray [… , h] or a dict ``{layer: array}``;
    sparsity : float in [0, 1).  Returns a float (``0.0`` for sparsity 0), or a dict.
    """
    sparsity = check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)
    if isinstance(activations, Mapping):
        if not activations:
            raise ValueError("activations must not be an empty dict")
        return {k: cats_threshold(v, sparsity) for k, v in activations.items()}
    a = _as_tensor(activations, "activations")
    if sparsity == 0.0:
        return 0.0
    return float(_quantile(a.abs(), sparsity))


def chess_thresholds(activations, scale, sparsity: float) -> torch.Tensor:
    """CHESS channel-wise thresholds (He et al. 2024, Sec. 3.2; authors' code ``ZeonfaiHo/CHESS``).

    Entry ``(r, i)`` is scored by its importance ``ι_{r,i} = a_{r,i}²·c_i²``; ONE cutoff ``T`` per
    layer is the ``sparsity``-quantile of ``ι`` over all calibration entries, and channel ``i``'s
    threshold is ``τ_i = √T / c_i``, so that ``|a_{r,i}| ≥ τ_i ⇔ ι_{r,i} ≥ T``.  Channels thus get
    *different* sparsities, according to their scale.  In the authors' gated-MLP code
    ``ι = a_gate²·E[a_up²]`` (``c_i² = E[a_up,i²]``); for a non-gated MLP the analogue of the
    channel's scale is ``c_i = ‖W_down[:, i]‖₂`` (the factor the channel's output is multiplied by).

    activations : [… , h] calibration activations;  scale : [h] positive channel scales ``c``;
    sparsity in [0, 1).  Returns a float tensor ``τ`` [h] (zeros for sparsity 0).
    """
    sparsity = check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)
    a = _rows(_as_tensor(activations, "activations")).abs().double()
    c = _as_tensor(scale, "scale").double().reshape(-1)
    if c.shape[0] != a.shape[-1]:
        raise ValueError(f"scale must have shape [{a.shape[-1]}] (one per channel); got {tuple(c.shape)}")
    if not bool((c > 0).all()):
        raise ValueError("scale must be > 0 for every channel")
    if sparsity == 0.0:
        return torch.zeros(a.shape[-1])
    cut = _quantile((a * c) ** 2, sparsity)
    return (cut.sqrt() / c).float()


def fatrelu(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """FATReLU (ProSparse step 3, Song et al. 2024, Sec. 3.3): ``x·1[x ≥ T]``, a ReLU with a raised cut ``T ≥ 0``."""
    threshold = check_real(threshold, "threshold", 0.0, math.inf)
    return x * (x >= threshold) if threshold > 0 else F.relu(x)


def prosparse_lambda(step: int, boundaries: Sequence[int], values: Sequence[float]) -> float:
    """ProSparse's progressive L1 factor, rising along quarter-sines in stages (Song et al. 2024, Sec. 3.2).

    With stage ends ``T_1 < … < T_m`` (``T_0 = 0``) and factors ``λ_1 ≤ … ≤ λ_m`` (``λ_0 = 0``),
    for ``T_{i−1} ≤ t < T_i``:  ``λ(t) = λ_{i−1} + (λ_i − λ_{i−1})·sin(π/2·(t − T_{i−1})/(T_i − T_{i−1}))``;
    ``λ(t) = λ_m`` after the last stage.  (Schedule reconstructed from the paper's description.)
    """
    step = check_int(step, "step", 0)
    b = [int(v) for v in boundaries]
    lam = [float(v) for v in values]
    if len(b) == 0 or len(b) != len(lam):
        raise ValueError(f"boundaries and values must be non-empty and of equal length; got {len(b)} and {len(lam)}")
    if b[0] <= 0 or any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
        raise ValueError(f"boundaries must be strictly increasing positive steps; got {b}")
    if any(v < 0 for v in lam):
        raise ValueError(f"values must be >= 0; got {lam}")
    t_prev, l_prev = 0, 0.0
    for t_i, l_i in zip(b, lam):
        if step < t_i:
            return l_prev + (l_i - l_prev) * math.sin(0.5 * math.pi * (step - t_prev) / (t_i - t_prev))
        t_prev, l_prev = t_i, l_i
    return lam[-1]


def deft_density_loss(a: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """DEFT's differentiable density: ``mean(a² / (a² + ε))`` (≈ fraction nonzero as ε → 0)."""
    eps = check_real(eps, "eps", 0.0, math.inf, low_open=True)
    a2 = a * a
    return (a2 / (a2 + eps)).mean()


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE = Σ_b (|B_b|/n)·|acc(B_b) − conf(B_b)| over equal-width confidence bins (Guo et al. 2017).

    probs : [n, classes] predicted probabilities;  labels : [n] ints;  n_bins : int >= 1.
    """
    n_bins = check_int(n_bins, "n_bins", 1)
    p = torch.as_tensor(probs, dtype=torch.float64)
    y = torch.as_tensor(labels)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be [n, classes] and labels [n]; got {tuple(p.shape)} and {tuple(y.shape)}")
    conf, pred = p.max(-1)
    correct = (pred == y).double()
    bins = torch.clamp((conf * n_bins).long(), max=n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += float(m.double().mean()) * abs(float(correct[m].mean()) - float(conf[m].mean()))
    return ece


# ---------------------------------------------------------------------------
# Sparsing Law: CETT and PPL-p% sparsity
# ---------------------------------------------------------------------------


def neuron_importance(a: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """``n_i = |a_i|·‖W_down[:, i]‖₂`` (Luo et al. 2024, Sparsing Law), shape of ``a``."""
    return a.abs() * w_down.norm(dim=0)


def _cett_curve(a: torch.Tensor, w_down: torch.Tensor):
    """``t -> CETT(t)`` for fixed ``a`` [rows, h] and ``w_down`` [d, h] (float64; rows with
    ``W_down a = 0`` skipped), and the largest importance."""
    a = _rows(a).double()
    w = w_down.double()
    n = neuron_importance(a, w)
    den = (a @ w.T).norm(dim=-1)
    ok = den > 0

    def f(t: float) -> float:
        if not ok.any():
            return 0.0
        cut = a * (n <= t)
        return float(((cut @ w.T).norm(dim=-1)[ok] / den[ok]).mean())

    return f, float(n.max()) if n.numel() else 0.0


@torch.no_grad()
def cett(a: torch.Tensor, w_down: torch.Tensor, t: float) -> float:
    """Cumulative errors of tail truncation (Sparsing Law, Luo et al. 2024, Sec. 3):

    ``CETT(t) = mean_rows ‖W_down (a ⊙ 1[n ≤ t])‖₂ / ‖W_down a‖₂``, ``n`` from :func:`neuron_importance`.

    a : [… , h];  w_down : [d, h].  Rows with ``W_down a = 0`` are skipped.
    """
    t = check_real(t, "t", 0.0, math.inf)
    return _cett_curve(a, w_down)[0](t)


@torch.no_grad()
def cett_threshold(a: torch.Tensor, w_down: torch.Tensor, target: float, iters: int = 30) -> float:
    """The largest ``t`` with ``CETT(t) ≤ target`` (bisection; CETT is non-decreasing in ``t``)."""
    target = check_real(target, "target", 0.0, 1.0)
    f, top = _cett_curve(a, w_down)
    lo, hi = 0.0, top + 1e-12
    if f(lo) > target:
        return 0.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------
# sparse MLP forward
# ---------------------------------------------------------------------------


def dense_mlp_forward(x, w_up, b_up, w_down, b_down):
    """``ReLU(x W_upᵀ + b_up) W_downᵀ + b_down``; x [n, d], w_up [h, d], w_down [d, h]."""
    return F.linear(F.relu(F.linear(x, w_up, b_up)), w_down, b_down)


def sparse_down(a: torch.Tensor, w_down_t: torch.Tensor, b_down: torch.Tensor | None = None,
                dense_above: float = 0.25) -> torch.Tensor:
    """``a W_downᵀ + b`` computed from the active neurons only.

    Gathers the rows of ``W_downᵀ`` [h, d] (stored transposed, so rows are contiguous)
    for the units active in any row of ``a`` [n, h] and multiplies ``a[:, S] W_downᵀ[S]``;
    exact (zeros contribute nothing).  Falls back to the dense product when the active
    set is larger than ``dense_above·h`` (gathering would cost more than it saves; the default 0.25
    follows the CPU crossover measured in ``benchmarks/bench_lazy_neurons.py``, between 70% and 90%
    sparsity for a 1024 × 4096 layer).
    """
    dense_above = check_real(dense_above, "dense_above", 0.0, 1.0)
    if a.ndim != 2 or w_down_t.ndim != 2 or a.shape[1] != w_down_t.shape[0]:
        raise ValueError(f"a must be [n, h] and w_down_t [h, d]; got {tuple(a.shape)} and {tuple(w_down_t.shape)}")
    active = (a != 0).any(0).nonzero().squeeze(1)
    if active.numel() > dense_above * a.shape[1]:
        out = a @ w_down_t
    else:
        out = a.index_select(1, active) @ w_down_t.index_select(0, active)
    return out + b_down if b_down is not None else out


def sparse_mlp_forward(x, w_up, b_up, w_down_t, b_down, dense_above: float = 0.25):
    """MLP forward ``ReLU(x W_upᵀ + b_up) W_downᵀ + b_down`` skipping inactive neurons in the down projection.

    x [n, d];  w_up [h, d];  b_up [h];  w_down_t [h, d] (``W_down`` transposed);  b_down [d].
    Equal to :func:`dense_mlp_forward` up to floating-point summation order.
    """
    return sparse_down(F.relu(F.linear(x, w_up, b_up)), w_down_t, b_down, dense_above)


def firing_frequency(activations, tau: float = 0.0) -> torch.Tensor:
    """How often each unit fires: ``f_i = (1/R) Σ_r 1[|a_{r,i}| > τ]`` over the R rows (Li et al. 2023, Fig. B.2).

    ``f_i = 0``: a dead unit; ``f_i = 1``: an always-on unit.  activations : [… , h].  Returns [h].
    """
    tau = check_real(tau, "tau", 0.0, math.inf)
    a = _rows(_as_tensor(activations, "activations"))
    return (a.abs() > tau).double().mean(0)


def _token_core(a: torch.Tensor, alpha: float) -> torch.Tensor:
    """Token-wise core neurons of every row of ``a`` [..., h] (float64), all rows at once: bool [..., h].

    The ``alpha``-quantile of a row's positive entries (linear interpolation, as :func:`_quantile`)
    is read off the row sorted with its non-positive entries moved to the front as −∞: the ``n_r``
    positive values are the last ``n_r`` of the sorted row.  Rows with no positive entry have no core."""
    h = a.shape[-1]
    pos_mask = a > 0
    n = pos_mask.sum(-1, keepdim=True)                                       # [..., 1]
    s = torch.where(pos_mask, a, torch.full_like(a, -math.inf)).sort(dim=-1).values
    pos = alpha * (n.double() - 1).clamp(min=0)
    lo, hi = pos.floor(), pos.ceil()
    w = pos - lo
    first = h - n                                                            # index of the smallest positive value
    at = lambda k: s.gather(-1, (first + k.long()).clamp(max=h - 1))  # noqa: E731
    lo_v, hi_v = at(lo), at(hi)
    q = lo_v + (hi_v - lo_v) * w                                             # as _quantile: exact when lo_v == hi_v
    return pos_mask & (a >= q) & (n > 0)


def core_neurons(activations, alpha: float = 0.4, beta: float = 0.2) -> torch.Tensor:
    """CoreInfer's sentence-wise core neurons (Wang et al. 2024, Sec. 3).

    Token-wise core neurons of row ``r``: the positively activated units at or above the
    ``alpha``-quantile of that row's positive activations (the top ``1 − α`` of them).
    Sentence-wise core neurons: the units that are token-wise core for at least a fraction
    ``beta`` of the sentence's tokens.

    activations : [tokens, h] for one sentence;  alpha in [0, 1);  beta in (0, 1].  Returns a bool mask [h].
    (:func:`core_neurons_batch`: many sentences at once.)
    """
    alpha = check_real(alpha, "alpha", 0.0, 1.0, high_open=True)
    beta = check_real(beta, "beta", 0.0, 1.0, low_open=True)
    a = _rows(_as_tensor(activations, "activations")).double()
    return _token_core(a, alpha).double().mean(0) >= beta


def core_neurons_batch(activations, alpha: float = 0.4, beta: float = 0.2) -> torch.Tensor:
    """:func:`core_neurons` of each of ``n`` sentences at once, without a loop over sentences or tokens.

    activations : [n, tokens, h];  returns a bool mask [n, h] (row ``i`` = ``core_neurons(activations[i])``)."""
    alpha = check_real(alpha, "alpha", 0.0, 1.0, high_open=True)
    beta = check_real(beta, "beta", 0.0, 1.0, low_open=True)
    a = _as_tensor(activations, "activations")
    if a.ndim != 3:
        raise ValueError(f"activations must be [n, tokens, h] (3-D); got shape {tuple(a.shape)}")
    return _token_core(a.double(), alpha).double().mean(-2) >= beta


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two bool masks of one shape (1 when both are empty)."""
    a, b = torch.as_tensor(a, dtype=torch.bool), torch.as_tensor(b, dtype=torch.bool)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def jaccard_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`jaccard` of matching rows of two bool masks [..., h]: float64 [...] (1 where both rows are empty)."""
    a, b = torch.as_tensor(a, dtype=torch.bool), torch.as_tensor(b, dtype=torch.bool)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    union = (a | b).sum(-1)
    inter = (a & b).sum(-1)
    return torch.where(union == 0, torch.ones_like(union, dtype=torch.float64),
                       inter.double() / union.clamp(min=1).double())


# ---------------------------------------------------------------------------
# temporal sparsity: the Delta Activation Layer
# ---------------------------------------------------------------------------


def quantize_ste(a: torch.Tensor, step: float) -> torch.Tensor:
    """Uniform quantization ``Q(a) = step·round(a / step)`` with a straight-through gradient (∂Q/∂a = 1).

    The quantizer of the Delta Activation Layer (Yousefzadeh & Sifalakis 2021, Sec. 3): it makes
    small changes of an activation between time steps exactly zero.  a : tensor of any shape;
    step : float > 0.  Returns a tensor of ``a``'s shape, dtype and device.
    """
    step = check_real(step, "step", 0.0, math.inf, low_open=True)
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"a must be a torch.Tensor; got {type(a).__name__}")
    q = torch.round(a / step) * step
    return a + (q - a).detach()


def temporal_deltas(a: torch.Tensor, step: float) -> torch.Tensor:
    """The Delta Activation Layer's output along time (axis −2): ``Δ_t = Q(a_t) − Q(a_{t−1})`` for ``t ≥ 1``
    (Yousefzadeh & Sifalakis 2021, Sec. 3), ``Q`` = :func:`quantize_ste`.

    Delta inference sends only the nonzero ``Δ_t`` to the next layer, which adds ``W Δ_t`` to its
    previous pre-activation; since the deltas telescope (``Σ_{s≤t} Δ_s = Q(a_t) − Q(a_0)``) the
    result equals the quantized network's.  a : [… , T, h] with T ≥ 2.  Returns [… , T − 1, h].
    """
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"a must be a torch.Tensor; got {type(a).__name__}")
    if a.ndim < 2 or a.shape[-2] < 2:
        raise ValueError(f"a must be [..., T, h] with T >= 2 time steps; got shape {tuple(a.shape)}")
    q = quantize_ste(a, step)
    return q[..., 1:, :] - q[..., :-1, :]


def delta_density(a: torch.Tensor, step: float) -> float:
    """Fraction of activation changes that delta inference must propagate: the share of nonzero
    entries of :func:`temporal_deltas` (``1 −`` the temporal sparsity).  a : [… , T, h], T ≥ 2."""
    with torch.no_grad():
        return float((temporal_deltas(a, step) != 0).double().mean())


def lora_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, a: torch.Tensor,
                b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """A linear layer with a LoRA adapter (Hu et al. 2021, Eq. 3), as DEFT fine-tunes with it:
    ``y = x Wᵀ + bias + scale · (x Aᵀ) Bᵀ``, the frozen ``W`` plus the low-rank update ``B A``.

    x : [..., d_in]; weight : [d_out, d_in]; bias : [d_out] or None; a : [r, d_in]; b : [d_out, r].
    With ``B = 0`` (LoRA's initialisation) the output equals the frozen layer's.  Returns [..., d_out].
    """
    for name, t in (("x", x), ("weight", weight), ("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    scale = check_real(scale, "scale", 0.0, math.inf)
    if weight.ndim != 2 or a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"weight, a and b must be 2-D; got shapes {tuple(weight.shape)}, {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    if a.shape[1] != weight.shape[1] or b.shape != (weight.shape[0], a.shape[0]) or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"shapes must be x [..., d_in], weight [d_out, d_in], a [r, d_in], b [d_out, r]; got "
                         f"x {tuple(x.shape)}, weight {tuple(weight.shape)}, a {tuple(a.shape)}, b {tuple(b.shape)}")
    return F.linear(x, weight, bias) + scale * F.linear(F.linear(x, a), b)
