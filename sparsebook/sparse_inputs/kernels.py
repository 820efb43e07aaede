"""Sparse inputs and structured operators, kernels: pure math for DIN and MgNO.

Deep Interest Network (Zhou et al. 2018, :cite:`zhou2018din`):

- :func:`activation_unit_input` and :func:`weighted_pool`: the local activation unit's input
  ``[e_j, v_A, e_j ⊙ v_A, e_j − v_A]`` and the candidate-dependent user vector
  ``v_U(A) = Σ_j a(e_j, v_A) e_j`` (Eq. 3), weights *not* normalised (no softmax, Sec. 4.3);
  :func:`sum_pool` and :func:`mean_pool` are the Embedding&MLP baseline's pooling.
- :func:`dice`: the data-adaptive activation (Eq. 8-9) with the statistics of the batch.
- :func:`mba_l2` and :func:`full_l2`: mini-batch aware L2 (Eq. 5-6: only the embedding rows
  present in the batch, each scaled by ``1/n_j``) against L2 on the whole table.
- :func:`auc` (Mann-Whitney, ties counted one half) and :func:`rela_impr` (Eq. 11).
- :func:`sparse_grad_bytes`: bytes held by a (sparse or dense) gradient tensor.

MgNO (He, Liu & Xu 2024, :cite:`he2024mgno`):

- :func:`restrict` and :func:`prolong`: a stride-2 convolution and its transposed convolution
  (with the same kernel ``P = Rᵀ`` exactly); :func:`full_weighting` is the classical kernel
  ``[1/4, 1/2, 1/4]`` (tensor product in 2-D), for which linear interpolation is ``2^dim Rᵀ``.
- :func:`vcycle`: the multi-channel V-cycle that parameterizes one linear operator ``W_ij``.
- :func:`spectral_conv`: the Fourier layer's ``F⁻¹(R · F v)`` on the lowest ``modes`` (FNO).
- :func:`darcy_1d`, :func:`darcy_2d`: finite-volume solutions of ``−∇·(a∇u) = f`` (SciPy sparse),
  Dirichlet (``u = 0``) or Neumann (``a ∂u/∂n = 0``, mean-zero ``u``) boundaries.
- :func:`relative_l2`: ``‖û − u‖₂ / ‖u‖₂`` per sample.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from sparsebook.validate import check_int, check_real

BCS = ("dirichlet", "neumann")
PADDING = {"dirichlet": "constant", "neumann": "replicate"}


def _tensor(x, name: str, ndim: int | None = None, min_ndim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions; got shape {tuple(x.shape)}")
    return x


# ---------------------------------------------------------------------------
# DIN
# ---------------------------------------------------------------------------
def activation_unit_input(e: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Input of DIN's local activation unit (Zhou et al. 2018, Fig. 2): ``[e_j, v_A, e_j ⊙ v_A, e_j − v_A]``.

    ``e``: behaviour embeddings ``[..., L, d]``; ``v``: candidate embedding ``[..., d]``.
    Returns ``[..., L, 4d]`` (the out product of the paper taken element-wise, as its code does).
    """
    e = _tensor(e, "e", min_ndim=2)
    v = _tensor(v, "v", min_ndim=1)
    if v.shape != e.shape[:-2] + e.shape[-1:]:
        raise ValueError(f"v must have shape {tuple(e.shape[:-2] + e.shape[-1:])} (e without its L axis); got {tuple(v.shape)}")
    vv = v.unsqueeze(-2).expand_as(e)
    return torch.cat([e, vv, e * vv, e - vv], dim=-1)


