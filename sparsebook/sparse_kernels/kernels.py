"""Pure math of the sparse-kernels chapter: reference semantics, masks, ideal speedups, crossovers.

Everything here runs on the CPU in float64/float32 PyTorch and is the oracle of the GPU kernels
(:mod:`sparsebook.sparse_kernels.gpu`) and of the CPU sparse convolution.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from sparsebook.validate import check_int, check_real

#: the 1×1 (pointwise) convolutions of MobileNet v1 (width 1.0) at a 224×224 input, in order:
#: ``(C_in, C_out, side)`` with ``side × side`` output pixels (Howard et al. 2017, Table 1).
MOBILENET_V1_POINTWISE = ((32, 64, 112), (64, 128, 56), (128, 128, 56), (128, 256, 28), (256, 256, 28),
                          (256, 512, 14), (512, 512, 14), (512, 512, 14), (512, 512, 14), (512, 512, 14),
                          (512, 512, 14), (512, 1024, 7), (1024, 1024, 7))


def _tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    return x


def activation_mask(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """The active inputs ``m_k = 1[|x_k| > t]`` (CATS's thresholded activation, Lee et al. 2024, Eq. 3).

    ``x``: any shape; ``threshold`` ``t >= 0``.  Strict ``>`` so that exact zeros are never active:
    at ``t = 0`` the mask keeps every nonzero input.
    """
    x = _tensor(x, "x")
    t = check_real(threshold, "threshold", 0.0)
    return x.abs() > t


def threshold_for_sparsity(x: torch.Tensor, sparsity: float) -> float:
    """The threshold ``t`` that cuts the ``k = ⌊sK + ½⌋`` smallest ``|x_k|`` of ``x`` (``K`` entries).

    ``t = |x|_{(k)}``, the k-th smallest magnitude (0 when ``k = 0``), so that without ties
    :func:`activation_mask` keeps exactly ``K − k`` inputs.  CATS calibrates ``t`` as this
    quantile of ``|SiLU(x W_gate)|`` on calibration data.
    """
    x = _tensor(x, "x")
    s = check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)
    a = x.detach().abs().flatten().double()
    k = int(math.floor(s * a.numel() + 0.5))
    if k == 0:
        return 0.0
    return float(torch.kthvalue(a, k).values)  # the k-th smallest, O(K): no full sort


def sparse_gemv_reference(x: torch.Tensor, wt: torch.Tensor, threshold: float) -> torch.Tensor:
    """``y_n = Σ_k wt[k, n] · x_k · 1[|x_k| > t]`` in float64 (the GPU kernel's semantics).

    ``x``: ``[K]``; ``wt``: ``[K, N]``, the weight stored input-major (``Wᵀ`` of an ``nn.Linear``
    weight ``W`` of shape ``[N, K]``), so the active inputs select rows.  Returns ``[N]`` float64.
    """
    x, wt = _tensor(x, "x"), _tensor(wt, "wt")
    if x.ndim != 1 or wt.ndim != 2 or wt.shape[0] != x.shape[0]:
        raise ValueError(f"x must be [K] and wt [K, N] with the same K; got {tuple(x.shape)} and {tuple(wt.shape)}")
    m = activation_mask(x, threshold)
    xd = torch.where(m, x.double(), torch.zeros((), dtype=torch.float64))
    return xd @ wt.double()


def sparse_rows_reference(x: torch.Tensor, a: torch.Tensor, w: torch.Tensor, threshold: float) -> torch.Tensor:
    """CATS's up projection ``h_i = a_i · (W_up x)_i · 1[|a_i| > t]`` in float64.

    ``x``: ``[D]``; ``a``: ``[F]`` (the SiLU of the gate projection); ``w``: ``[F, D]``.  Only the rows
    ``i`` with an active gate need to be read.  Returns ``[F]`` float64.
    """
    x, a, w = _tensor(x, "x"), _tensor(a, "a"), _tensor(w, "w")
    if x.ndim != 1 or a.ndim != 1 or w.ndim != 2 or w.shape != (a.shape[0], x.shape[0]):
        raise ValueError(f"need x [D], a [F], w [F, D]; got {tuple(x.shape)}, {tuple(a.shape)}, {tuple(w.shape)}")
    m = activation_mask(a, threshold)
    return torch.where(m, a.double() * (w.double() @ x.double()), torch.zeros((), dtype=torch.float64))


def cats_mlp_reference(x, w_gate, w_up, w_down, threshold: float) -> torch.Tensor:
    """The CATS FFN ``y = W_down (CATS_t(SiLU(W_gate x)) ⊙ W_up x)`` in float64 (Lee et al. 2024, Eq. 4).

    ``x``: ``[D]``; ``w_gate``, ``w_up``: ``[F, D]``; ``w_down``: ``[D, F]`` (``nn.Linear`` layouts).
    Equal to :func:`sparse_gemv_reference` of :func:`sparse_rows_reference`'s output with ``w_downᵀ``
    at threshold 0 (the composition the GPU layer runs).
    """
    a = torch.nn.functional.silu(_tensor(w_gate, "w_gate").double() @ _tensor(x, "x").double())
    h = sparse_rows_reference(x, a, w_up, threshold)
    return _tensor(w_down, "w_down").double() @ h


def ideal_speedup(active_fraction: float) -> float:
    """The ideal speedup of a memory-bound GEMV that reads only a fraction ``ρ`` of the weight bytes: ``1/ρ``."""
    rho = check_real(active_fraction, "active_fraction", 0.0, 1.0, low_open=True)
    return 1.0 / rho


def fraction_of_ideal(speedup, active_fraction):
    """Measured speedup over the ideal ``1/ρ``: ``speedup · ρ`` (1 = the kernel reads at dense bandwidth)."""
    return np.asarray(speedup, dtype=float) * float(active_fraction)


def layer_byte_fraction(sparsity: float, d_model: int, d_ff: int, attention: str = "dense") -> float:
    """Fraction of a decoder layer's weight bytes read per token when the FFN is activation-sparse.

    A LLaMA-style layer holds ``4 d²`` attention weights (q, k, v, o) and ``3 d f`` FFN weights
    (gate, up, down).  CATS reads all of the gate and a fraction ``1 − s`` of up and down;
    ``attention="chess"`` also reads ``1 − s`` of q and o (CHESS's selective sparsification of the
    inputs of the q and o projections).  Returns ``(read bytes) / (dense bytes)``.
    """
    s = check_real(sparsity, "sparsity", 0.0, 1.0)
    d = check_int(d_model, "d_model", 1)
    f = check_int(d_ff, "d_ff", 1)
    if attention not in ("dense", "chess"):
        raise ValueError(f"attention must be 'dense' or 'chess'; got {attention!r}")
    att = 4 * d * d if attention == "dense" else (2 + 2 * (1 - s)) * d * d
    return (att + d * f * (1 + 2 * (1 - s))) / (4 * d * d + 3 * d * f)


def two_four_mask(w: torch.Tensor) -> torch.Tensor:
    """The 2:4 semi-structured mask: in every group of 4 consecutive inputs (last axis) keep the 2 largest ``|w|``.

    ``w``: ``[..., K]`` with ``K`` a multiple of 4.  Ties keep the earlier positions.  This is the
    pattern sparse tensor cores (and ``torch.sparse.to_sparse_semi_structured``) accept: exactly
    50% zeros, at most 2 nonzeros in each aligned group of 4.
    """
    w = _tensor(w, "w")
    if w.ndim < 1 or w.shape[-1] % 4:
        raise ValueError(f"w's last dimension must be a multiple of 4; got shape {tuple(w.shape)}")
    g = w.detach().abs().reshape(-1, 4)
    # rank within the group by |w| descending; the stable sort keeps earlier positions first on ties
    order = torch.argsort(-g, dim=1, stable=True)
    keep = torch.zeros_like(g, dtype=torch.bool)
    keep.scatter_(1, order[:, :2], True)
    return keep.reshape(w.shape)


def is_two_four(w: torch.Tensor) -> bool:
    """Whether every aligned group of 4 along the last axis has at most 2 nonzeros."""
    w = _tensor(w, "w")
    if w.shape[-1] % 4:
        return False
    return bool(((w.reshape(-1, 4) != 0).sum(1) <= 2).all())


def random_sparse_weight(c_out: int, c_in: int, sparsity: float, generator: torch.Generator) -> torch.Tensor:
    """A ``[c_out, c_in]`` float32 N(0, 1/c_in) weight with exactly ``⌊s·n + ½⌋`` zeros at uniformly random positions.

    Magnitude pruning of i.i.d. Gaussian weights gives the same pattern statistics (uniformly
    random positions), which is all a sparse kernel's speed depends on.
    """
    co, ci = check_int(c_out, "c_out", 1), check_int(c_in, "c_in", 1)
    s = check_real(sparsity, "sparsity", 0.0, 1.0)
    n = co * ci
    w = torch.randn(n, generator=generator) / math.sqrt(ci)
    k = int(math.floor(s * n + 0.5))
    w[torch.randperm(n, generator=generator)[:k]] = 0.0
    return w.reshape(co, ci)


def conv1x1_as_matmul(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A 1×1 convolution as a matrix product: ``Y[c_out, P] = W[c_out, c_in] · X[c_in, P]``, ``P = H·W`` pixels.

    ``w`` may be dense or a sparse CSR tensor (then ``torch.sparse.mm``: sparse weight × dense
    activation, the scheme of Elsen et al. 2020, with activations stored channel-major, CHW).
    ``x``: ``[c_in, H, W]``; returns ``[c_out, H, W]``.
    """
    x = _tensor(x, "x")
    if x.ndim != 3 or w.shape[1] != x.shape[0]:
        raise ValueError(f"x must be [c_in, H, W] with c_in = w.shape[1]; got {tuple(x.shape)}, w {tuple(w.shape)}")
    x2 = x.reshape(x.shape[0], -1)
    y = torch.sparse.mm(w, x2) if w.layout == torch.sparse_csr else torch.mm(w, x2)
    return y.reshape(w.shape[0], x.shape[1], x.shape[2])


def crossover_sparsity(sparsities, speedups) -> float:
    """The sparsity from which sparse wins: where ``speedup`` crosses 1 for the last time, by linear interpolation.

    ``sparsities`` increasing, ``speedups`` (dense time / sparse time) at each.  Returns the first
    sparsity if every speedup is >= 1 and ``nan`` if the last one is < 1 (sparse never wins).
    """
    s = np.asarray(sparsities, dtype=float)
    r = np.asarray(speedups, dtype=float)
    if s.ndim != 1 or s.shape != r.shape or s.size < 1:
        raise ValueError(f"sparsities and speedups must be 1-D of one length; got {s.shape}, {r.shape}")
    if np.any(np.diff(s) <= 0):
        raise ValueError("sparsities must be strictly increasing")
    if r[-1] < 1:
        return float("nan")
    below = np.nonzero(r < 1)[0]
    if below.size == 0:
        return float(s[0])
    j = int(below[-1])
    return float(s[j] + (1 - r[j]) * (s[j + 1] - s[j]) / (r[j + 1] - r[j]))


# ---------------------------------------------------------------------------
# Thresholds from calibration data: CATS (one per tensor) and CHESS (one per channel)
# ---------------------------------------------------------------------------
def threshold_activation(a: torch.Tensor, threshold) -> torch.Tensor:
    """``a ⊙ 1[|a| > t]`` with a scalar ``t`` (CATS) or one threshold per channel, ``t`` of shape ``[F]`` (CHESS).

    ``a``: ``[..., F]`` (channels last).  Strict ``>`` as in :func:`activation_mask`, so that at
    ``t = 0`` only exact zeros are cut.  Thresholds must be ``>= 0``.
    """
    a = _tensor(a, "a")
    t = torch.as_tensor(threshold, dtype=a.dtype)
    if t.ndim > 1 or (t.ndim == 1 and (a.ndim < 1 or t.shape[0] != a.shape[-1])):
        raise ValueError(f"threshold must be a scalar or have shape [{a.shape[-1] if a.ndim else '?'}]; "
                         f"got {tuple(t.shape)}")
    if torch.any(t < 0) or torch.any(torch.isnan(t)):
        raise ValueError("threshold must be >= 0 (and not NaN)")
    return a * (a.abs() > t)


def cats_threshold(a_gate: torch.Tensor, sparsity: float) -> float:
    """CATS's per-tensor cutoff (Lee et al. 2024, §3): the ``sparsity`` quantile of ``|a_gate|`` over the calibration set.

    ``a_gate``: ``[T, F]`` activations ``SiLU(x W_gate)`` of ``T`` calibration tokens.  One number
    for the whole layer: :func:`threshold_for_sparsity` of all ``T·F`` entries.
    """
    a = _tensor(a_gate, "a_gate")
    if a.ndim != 2:
        raise ValueError(f"a_gate must be [T, F]; got {tuple(a.shape)}")
    return threshold_for_sparsity(a, sparsity)


def chess_thresholds(a_gate: torch.Tensor, a_up: torch.Tensor, sparsity: float) -> torch.Tensor:
    """CHESS's channel-wise thresholds (He et al. 2024, §3.2, channel-wise thresholding), from calibration data.

    CHESS ranks the entries of the gate activation by their estimated effect on the FFN output,
    the importance score ``u_{t,i} = |a^gate_{t,i}| · E_t|a^up_{t,i}|`` (the up activation replaced by
    its calibration mean magnitude ``μ_i``, so the score needs no up projection at inference).
    One importance cutoff ``τ`` per layer, the ``sparsity`` quantile of ``u`` over all ``T·F``
    entries, becomes one gate threshold per channel, ``t_i = τ / μ_i``: keeping ``|a_i| > t_i`` is
    keeping ``u_i > τ``.  ``a_gate``, ``a_up``: ``[T, F]``.  Returns ``[F]`` float64
    (``+inf`` where ``μ_i = 0``: such a channel never contributes).
    """
    g, u = _tensor(a_gate, "a_gate"), _tensor(a_up, "a_up")
    if g.ndim != 2 or g.shape != u.shape:
        raise ValueError(f"a_gate and a_up must both be [T, F]; got {tuple(g.shape)} and {tuple(u.shape)}")
    mu = u.detach().abs().double().mean(0)
    tau = threshold_for_sparsity(g.detach().abs().double() * mu, sparsity)
    return torch.where(mu > 0, tau / mu.clamp_min(1e-300), torch.full_like(mu, math.inf))


# ---------------------------------------------------------------------------
# Dispatch: sparse or dense per projection, from a measured crossover table
# ---------------------------------------------------------------------------
def dispatch_crossover(sparsities, sparse_ms, dense_ms) -> float:
    """The crossover of a dispatcher: the lowest measured sparsity from which the sparse kernel beats dense at every higher one.

    ``sparsities`` strictly increasing; ``sparse_ms``, ``dense_ms``: times at each.  Returns
    ``1.0`` (never sparse) when the kernel loses at the highest sparsity.  Unlike
    :func:`crossover_sparsity` it does not interpolate: a dispatcher may only switch where it was measured to win.
    """
    s = np.asarray(sparsities, dtype=float)
    a, b = np.asarray(sparse_ms, dtype=float), np.asarray(dense_ms, dtype=float)
    if s.ndim != 1 or s.size < 1 or a.shape != s.shape or b.shape != s.shape:
        raise ValueError(f"sparsities, sparse_ms and dense_ms must be 1-D of one length; got {s.shape}, {a.shape}, {b.shape}")
    if np.any(np.diff(s) <= 0):
        raise ValueError("sparsities must be strictly increasing")
    cross = 1.0
    for j in range(s.size - 1, -1, -1):
        if a[j] < b[j]:
            cross = float(s[j])
        else:
            break
    return cross


def dispatch_plan(sparsity: dict, shape_of: dict, crossovers: dict) -> dict:
    """Sparse or dense for each projection: ``"sparse"`` iff its calibrated sparsity ``>=`` the crossover of its shape.

    ``sparsity``: projection name -> calibrated input sparsity in [0, 1]; ``shape_of``: name -> key
    of ``crossovers`` (shape -> crossover sparsity, as :func:`dispatch_crossover` measures it).
    A projection whose shape was never measured goes dense (the safe side).  A pure function
    of numbers known before the token, so the choice costs the GPU nothing.
    """
    if not isinstance(sparsity, dict) or not isinstance(shape_of, dict) or not isinstance(crossovers, dict):
        raise TypeError("sparsity, shape_of and crossovers must be dicts")
    plan = {}
    for name, s in sparsity.items():
        s = check_real(s, f"sparsity[{name!r}]", 0.0, 1.0)
        if name not in shape_of:
            raise ValueError(f"shape_of has no entry for projection {name!r}")
        c = crossovers.get(shape_of[name])
        plan[name] = "sparse" if c is not None and s >= c else "dense"
    return plan