def weighted_pool(e: torch.Tensor, w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """DIN's user representation ``v_U(A) = Σ_j w_j e_j`` (Zhou et al. 2018, Eq. 3), ``w_j = a(e_j, v_A)``.

    The weights are used as they are: no softmax, so ``Σ_j w_j`` is free and carries the intensity
    of the user's interest in the candidate (Sec. 4.3).  ``e``: ``[..., L, d]``; ``w``: ``[..., L]``;
    ``mask`` (optional, bool ``[..., L]``) drops padded behaviours.  Returns ``[..., d]``.
    """
    e = _tensor(e, "e", min_ndim=2)
    w = _tensor(w, "w")
    if w.shape != e.shape[:-1]:
        raise ValueError(f"w must have shape {tuple(e.shape[:-1])}; got {tuple(w.shape)}")
    if mask is not None:
        w = w * mask.to(w.dtype)
    return (w.unsqueeze(-1) * e).sum(-2)


def sum_pool(e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Embedding&MLP's sum pooling ``Σ_j e_j`` over the behaviours: ``[..., L, d] -> [..., d]``."""
    e = _tensor(e, "e", min_ndim=2)
    return weighted_pool(e, torch.ones(e.shape[:-1], dtype=e.dtype, device=e.device), mask)


def mean_pool(e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Average pooling ``(1/L') Σ_j e_j`` over the ``L'`` present behaviours: ``[..., L, d] -> [..., d]``."""
    e = _tensor(e, "e", min_ndim=2)
    n = e.shape[-2] if mask is None else mask.sum(-1, keepdim=True).clamp(min=1).to(e.dtype)
    return sum_pool(e, mask) / n


def dice(s: torch.Tensor, alpha: torch.Tensor, dim: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """Dice (Zhou et al. 2018, Eq. 8-9): ``f(s) = p(s)·s + (1 − p(s))·α·s``,
    ``p(s) = sigmoid((s − E[s]) / √(Var[s] + ε))``.

    ``E`` and ``Var`` are taken over axis ``dim`` of ``s`` (the batch: the paper's training-time
    statistics; the chapter also evaluates on a whole test batch, see the notebook).  ``alpha``
    broadcasts against ``s`` (one slope per unit).  As ``Var[s] → 0`` relative to ``(s − E[s])²``,
    Dice tends to PReLU with its rectification point moved from 0 to the batch mean.
    """
    s = _tensor(s, "s", min_ndim=1)
    eps = check_real(eps, "eps", 0, None, low_open=True)
    if s.shape[dim] < 2:
        raise ValueError(f"s needs at least 2 entries along dim={dim} for batch statistics; got {s.shape[dim]}")
    mean = s.mean(dim, keepdim=True)
    var = s.var(dim, unbiased=False, keepdim=True)
    p = torch.sigmoid((s - mean) / torch.sqrt(var + eps))
    return p * s + (1 - p) * alpha * s


def prelu(s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """PReLU (He et al. 2015), the paper's baseline activation: ``s`` if ``s > 0`` else ``α·s``."""
    s = _tensor(s, "s")
    return torch.where(s > 0, s, alpha * s)


def mba_l2(table: torch.Tensor, rows: torch.Tensor, counts: torch.Tensor, lam: float, sparse: bool = True) -> torch.Tensor:
    """Mini-batch aware L2 (Zhou et al. 2018, Eq. 5-6): ``(λ/2) Σ_{j ∈ B} ‖w_j‖² / n_j``.

    Only the rows ``j`` that occur in the batch ``B`` (``rows``: their ids, each once) are
    penalised, each divided by its frequency ``n_j`` in the training set (``counts``: ``[V]``),
    so the gradient is ``λ w_j / n_j`` on those rows (Eq. 6) and zero elsewhere.  With
    ``sparse=True`` the rows are read through ``F.embedding(sparse=True)``, so the gradient is
    a sparse tensor of ``|B|`` rows.  ``table``: ``[V, d]``.  Returns a scalar.
    """
    table = _tensor(table, "table", ndim=2)
    rows = _tensor(rows, "rows", ndim=1)
    counts = _tensor(counts, "counts", ndim=1)
    lam = check_real(lam, "lam", 0, None)
    if counts.shape[0] != table.shape[0]:
        raise ValueError(f"counts must have one entry per table row ({table.shape[0]}); got {counts.shape[0]}")
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= table.shape[0]):
        raise ValueError(f"rows must lie in [0, {table.shape[0] - 1}]")
    if rows.numel() != torch.unique(rows).numel():
        raise ValueError("rows must hold each row id once (use torch.unique)")
    n = counts[rows].to(table.dtype)
    if rows.numel() and bool((n <= 0).any()):
        raise ValueError("counts must be > 0 for every row present in the batch")
    w = F.embedding(rows, table, sparse=sparse)
    return 0.5 * lam * (w.pow(2).sum(-1) / n).sum()


def full_l2(table: torch.Tensor, lam: float) -> torch.Tensor:
    """L2 on the whole embedding table, ``(λ/2) ‖W‖²``: its gradient ``λW`` is dense, ``[V, d]``."""
    table = _tensor(table, "table", ndim=2)
    lam = check_real(lam, "lam", 0, None)
    return 0.5 * lam * table.pow(2).sum()


def sparse_grad_bytes(grad: torch.Tensor) -> int:
    """Bytes held by a gradient: values (+ int64 indices when it is a sparse COO tensor)."""
    grad = _tensor(grad, "grad")
    if grad.is_sparse:
        return grad._values().numel() * grad._values().element_size() + grad._indices().numel() * 8
    return grad.numel() * grad.element_size()


def auc(scores, labels) -> float:
    """Area under the ROC curve by Mann-Whitney: ``P(s⁺ > s⁻) + ½ P(s⁺ = s⁻)`` (ties by mid-ranks).

    ``scores``, ``labels`` (0/1): shape ``[n]``; both classes must be present.
    """
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length; got {s.size} and {y.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    n1 = int((y == 1).sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("labels must contain both classes")
    r = rankdata(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def rela_impr(auc_model, auc_base):
    """RelaImpr (Zhou et al. 2018, Eq. 11): ``(AUC(model) − 0.5) / (AUC(base) − 0.5) − 1`` (a fraction; ×100 for %)."""
    a = np.asarray(auc_model, dtype=float)
    b = np.asarray(auc_base, dtype=float)
    if np.any(b <= 0.5):
        raise ValueError("auc_base must be > 0.5 (RelaImpr is relative to the base model's lift over chance)")
    return (a - 0.5) / (b - 0.5) - 1.0


def two_level_auc(p_hi: float, p_lo: float, share: float = 0.5) -> float:
    """The Bayes-optimal AUC of the planted task: the score "is the candidate in the user's interests".

    Clicks are Bernoulli(``p_hi``) on a match (a share ``π`` of the samples) and Bernoulli(``p_lo``)
    otherwise, so ``p = P(match | click) = π p_hi / (π p_hi + (1 − π) p_lo)`` and
    ``q = P(match | no click) = π(1 − p_hi) / (π(1 − p_hi) + (1 − π)(1 − p_lo))``, and for a two-valued
    score ``AUC = p (1 − q) + ½ [p q + (1 − p)(1 − q)]`` (ties count one half).
    """
    p_hi = check_real(p_hi, "p_hi", 0, 1, low_open=True)
    p_lo = check_real(p_lo, "p_lo", 0, 1, high_open=True)
    pi = check_real(share, "share", 0, 1, low_open=True, high_open=True)
    p = pi * p_hi / (pi * p_hi + (1 - pi) * p_lo)
    q = pi * (1 - p_hi) / (pi * (1 - p_hi) + (1 - pi) * (1 - p_lo))
    return p * (1 - q) + 0.5 * (p * q + (1 - p) * (1 - q))


# ---------------------------------------------------------------------------
# MgNO: grid transfer, V-cycle, spectral convolution
# ---------------------------------------------------------------------------
def _dim_of(x: torch.Tensor, name: str) -> int:
    x = _tensor(x, name)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must be [batch, channels, n] (1-D) or [batch, channels, n, n] (2-D); got shape {tuple(x.shape)}")
    return x.ndim - 2


def _corr3(xp: torch.Tensor, w: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Cross-correlation of an already padded ``xp`` ``[b, i, n+2(, n+2)]`` with a 3-point (3×3) kernel
    ``w`` ``[o, i, 3(, 3)]``, as one matrix product over the stacked taps (no oneDNN call: on
    the tiny grids of this chapter that is several times faster on a CPU than ``conv1d``)."""
    dim = xp.ndim - 2
    if w.shape[1] != xp.shape[1] or w.shape[2:] != (3,) * dim:
        raise ValueError(f"kernel must have shape [c_out, c_in={xp.shape[1]}{', 3' * dim}]; got {tuple(w.shape)}")
    n = [(s - 3) // stride + 1 for s in xp.shape[2:]]
    if dim == 1:
        taps = [xp[..., m:m + stride * (n[0] - 1) + 1:stride] for m in range(3)]
    else:
        taps = [xp[..., p:p + stride * (n[0] - 1) + 1:stride, q:q + stride * (n[1] - 1) + 1:stride]
                for p in range(3) for q in range(3)]
    cols = torch.stack(taps, dim=2)                              # [b, i, taps, *n]
    return torch.einsum("ok,bk...->bo...", w.reshape(w.shape[0], -1), cols.flatten(1, 2))


def full_weighting(dim: int = 1, channels: int = 1) -> torch.Tensor:
    """The full-weighting restriction kernel ``[1/4, 1/2, 1/4]`` (its tensor product in 2-D),
    diagonal over ``channels``: shape ``[channels, channels, 3(, 3)]``."""
    dim = check_int(dim, "dim", 1, 2)
    channels = check_int(channels, "channels", 1)
    k1 = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    k = k1 if dim == 1 else torch.outer(k1, k1)
    out = torch.zeros((channels, channels) + k.shape, dtype=torch.float64)
    for c in range(channels):
        out[c, c] = k
    return out


def restrict(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Restriction ``R x``: stride-2 convolution with zero padding 1, ``n = 2^k + 1`` nodes → ``2^{k−1} + 1``.

    ``x``: ``[batch, c_in, n(, n)]``; ``kernel``: ``[c_out, c_in, 3(, 3)]``.
    """
    dim = _dim_of(x, "x")
    if any((s - 1) % 2 for s in x.shape[2:]) or min(x.shape[2:]) < 3:
        raise ValueError(f"x must have n = 2^k + 1 >= 3 nodes per axis (odd); got {tuple(x.shape[2:])}")
    return _corr3(F.pad(x, (1, 1) * dim), kernel, stride=2)


def prolong(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Prolongation ``P x``: the transposed convolution of :func:`restrict` with the same ``kernel``,
    so ``P = Rᵀ`` exactly: ``⟨R x, y⟩ = ⟨x, P y⟩``.  ``m`` nodes → ``2m − 1``.

    ``x``: ``[batch, c_out, m(, m)]``; ``kernel``: ``[c_out, c_in, 3(, 3)]`` (as given to ``restrict``).
    With the full-weighting kernel, ``2^dim · P`` is linear interpolation.
    """
    dim = _dim_of(x, "x")
    if kernel.shape[0] != x.shape[1]:
        raise ValueError(f"kernel must have shape [c_out={x.shape[1]}, c_in, 3...] (the kernel of the restriction); got {tuple(kernel.shape)}")
    m = x.shape[2:]
    z = x.new_zeros(x.shape[:2] + tuple(2 * k for k in m))   # y on the even nodes, zeros between
    if dim == 1:
        z[..., 0::2] = x
    else:
        z[..., 0::2, 0::2] = x
    return _corr3(F.pad(z, (1, 0) * dim), kernel.transpose(0, 1).flip(list(range(2, 2 + dim))))


def smooth(x: torch.Tensor, kernel: torch.Tensor, bc: str) -> torch.Tensor:
    """A 3-point (3×3) convolution, same size, padded by the boundary condition: zeros for
    Dirichlet, replicated edge values (zero normal derivative) for Neumann."""
    dim = _dim_of(x, "x")
    if bc not in BCS:
        raise ValueError(f"bc must be one of {BCS}; got {bc!r}")
    return _corr3(F.pad(x, (1, 1) * dim, mode=PADDING[bc]), kernel)


def vcycle(f: torch.Tensor, levels: Sequence[dict], bc: str = "dirichlet", nu: int = 1) -> torch.Tensor:
    """The multi-channel V-cycle operator ``u = W f`` of MgNO (He et al. 2024, Sec. 4, Fig. 1).

    Level ``ℓ`` holds convolution kernels ``A`` (``u → f`` channels), ``S`` (``f → u``), and, except
    on the coarsest level, ``R`` (``f → f``, stride 2) and ``P`` (``u → u``, transposed stride 2)::

        u = S * f;  repeat nu − 1 times: u ← u + S * (f − A * u)        (smoothing)
        u ← u + P * vcycle(R * (f − A * u), ℓ + 1)                        (coarse-grid correction)

    Every step is linear in ``f``, so the result is a bounded linear operator between the input and
    output neurons; no lifting or projection layers.  ``f``: ``[batch, c_in, n(, n)]`` with
    ``n = 2^k + 1`` and ``k ≥ len(levels) − 1``.  Returns ``[batch, c_out, n(, n)]``.
    """
    if not levels:
        raise ValueError("levels must hold at least one level")
    nu = check_int(nu, "nu", 1)
    lv = levels[0]
    u = smooth(f, lv["S"], bc)
    for _ in range(nu - 1):
        u = u + smooth(f - smooth(u, lv["A"], bc), lv["S"], bc)
    if len(levels) > 1:
        r = restrict(f - smooth(u, lv["A"], bc), lv["R"])
        u = u + prolong(vcycle(r, levels[1:], bc, nu), lv["P"])
    return u


def spectral_conv(x: torch.Tensor, weight: torch.Tensor, modes: int) -> torch.Tensor:
    """FNO's Fourier layer (Li et al. 2021): ``F⁻¹(R · (F x)[low modes])``, other modes set to zero.

    1-D: ``x`` ``[batch, c_in, n]``, ``weight`` complex ``[c_in, c_out, modes]``, ``modes ≤ n//2 + 1``.
    2-D: ``x`` ``[batch, c_in, n, n]``, ``weight`` complex ``[2, c_in, c_out, modes, modes]`` (the
    blocks of non-negative and of negative first-axis frequencies).  The output is periodic in
    space by construction (the FFT treats the grid as a circle).
    """
    dim = _dim_of(x, "x")
    n = x.shape[-1]
    modes = check_int(modes, "modes", 1, n // 2 + 1 if dim == 1 else n // 2)
    if dim == 1:
        if weight.ndim != 3 or weight.shape[0] != x.shape[1] or weight.shape[2] != modes:
            raise ValueError(f"weight must have shape [c_in={x.shape[1]}, c_out, {modes}]; got {tuple(weight.shape)}")
        xf = torch.fft.rfft(x, dim=-1)
        top = torch.einsum("bim,iom->bom", xf[..., :modes], weight)
        out = F.pad(top, (0, xf.shape[-1] - modes))
        return torch.fft.irfft(out, n=n, dim=-1)
    if weight.ndim != 5 or weight.shape[0] != 2 or weight.shape[1] != x.shape[1] or weight.shape[3:] != (modes, modes):
        raise ValueError(f"weight must have shape [2, c_in={x.shape[1]}, c_out, {modes}, {modes}]; got {tuple(weight.shape)}")
    xf = torch.fft.rfft2(x)
    lo = torch.einsum("bixy,ioxy->boxy", xf[:, :, :modes, :modes], weight[0])
    hi = torch.einsum("bixy,ioxy->boxy", xf[:, :, -modes:, :modes], weight[1])
    gap = xf.shape[-2] - 2 * modes
    zeros = lo.new_zeros(lo.shape[0], lo.shape[1], gap, modes)
    out = F.pad(torch.cat([lo, zeros, hi], dim=-2), (0, xf.shape[-1] - modes))
    return torch.fft.irfft2(out, s=x.shape[-2:])


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``‖pred − true‖₂ / ‖true‖₂`` per sample (over every axis but the first): ``[batch]``."""
    pred = _tensor(pred, "pred", min_ndim=2)
    true = _tensor(true, "true", min_ndim=2)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape; got {tuple(pred.shape)} and {tuple(true.shape)}")
    d = (pred - true).flatten(1).norm(dim=1)
    return d / true.flatten(1).norm(dim=1).clamp(min=1e-12)


# ---------------------------------------------------------------------------
# Data: −∇·(a∇u) = f by finite volumes (SciPy sparse)
# ---------------------------------------------------------------------------
def darcy_1d(a_mid, f, bc: str = "dirichlet") -> np.ndarray:
    """Solve ``−(a u')' = f`` on ``[0, 1]`` with ``n`` nodes ``x_i = i/(n−1)`` (finite volumes).

    ``a_mid``: the coefficient at the ``n − 1`` cell midpoints (> 0); ``f``: ``[n]`` at the nodes.
    Node ``i`` balances the fluxes ``a_{i±1/2}(u_{i±1} − u_i)/h`` against ``f_i`` times its control
    volume (``h``, or ``h/2`` at an end).  ``bc="dirichlet"``: ``u_0 = u_{n−1} = 0``;
    ``bc="neumann"``: zero flux at both ends, ``f`` made compatible by removing its weighted
    mean, and the solution fixed by a zero weighted mean (a Lagrange multiplier).
    Second order: exact for ``a = 1, f = 1`` (``u = x(1 − x)/2``).  Returns ``u``: ``[n]``.
    """
    a = np.asarray(a_mid, dtype=float).ravel()
    f = np.asarray(f, dtype=float).ravel()
    n = f.size
    if n < 3 or a.size != n - 1:
        raise ValueError(f"need n >= 3 nodes and a_mid of length n - 1; got n={n}, len(a_mid)={a.size}")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError("a_mid must be finite and > 0")
    if bc not in BCS:
        raise ValueError(f"bc must be one of {BCS}; got {bc!r}")
    h = 1.0 / (n - 1)
    lo = np.r_[0.0, a]          # a_{i-1/2}, 0 at the left end
    hi = np.r_[a, 0.0]          # a_{i+1/2}, 0 at the right end
    A = sp.diags([(lo + hi) / h, -a / h, -a / h], [0, -1, 1], shape=(n, n), format="csr")
    vol = np.full(n, h)
    vol[[0, -1]] = h / 2
    if bc == "dirichlet":
        u = np.zeros(n)
        u[1:-1] = spla.spsolve(A[1:-1, 1:-1].tocsc(), f[1:-1] * vol[1:-1])
        return u
    g = f - (f @ vol) / vol.sum()
    K = sp.bmat([[A, sp.csr_matrix(vol[:, None])], [sp.csr_matrix(vol[None, :]), None]], format="csc")
    return spla.spsolve(K, np.r_[g * vol, 0.0])[:n]


def darcy_2d(a, f, bc: str = "dirichlet") -> np.ndarray:
    """Solve ``−∇·(a∇u) = f`` on ``[0, 1]²`` with ``n × n`` nodes, ``u = 0`` on the boundary (5-point finite volumes).

    ``a``, ``f``: ``[n, n]`` at the nodes; the coefficient on a face is the mean of its two nodes.
    Only ``bc="dirichlet"`` (the 2-D case of the chapter).  Returns ``u``: ``[n, n]``.
    """
    a = np.asarray(a, dtype=float)
    f = np.asarray(f, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != f.shape or a.shape[0] < 3:
        raise ValueError(f"a and f must be square [n, n] arrays of one shape, n >= 3; got {a.shape} and {f.shape}")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError("a must be finite and > 0")
    if bc != "dirichlet":
        raise ValueError(f"bc must be 'dirichlet' in 2-D; got {bc!r}")
    n = a.shape[0]
    h = 1.0 / (n - 1)
    m = n - 2
    idx = np.arange(m * m).reshape(m, m)
    ax = 0.5 * (a[1:, 1:-1] + a[:-1, 1:-1])   # faces between rows i and i+1, interior columns: [n-1, m]
    ay = 0.5 * (a[1:-1, 1:] + a[1:-1, :-1])   # faces between columns j and j+1, interior rows: [m, n-1]
    diag = (ax[:-1] + ax[1:] + ay[:, :-1] + ay[:, 1:]) / h**2
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [diag.ravel()]
    c = -ax[1:-1] / h**2                      # coupling (i, j) - (i+1, j), interior pairs: [m-1, m]
    rows += [idx[:-1].ravel(), idx[1:].ravel()]
    cols += [idx[1:].ravel(), idx[:-1].ravel()]
    vals += [c.ravel(), c.ravel()]
    c = -ay[:, 1:-1] / h**2                   # coupling (i, j) - (i, j+1): [m, m-1]
    rows += [idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    cols += [idx[:, 1:].ravel(), idx[:, :-1].ravel()]
    vals += [c.ravel(), c.ravel()]
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m))
    u = np.zeros((n, n))
    u[1:-1, 1:-1] = spla.spsolve(A, f[1:-1, 1:-1].ravel()).reshape(m, m)
    return u
