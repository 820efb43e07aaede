"""Lazy neurons: activation sparsity that emerges in trained ReLU networks, and its use.

Li et al. (2023) observe that the hidden activation ``a = ReLU(x W_upᵀ + b)`` of a
trained Transformer's MLP has very few nonzero entries (3% for T5-Base), fewer
in wider and deeper models, with random labels, random inputs and infinite
data.  Its family puts sparsity to use: Top-k thresholding (Li et al.), ReLU
substitution with a progressive L1 penalty (ProSparse), magnitude thresholds
calibrated on data (CATS, per layer; CHESS, per channel), a differentiable
density loss (DEFT), and a performance-aware metric (Sparsing Law's PPL-p%).

Notation (shapes in brackets, ``…`` = any leading dims, ``h`` = MLP width)

- ``a`` [… , h]: an MLP's hidden activation (after the nonlinearity).
- nonzero fraction ``ρ = mean 1[|a| > τ]`` (``τ = 0``: the paper's "% nonzero").
- dead fraction: units with ``|a_i| ≤ τ`` on every row of the evaluation set.
- ``W_down`` [d, h]: the MLP's down projection (``torch.nn.Linear.weight``).

Everything trains in PyTorch on CPU with one thread (see
:func:`sparsebook.seed_everything`), from seeded data generated here or
scikit-learn's digits.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.validate import check_int, check_real

# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _check_int(x, name: str, low: int, high: int | None = None) -> int:
    """An int in [low, high]."""
    return check_int(x, name, low, high)


def _check_real(x, name: str, low: float, high: float, *, low_open=False, high_open=False) -> float:
    """A finite real in the interval [low, high] (open ends when ``*_open``)."""
    return check_real(x, name, low, high, low_open=low_open, high_open=high_open)


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(x)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray; got {type(x).__name__}")
    if t.ndim < 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty array with at least 1 dimension; got shape {tuple(t.shape)}")
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued; got dtype {t.dtype}")
    return t


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
    tau = _check_real(tau, "tau", 0.0, math.inf)
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
    tau = _check_real(tau, "tau", 0.0, math.inf)
    if isinstance(activations, Mapping):
        if not activations:
            raise ValueError("activations must not be an empty dict")
        return {k: dead_fraction(v, tau) for k, v in activations.items()}
    a = _rows(_as_tensor(activations, "activations"))
    return float((~(a.abs() > tau).any(0)).double().mean())


# ---------------------------------------------------------------------------
# sparsifying activations
# ---------------------------------------------------------------------------


def topk_activation(x, k: int):
    """Keep the ``k`` largest entries of each row of ``x`` (last dim), zero the rest.

    Top-k thresholding of Li et al. (2023, Sec. 4): ``topk(x)_i = x_i·1[x_i ≥ x_(k)]``
    with ``x_(k)`` the row's k-th largest entry (ties broken by position, so that
    exactly ``k`` entries per row are kept).  Gradients flow to the kept entries
    only (the mask is a constant of the backward pass).

    x : Tensor | ndarray [… , h];  k : int in [1, h].  Returns the same type and shape.
    """
    is_np = isinstance(x, np.ndarray)
    t = _as_tensor(x, "x")
    if not t.is_floating_point():
        raise TypeError(f"x must be a floating-point array; got dtype {t.dtype}")
    k = _check_int(k, "k", 1, t.shape[-1])
    if k == t.shape[-1]:
        out = t.clone()
    else:
        idx = t.topk(k, dim=-1, sorted=False).indices
        mask = torch.zeros_like(t, dtype=torch.bool).scatter_(-1, idx, True)
        out = t * mask
    return out.numpy() if is_np else out


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
    return s.select(dim, lo) * (1 - w) + s.select(dim, hi) * w


def cats_threshold(activations, sparsity: float):
    """CATS threshold: the ``sparsity``-quantile of ``|a|`` on calibration data (Lee et al. 2024).

    ``t = Quantile_s(|a|)`` so that ``CATS(a) = a·1[|a| ≥ t]`` zeroes a fraction ``s`` of
    the calibration entries (one threshold per layer).

    activations : Tensor | ndarray [… , h] or a dict ``{layer: array}``;
    sparsity : float in [0, 1).  Returns a float (``0.0`` for sparsity 0), or a dict.
    """
    sparsity = _check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)
    if isinstance(activations, Mapping):
        if not activations:
            raise ValueError("activations must not be an empty dict")
        return {k: cats_threshold(v, sparsity) for k, v in activations.items()}
    a = _as_tensor(activations, "activations")
    if sparsity == 0.0:
        return 0.0
    return float(_quantile(a.abs(), sparsity))


def chess_thresholds(activations, sparsity: float) -> torch.Tensor:
    """CHESS channel-wise thresholds: one ``sparsity``-quantile of ``|a_i|`` per channel i (He et al. 2024).

    ``t_i = Quantile_s(|a_{:,i}|)`` over the calibration rows, so each channel is
    cut to the same fraction ``s`` (reconstruction of the paper's channel-wise
    thresholding for a non-gated MLP).

    activations : [… , h];  sparsity in [0, 1).  Returns a float tensor [h].
    """
    sparsity = _check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)
    a = _rows(_as_tensor(activations, "activations")).abs()
    if sparsity == 0.0:
        return torch.zeros(a.shape[-1])
    return _quantile(a, sparsity, dim=0).float()


def apply_threshold(a, threshold):
    """``a·1[|a| ≥ t]`` with a scalar (CATS) or per-channel [h] (CHESS) threshold ``t``."""
    t = torch.as_tensor(threshold, dtype=a.dtype)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != a.shape[-1]):
        raise ValueError(f"threshold must be a scalar or have shape [{a.shape[-1]}]; got {tuple(t.shape)}")
    if torch.any(t < 0):
        raise ValueError("threshold must be >= 0")
    return a * (a.abs() >= t)


def fatrelu(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """FATReLU (ProSparse, Song et al. 2024): ``x·1[x ≥ T]``, a ReLU with a raised cut ``T ≥ 0``."""
    threshold = _check_real(threshold, "threshold", 0.0, math.inf)
    return x * (x >= threshold) if threshold > 0 else F.relu(x)


def prosparse_lambda(step: int, boundaries: Sequence[int], values: Sequence[float]) -> float:
    """ProSparse's progressive L1 factor, rising along quarter-sines in stages (Song et al. 2024, Sec. 3.2).

    With stage ends ``T_1 < … < T_m`` (``T_0 = 0``) and factors ``λ_1 ≤ … ≤ λ_m`` (``λ_0 = 0``),
    for ``T_{i−1} ≤ t < T_i``:  ``λ(t) = λ_{i−1} + (λ_i − λ_{i−1})·sin(π/2·(t − T_{i−1})/(T_i − T_{i−1}))``;
    ``λ(t) = λ_m`` after the last stage.  (Schedule reconstructed from the paper's description.)
    """
    step = _check_int(step, "step", 0)
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
    eps = _check_real(eps, "eps", 0.0, math.inf, low_open=True)
    a2 = a * a
    return (a2 / (a2 + eps)).mean()


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE = Σ_b (|B_b|/n)·|acc(B_b) − conf(B_b)| over equal-width confidence bins (Guo et al. 2017).

    probs : [n, classes] predicted probabilities;  labels : [n] ints;  n_bins : int >= 1.
    """
    n_bins = _check_int(n_bins, "n_bins", 1)
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


@torch.no_grad()
def cett(a: torch.Tensor, w_down: torch.Tensor, t: float) -> float:
    """Cumulative errors of tail truncation (Sparsing Law):

    ``CETT(t) = mean_rows ‖W_down (a ⊙ 1[n ≤ t])‖₂ / ‖W_down a‖₂``, ``n`` from :func:`neuron_importance`.

    a : [… , h];  w_down : [d, h].  Rows with ``W_down a = 0`` are skipped.
    """
    a = _rows(a).double()
    w = w_down.double()
    cut = a * (neuron_importance(a, w) <= t)
    num = (cut @ w.T).norm(dim=-1)
    den = (a @ w.T).norm(dim=-1)
    ok = den > 0
    return float((num[ok] / den[ok]).mean()) if ok.any() else 0.0


@torch.no_grad()
def cett_threshold(a: torch.Tensor, w_down: torch.Tensor, target: float, iters: int = 30) -> float:
    """The largest ``t`` with ``CETT(t) ≤ target`` (bisection; CETT is non-decreasing in ``t``)."""
    target = _check_real(target, "target", 0.0, 1.0)
    a = _rows(a).double()
    w = w_down.double()
    n = neuron_importance(a, w)
    lo, hi = 0.0, float(n.max()) + 1e-12
    den = (a @ w.T).norm(dim=-1)
    ok = den > 0

    def f(t):
        cut = a * (n <= t)
        return float(((cut @ w.T).norm(dim=-1)[ok] / den[ok]).mean()) if ok.any() else 0.0

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
    dense_above = _check_real(dense_above, "dense_above", 0.0, 1.0)
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


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------

_NONLIN = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}


class Activation(nn.Module):
    """An MLP's nonlinearity, optionally sparsified: ``σ(x)``, then Top-k or a magnitude threshold.

    name : "relu" | "gelu" | "silu";  k : keep the k largest per row (Top-k);
    threshold : scalar (CATS) or per-channel [h] tensor (CHESS): ``a·1[|a| ≥ t]``.
    The recorder (:func:`record_activations`) hooks these modules' outputs.
    """

    def __init__(self, name: str = "relu", k: int | None = None, threshold=None):
        super().__init__()
        if name not in _NONLIN:
            raise ValueError(f"name must be one of {sorted(_NONLIN)}; got {name!r}")
        self.name, self.k, self.threshold = name, k, threshold

    def forward(self, x):
        a = _NONLIN[self.name](x)
        if self.k is not None:
            a = topk_activation(a, min(self.k, a.shape[-1]))
        if self.threshold is not None:
            a = apply_threshold(a, self.threshold)
        return a

    def extra_repr(self):
        return f"{self.name}, k={self.k}, threshold={'set' if self.threshold is not None else None}"


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units: ``x → [Linear → Activation]×depth → Linear``."""

    def __init__(self, d_in: int, width: int, d_out: int, depth: int = 1, activation: str = "relu",
                 bias: bool = True, k: int | None = None):
        super().__init__()
        sizes = [d_in] + [width] * depth + [d_out]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(Activation(activation, k=k) for _ in range(depth))

    def forward(self, x):
        for lin, act in zip(self.layers, self.acts):
            x = act(lin(x))
        return self.layers[-1](x)


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: causal multi-head attention, then the MLP ``down(act(up(·)))``."""

    def __init__(self, d: int, ff: int, heads: int, activation: str = "relu"):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.act, self.down = nn.Linear(d, ff), Activation(activation), nn.Linear(ff, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # softmax(q kᵀ/√d_h + causal mask) v
        x = x + self.out(att.transpose(1, 2).reshape(b, t, d))
        return x + self.down(self.act(self.up(self.ln2(x))))


class TinyTransformer(nn.Module):
    """A decoder-only Transformer: token + learned position embeddings, ``layers`` blocks, a linear head."""

    def __init__(self, vocab: int, seq_len: int, d_model: int = 32, ff: int = 128, layers: int = 2,
                 heads: int = 2, activation: str = "relu"):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model must be divisible by heads; got {d_model} and {heads}")
        self.emb = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(seq_len, d_model))
        self.blocks = nn.ModuleList(Block(d_model, ff, heads, activation) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, x):
        h = self.emb(x) + self.pos[: x.shape[1]]
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln(h))


# ---------------------------------------------------------------------------
# the recorder
# ---------------------------------------------------------------------------

#: Module types whose output is an MLP's hidden activation.
RECORDED_TYPES = (Activation, nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.ELU, nn.Sigmoid, nn.Softplus,
                  nn.Softsign, nn.LeakyReLU)


def mlp_activation_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` for every MLP nonlinearity in ``model`` (types in :data:`RECORDED_TYPES`)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    found = {name: m for name, m in model.named_modules() if isinstance(m, RECORDED_TYPES)}
    if not found:
        raise ValueError(f"model has no MLP activation to record (no module of types "
                         f"{[t.__name__ for t in RECORDED_TYPES]}): {type(model).__name__}")
    return found


def mlp_sites(model: nn.Module) -> dict[str, tuple[nn.Module, nn.Linear]]:
    """``{name: (activation, down_projection)}`` for :class:`MLP`, :class:`TinyTransformer`, :class:`TinyMixer`
    and ``nn.Sequential``."""
    sites = {}
    for name, m in model.named_modules():
        pre = f"{name}." if name else ""
        if isinstance(m, MLP):
            for i, act in enumerate(m.acts):
                sites[f"{pre}acts.{i}"] = (act, m.layers[i + 1])
        elif isinstance(m, Block):
            sites[f"{pre}act"] = (m.act, m.down)
        elif isinstance(m, MixerBlock):
            sites[f"{pre}token_act"] = (m.token_act, m.token_down)
            sites[f"{pre}channel_act"] = (m.channel_act, m.channel_down)
        elif isinstance(m, nn.Sequential):
            kids = list(m.named_children())
            for i, (cname, c) in enumerate(kids):
                if isinstance(c, RECORDED_TYPES):
                    nxt = next((k for _, k in kids[i + 1:] if isinstance(k, nn.Linear)), None)
                    if nxt is not None:
                        sites[f"{pre}{cname}"] = (c, nxt)
    if not sites:
        raise ValueError(f"model has no MLP (activation followed by a down projection): {type(model).__name__}")
    return sites


class ActivationRecorder:
    """Forward hooks that keep each MLP activation of the last forward pass (no copies, detached).

    >>> with ActivationRecorder(model) as rec:   # doctest: +SKIP
    ...     model(x)
    ...     rec.activations   # {layer name: tensor [..., h]}
    """

    def __init__(self, model: nn.Module, detach: bool = True):
        self.modules = mlp_activation_modules(model)
        self.detach = detach
        self.activations: dict[str, torch.Tensor] = {}
        self._handles = []

    def _hook(self, name):
        def hook(module, inputs, output):
            self.activations[name] = output.detach() if self.detach else output
        return hook

    def __enter__(self):
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False


def record_activations(model: nn.Module, inputs) -> dict[str, torch.Tensor]:
    """Run ``model(inputs)`` without gradients and return ``{layer name: hidden activation}``.

    Hooks every MLP nonlinearity (:data:`RECORDED_TYPES`) without touching model code;
    raises ValueError if ``model`` has none.  The model's train/eval mode is kept.
    """
    rec = ActivationRecorder(model)
    with rec, torch.no_grad():
        model(inputs)
    return dict(rec.activations)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


class NoisyTeacher:
    """Gaussian inputs ``x ~ N(0, I_d)`` labelled by a fixed random teacher, ``y = argmax tanh(x A) B``,
    each label replaced by a uniform one with probability ``noise``.  ``sample`` draws fresh data
    (the "infinite data" setting); ``random_labels=True`` makes every label uniform.
    """

    def __init__(self, d: int = 32, classes: int = 10, hidden: int = 64, noise: float = 0.5,
                 random_labels: bool = False, seed: int = 0):
        r = np.random.default_rng(10_000 + seed)
        self.d, self.classes, self.noise, self.random_labels = d, classes, noise, random_labels
        self.a = torch.as_tensor(r.standard_normal((d, hidden)) / math.sqrt(d))
        self.b = torch.as_tensor(r.standard_normal((hidden, classes)) / math.sqrt(hidden))

    def clean_labels(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x.double() @ self.a) @ self.b).argmax(-1)

    def sample(self, n: int, rng: np.random.Generator, symmetric: bool = False):
        """``(x [n, d] float32, y [n] int64)``; ``symmetric`` returns rows ``x`` and ``−x`` (antithetic)."""
        m = (n + 1) // 2 if symmetric else n
        x = rng.standard_normal((m, self.d))
        if symmetric:
            x = np.concatenate([x, -x])[:n]
        x = torch.as_tensor(x)
        if self.random_labels:
            y = torch.as_tensor(rng.integers(0, self.classes, n))
        else:
            y = self.clean_labels(x)
            flip = torch.as_tensor(rng.random(n) < self.noise)
            y = torch.where(flip, torch.as_tensor(rng.integers(0, self.classes, n)), y)
        return x.float(), y.long()


class MarkovSource:
    """A random second-order Markov chain over ``vocab`` tokens: ``P(x_t | x_{t−2}, x_{t−1}) ~ Dirichlet(α)``.

    Fresh sequences every step make next-token prediction an infinite-data language-modelling
    task with an entropy floor (the loss cannot reach 0).
    """

    def __init__(self, vocab: int = 16, alpha: float = 0.3, seed: int = 0):
        r = np.random.default_rng(20_000 + seed)
        self.vocab = vocab
        self.p = r.dirichlet(np.full(vocab, alpha), size=(vocab, vocab))
        self.cdf = np.cumsum(self.p, -1)

    def entropy(self) -> float:
        """Mean conditional entropy (nats/token, uniform over contexts): a floor for the loss."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-np.nansum(self.p * np.log(self.p), -1).mean())

    def sample(self, n: int, seq_len: int, rng: np.random.Generator):
        """``(x [n, seq_len], y [n, seq_len])`` int64, ``y`` the next tokens."""
        s = np.empty((n, seq_len + 1), dtype=np.int64)
        s[:, :2] = rng.integers(0, self.vocab, (n, 2))
        for t in range(2, seq_len + 1):
            u = rng.random(n)[:, None]
            s[:, t] = np.minimum((self.cdf[s[:, t - 2], s[:, t - 1]] < u).sum(-1), self.vocab - 1)
        s = torch.as_tensor(s)
        return s[:, :-1], s[:, 1:]


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------


def _ce(logits, y):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def train(model: nn.Module, batch: Callable[[int], tuple], *, steps: int, lr: float,
          penalty: Callable[[dict, int], torch.Tensor] | None = None,
          probe: Callable[[nn.Module, int], None] | None = None, every: int = 0) -> np.ndarray:
    """Adam on ``cross-entropy(model(x), y) + penalty(activations, step)``, ``(x, y) = batch(step)``.

    ``probe(model, step)`` runs (no grad, eval mode) at step 0, every ``every`` steps and at the end.
    Returns the training loss per step (without the penalty), shape [steps].
    """
    steps = _check_int(steps, "steps", 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = np.empty(steps)

    def _probe(s):
        if probe is not None:
            model.eval()
            with torch.no_grad():
                probe(model, s)
            model.train()

    rec = ActivationRecorder(model, detach=False) if penalty is not None else None  # keep the graph
    _probe(0)
    model.train()
    for s in range(steps):
        x, y = batch(s)
        if rec is not None:
            with rec:
                loss = _ce(model(x), y)
            total = loss + penalty(rec.activations, s)
        else:
            loss = total = _ce(model(x), y)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        losses[s] = float(loss.detach())
        if every and ((s + 1) % every == 0 or s + 1 == steps):
            _probe(s + 1)
    model.eval()
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, x, y) -> dict:
    """Loss, accuracy, per-layer nonzero and dead fractions of ``model`` on ``(x, y)``."""
    model.eval()
    rec = ActivationRecorder(model)
    with rec:
        logits = model(x)
    acts = rec.activations
    nz, dead = nonzero_fraction(acts), dead_fraction(acts)
    return {"loss": float(_ce(logits, y)), "accuracy": float((logits.argmax(-1) == y).double().mean()),
            "nonzero": nz, "dead": dead,
            "nonzero_alive": {k: nz[k] / (1 - dead[k]) if dead[k] < 1 else 0.0 for k in nz}}


def _mean(d: Mapping) -> float:
    return float(np.mean(list(d.values())))


# ---------------------------------------------------------------------------
# experiment 1: emergence during training (Transformer and MLP)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EmergenceConfig:
    """Train a tiny Transformer on a Markov source and an MLP on a noisy teacher; record sparsity over training."""

    vocab: int = 16
    seq_len: int = 16
    d_model: int = 32
    ff: int = 128
    layers: int = 2
    tf_batch: int = 32
    tf_steps: int = 400
    tf_lr: float = 1e-2
    mlp_width: int = 256
    mlp_steps: int = 400
    mlp_lr: float = 1e-2
    mlp_batch: int = 128
    noise: float = 0.5
    every: int = 25
    eval_rows: int = 2000
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "EmergenceConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(d_model=128, ff=512, layers=4, tf_batch=64, tf_steps=5000, seq_len=32, mlp_width=1024,
                   mlp_steps=5000, eval_rows=10000, every=100, tf_lr=3e-3, device=_auto_device())


def _auto_device() -> str:
    """"cuda" when a GPU is present, else "cpu" (used by the full-scale presets only)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=16)
def _transformer_run(cfg: EmergenceConfig, seed: int, activation: str = "relu", record: bool = True):
    """Train (once per arguments: cached, so chapters reuse the model) and return
    ``(model, source, (held_x, held_y), losses, trace)``; model and data live on ``cfg.device``."""
    seed_everything(seed)
    dev = torch.device(cfg.device)
    src = MarkovSource(cfg.vocab, seed=seed)
    rng = np.random.default_rng(seed)
    model = TinyTransformer(cfg.vocab, cfg.seq_len, cfg.d_model, cfg.ff, cfg.layers, activation=activation).to(dev)
    held_x, held_y = src.sample(max(cfg.eval_rows // cfg.seq_len, 8), cfg.seq_len, np.random.default_rng(seed + 999))
    held_x, held_y = held_x.to(dev), held_y.to(dev)
    trace = {"step": [], "train": [], "held_out": []}
    last = {}

    def batch(s):
        x, y = src.sample(cfg.tf_batch, cfg.seq_len, rng)
        last["x"] = x.to(dev)
        return last["x"], y.to(dev)

    def probe(m, s):
        trace["step"].append(s)
        trace["held_out"].append(nonzero_fraction(record_activations(m, held_x)))
        trace["train"].append(nonzero_fraction(record_activations(m, last.get("x", held_x))))

    losses = train(model, batch, steps=cfg.tf_steps, lr=cfg.tf_lr,
                   probe=probe if record else None, every=cfg.every if record else 0)
    return model, src, (held_x, held_y), losses, trace


def run_emergence(cfg: EmergenceConfig, seed: int = 0) -> dict:
    """Sparsity over training from a dense start: Transformer (Markov source) and 2-layer MLP (noisy teacher).

    Returns per-layer traces of the nonzero fraction on training batches and held-out data,
    and the final held-out nonzero and dead fractions.
    """
    model, src, (hx, hy), losses, trace = _transformer_run(cfg, seed)
    ev = evaluate(model, hx, hy)
    out = {"transformer": {"steps": np.array(trace["step"]),
                           "train": {k: np.array([d[k] for d in trace["train"]]) for k in trace["train"][0]},
                           "held_out": {k: np.array([d[k] for d in trace["held_out"]]) for k in trace["held_out"][0]},
                           "loss": losses, "entropy": src.entropy(), "final": ev}}
    seed_everything(seed)
    teacher = NoisyTeacher(noise=cfg.noise, seed=seed)
    rng = np.random.default_rng(seed)
    model = MLP(teacher.d, cfg.mlp_width, teacher.classes)
    held_x, held_y = teacher.sample(cfg.eval_rows, np.random.default_rng(seed + 999), symmetric=True)
    tr = {"step": [], "held_out": [], "train": []}
    last = {}

    def batch(s):
        last["x"] = teacher.sample(cfg.mlp_batch, rng)
        return last["x"]

    def probe(m, s):
        tr["step"].append(s)
        tr["held_out"].append(nonzero_fraction(record_activations(m, held_x))["acts.0"])
        tx = last["x"][0] if last else held_x
        tr["train"].append(nonzero_fraction(record_activations(m, tx))["acts.0"])

    losses = train(model, batch, steps=cfg.mlp_steps, lr=cfg.mlp_lr, probe=probe, every=cfg.every)
    ev = evaluate(model, held_x, teacher.clean_labels(held_x))
    out["mlp"] = {"steps": np.array(tr["step"]), "train": np.array(tr["train"]),
                  "held_out": np.array(tr["held_out"]), "loss": losses, "final": ev}
    return out


# ---------------------------------------------------------------------------
# experiment 2: conditions (when it emerges and when it does not)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionsConfig:
    """One 2-layer ReLU MLP trained under contrasting conditions (width, steps, batch shared)."""

    width: int = 256
    steps: int = 400
    batch: int = 128
    small_lr: float = 1e-3
    large_lr: float = 1e-2
    noise: float = 0.5
    eval_rows: int = 2000

    @classmethod
    def preset(cls, scale: str) -> "ConditionsConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(width=1024, steps=4000, eval_rows=10000)


#: The settings of :func:`run_conditions`: (label, data, lr key, bias, noise).
CONDITIONS = (
    ("digits, Adam 1e-3", "digits", "small_lr", True, None),
    ("digits, Adam 1e-2", "digits", "large_lr", True, None),
    ("clean teacher, fresh data, 1e-2", "teacher", "large_lr", True, 0.0),
    ("noisy teacher, fresh data, 1e-3", "teacher", "small_lr", True, None),
    ("noisy teacher, no biases, 1e-2", "teacher", "large_lr", False, None),
    ("noisy teacher, fresh data, 1e-2", "teacher", "large_lr", True, None),
)


def _mlp_task(kind: str, batch_size: int, eval_rows: int, seed: int, noise: float, n_train: int | None = None,
              random_labels: bool = False):
    """(d_in, classes, batch(step), held-out x, held-out y, train x for evaluation)."""
    rng = np.random.default_rng(seed)

    def draw(x, y):
        return lambda s: (lambda i: (x[i], y[i]))(torch.as_tensor(rng.integers(0, len(x), batch_size)))

    if kind == "digits":
        from sparsebook.data import digits

        d = digits(seed=seed)
        x, y = torch.as_tensor(d["x_train"]), torch.as_tensor(d["y_train"])
        if random_labels:
            y = torch.as_tensor(rng.integers(0, 10, len(y)))
        return 64, 10, draw(x, y), torch.as_tensor(d["x_test"]), torch.as_tensor(d["y_test"]), x
    teacher = NoisyTeacher(noise=noise, random_labels=random_labels, seed=seed)
    hx, hy = teacher.sample(eval_rows, np.random.default_rng(seed + 999), symmetric=True)
    if n_train is None:
        return teacher.d, teacher.classes, (lambda s: teacher.sample(batch_size, rng)), hx, hy, hx
    x, y = teacher.sample(n_train, rng)
    return teacher.d, teacher.classes, draw(x, y), hx, hy, x


@lru_cache(maxsize=64)
def _mlp_fit(seed, kind, lr, width, steps, batch, noise, eval_rows, bias, depth, n_train, random_labels):
    seed_everything(seed)
    d, c, draw, hx, hy, tx = _mlp_task(kind, batch, eval_rows, seed, noise, n_train, random_labels)
    model = MLP(d, width, c, depth=depth, bias=bias)
    losses = train(model, draw, steps=steps, lr=lr)
    ev = evaluate(model, hx, hy)
    tx = tx[:eval_rows]
    tr = evaluate(model, tx, torch.zeros(len(tx), dtype=torch.long))
    return {"final_loss": float(np.mean(losses[-20:])), "held_out": ev, "train_nonzero": tr["nonzero"],
            "train_dead": tr["dead"]}


def _mlp_run(cfg, seed, kind, lr, *, bias=True, noise=None, width=None, depth=1, n_train=None,
             random_labels=False, steps=None) -> dict:
    """Train a ReLU :class:`MLP` on ``kind`` ("digits" or "teacher"), evaluate on held-out data.

    Cached on the values that determine the run, so chapters that share a setting train it once.
    """
    return _mlp_fit(seed, kind, float(lr), width or cfg.width, steps or cfg.steps, cfg.batch,
                    float(cfg.noise if noise is None else noise), cfg.eval_rows, bool(bias), depth, n_train,
                    bool(random_labels))


def run_conditions(cfg: ConditionsConfig, seed: int = 0) -> list[dict]:
    """Held-out nonzero and dead fraction of a 2-layer ReLU MLP under each setting of :data:`CONDITIONS`."""
    rows = []
    for label, kind, lr_key, bias, noise in CONDITIONS:
        r = _mlp_run(cfg, seed, kind, getattr(cfg, lr_key), bias=bias, noise=noise)
        rows.append({"setting": label, "train_loss": r["final_loss"],
                     "nonzero": r["held_out"]["nonzero"]["acts.0"], "dead": r["held_out"]["dead"]["acts.0"]})
    return rows


# ---------------------------------------------------------------------------
# experiment 3: scaling (width, depth) and data (random labels/inputs, amount)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingConfig:
    """Width and depth sweeps, and data sweeps, of ReLU MLPs on the noisy teacher (lr ``lr``)."""

    widths: tuple = (32, 64, 128, 256, 512)
    depths: tuple = (1, 2, 3, 4)
    depth_width: int = 128
    data_sizes: tuple = (256, 1024, 4096, 16384)
    width: int = 256
    steps: int = 400
    batch: int = 128
    lr: float = 1e-2
    noise: float = 0.5
    eval_rows: int = 2000

    @classmethod
    def preset(cls, scale: str) -> "ScalingConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(widths=(32, 64, 128, 256, 512, 1024, 2048), depths=(1, 2, 3, 4, 6, 8), depth_width=512,
                   data_sizes=(256, 1024, 4096, 16384, 65536, 262144), width=1024, steps=4000, eval_rows=10000)


def run_scaling(cfg: ScalingConfig, seed: int = 0) -> dict:
    """Held-out nonzero and dead fractions against width and against depth (mean over layers)."""
    width = [_mlp_run(cfg, seed, "teacher", cfg.lr, width=w)["held_out"] for w in cfg.widths]
    depth = [_mlp_run(cfg, seed, "teacher", cfg.lr, width=cfg.depth_width, depth=L)["held_out"] for L in cfg.depths]
    return {"widths": np.array(cfg.widths), "width_nonzero": np.array([_mean(e["nonzero"]) for e in width]),
            "width_dead": np.array([_mean(e["dead"]) for e in width]),
            "depths": np.array(cfg.depths), "depth_nonzero": np.array([_mean(e["nonzero"]) for e in depth]),
            "depth_dead": np.array([_mean(e["dead"]) for e in depth]),
            "depth_alive": np.array([_mean(e["nonzero_alive"]) for e in depth]),
            "width_alive": np.array([_mean(e["nonzero_alive"]) for e in width]),
            "depth_layers": [np.array(list(e["nonzero"].values())) for e in depth]}


def run_data(cfg: ScalingConfig, seed: int = 0) -> dict:
    """Is it the data?  Random labels, random inputs, and the amount of data seen.

    ``settings``: (label, held-out nonzero, dead, final train loss) for real inputs with random
    labels (digits, finite), Gaussian inputs with random labels (fresh every step), and the noisy
    teacher on fresh data; ``sizes``: nonzero fraction against the number of distinct training
    examples (∞ = fresh every step) at a fixed number of steps.
    """
    settings = []
    for label, kind, rl in (("digits inputs, random labels", "digits", True),
                            ("Gaussian inputs, random labels, fresh", "teacher", True),
                            ("Gaussian inputs, noisy teacher, fresh", "teacher", False)):  # last: cached
        r = _mlp_run(cfg, seed, kind, cfg.lr, random_labels=rl)
        settings.append({"setting": label, "nonzero": r["held_out"]["nonzero"]["acts.0"],
                         "dead": r["held_out"]["dead"]["acts.0"], "train_loss": r["final_loss"]})
    sizes, nz, dead, tr_nz = [], [], [], []
    for n in list(cfg.data_sizes) + [None]:
        r = _mlp_run(cfg, seed, "teacher", cfg.lr, n_train=n)
        sizes.append(math.inf if n is None else n)
        nz.append(r["held_out"]["nonzero"]["acts.0"])
        dead.append(r["held_out"]["dead"]["acts.0"])
        tr_nz.append(r["train_nonzero"]["acts.0"])
    return {"settings": settings, "sizes": np.array(sizes, dtype=float), "nonzero": np.array(nz),
            "dead": np.array(dead), "train_nonzero": np.array(tr_nz)}


@dataclass(frozen=True)
class TransformerScalingConfig:
    """Width (``ffs``: MLP hidden sizes) and depth (``depths``: blocks) sweeps of the Transformer of
    :class:`EmergenceConfig`, each trained as in :func:`run_emergence`."""

    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    ffs: tuple = (64, 128, 256)
    depths: tuple = (1, 2, 3)

    @classmethod
    def preset(cls, scale: str) -> "TransformerScalingConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(emergence=EmergenceConfig.preset("full"), ffs=(128, 256, 512, 1024, 2048), depths=(1, 2, 4, 6, 8))


def run_transformer_scaling(cfg: TransformerScalingConfig, seed: int = 0) -> dict:
    """Held-out nonzero fraction (all units and live units) and dead fraction, mean over layers,
    against the MLP width ``ff`` and against the number of blocks."""
    ec = cfg.emergence

    def one(c):
        model, _, (hx, hy), _, _ = _transformer_run(c, seed, "relu", c == ec)  # the base run is run_emergence's
        ev = evaluate(model, hx, hy)
        return _mean(ev["nonzero"]), _mean(ev["nonzero_alive"]), _mean(ev["dead"])

    out = {}
    for key, values, field_name in (("width", cfg.ffs, "ff"), ("depth", cfg.depths, "layers")):
        rows = np.array([one(replace(ec, **{field_name: v})) for v in values])
        out[key] = {"values": np.array(values), "nonzero": rows[:, 0], "alive": rows[:, 1], "dead": rows[:, 2]}
    return out


# ---------------------------------------------------------------------------
# experiment 4: Top-k thresholding
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TopKConfig:
    """Digits, trained with clean labels and with a fraction ``label_noise`` of labels replaced;
    a dense ReLU MLP against the same MLP with Top-k (k of ``width``) thresholding."""

    width: int = 128
    k: int = 8
    steps: int = 400
    batch: int = 128
    lr: float = 1e-3
    label_noise: float = 0.4
    corruption: float = 1.0
    seeds: int = 2

    @classmethod
    def preset(cls, scale: str) -> "TopKConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(width=1024, k=64, steps=3000, seeds=5)


def run_topk(cfg: TopKConfig, seed: int = 0) -> dict:
    """For the dense and the Top-k model, each trained on clean and on noisy labels (mean over ``seeds``):
    clean test accuracy, accuracy under Gaussian input corruption (σ = ``corruption``, on
    standardized pixels), expected calibration error, and nonzero fraction.

    Returns ``{model: {"clean": {...}, "noisy": {...}}}`` with model in ("dense", "topk").
    """
    from sparsebook.data import digits

    res = {(m, l): [] for m in ("dense", "topk") for l in ("clean", "noisy")}
    for s in range(seed, seed + cfg.seeds):
        d = digits(seed=s)
        rng = np.random.default_rng(s)
        x, y = torch.as_tensor(d["x_train"]), torch.as_tensor(d["y_train"])
        flip = torch.as_tensor(rng.random(len(y)) < cfg.label_noise)
        y_noisy = torch.where(flip, torch.as_tensor(rng.integers(0, 10, len(y))), y)
        xt, yt = torch.as_tensor(d["x_test"]), torch.as_tensor(d["y_test"])
        xc = xt + cfg.corruption * torch.as_tensor(rng.standard_normal(tuple(xt.shape)), dtype=torch.float32)
        idx = [torch.as_tensor(rng.integers(0, len(x), cfg.batch)) for _ in range(cfg.steps)]
        for labels, yy in (("clean", y), ("noisy", y_noisy)):
            for name, k in (("dense", None), ("topk", cfg.k)):
                seed_everything(s)
                model = MLP(64, cfg.width, 10, k=k)
                train(model, lambda t: (x[idx[t]], yy[idx[t]]), steps=cfg.steps, lr=cfg.lr)
                with torch.no_grad():
                    p = model(xt).softmax(-1)
                    res[name, labels].append({
                        "accuracy": float((p.argmax(-1) == yt).double().mean()),
                        "corrupted": float((model(xc).argmax(-1) == yt).double().mean()),
                        "ece": expected_calibration_error(p, yt),
                        "nonzero": nonzero_fraction(record_activations(model, xt))["acts.0"]})
    out = {"dense": {}, "topk": {}}
    for (name, labels), rs in res.items():
        out[name][labels] = {key: float(np.mean([r[key] for r in rs])) for key in rs[0]}
    return out


# ---------------------------------------------------------------------------
# experiment 5: activation functions, ProSparse, CATS/CHESS, PPL-p%
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivationsConfig:
    """The Transformer of :class:`EmergenceConfig` trained with ReLU, GELU and SiLU; then sparsified.

    Fine-tuning (``finetune_steps`` of Adam at ``finetune_lr``) starts from the SiLU model;
    ProSparse's L1 factor rises to ``stage_lambdas[i]`` by step ``stage_ends[i]``.
    """

    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    finetune_steps: int = 150
    finetune_lr: float = 3e-3
    stage_ends: tuple = (40, 80, 120)
    stage_lambdas: tuple = (0.03, 0.1, 0.3)
    deft_weight: float = 0.05
    targets: tuple = (0.5, 0.7, 0.9)
    tau: float = 0.01
    p: float = 1.0
    ppl_rows: int = 64

    @classmethod
    def preset(cls, scale: str) -> "ActivationsConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(emergence=EmergenceConfig.preset("full"), finetune_steps=2000, finetune_lr=1e-3,
                   stage_ends=(500, 1000, 1500), ppl_rows=128)


@torch.no_grad()
def _masked_loss(model, x, y, thresholds: Mapping[str, float]):
    """Loss with each site's activation cut where its neuron importance ``n ≤ t`` (CETT masking)."""
    sites = mlp_sites(model)
    handles, zeros = [], {}
    for name, (act, down) in sites.items():
        norms = down.weight.norm(dim=0)

        def hook(m, i, o, t=thresholds[name], norms=norms, name=name):
            keep = (o.abs() * norms) > t
            zeros[name] = float((~keep).double().mean())
            return o * keep
        handles.append(act.register_forward_hook(hook))
    try:
        loss = float(_ce(model(x), y))
    finally:
        for h in handles:
            h.remove()
    return loss, float(np.mean(list(zeros.values())))


def ppl_p_sparsity(model: nn.Module, x, y, p: float = 1.0, iters: int = 14) -> dict:
    """Sparsing Law's PPL-p% sparsity: the sparsity reached when perplexity may rise by at most ``p`` %.

    One CETT level ``c`` is shared by all layers; each layer's threshold ``t`` solves
    ``CETT(t) = c`` on the dense activations of ``x``; ``c`` is the largest level (bisection)
    with ``exp(L_sparse − L_dense) ≤ 1 + p/100``.  Sparsity = mean over layers of the fraction
    of entries cut (exact zeros included).  Returns ``{"sparsity", "cett", "loss_ratio"}``.
    """
    p = _check_real(p, "p", 0.0, math.inf, low_open=True)
    model.eval()
    sites = mlp_sites(model)
    with torch.no_grad():
        acts = record_activations(model, x)
        dense = float(_ce(model(x), y))
    budget = math.log1p(p / 100)

    def at(c):
        th = {n: cett_threshold(acts[n], d.weight, c) for n, (_, d) in sites.items()}
        return _masked_loss(model, x, y, th)

    lo, hi = 0.0, 1.0
    best = at(0.0)
    if best[0] - dense > budget:  # exact zeros already cost too much (cannot happen for ReLU)
        return {"sparsity": 0.0, "cett": 0.0, "loss_ratio": math.exp(best[0] - dense)}
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        r = at(mid)
        if r[0] - dense <= budget:
            lo, best = mid, r
        else:
            hi = mid
    return {"sparsity": best[1], "cett": lo, "loss_ratio": math.exp(best[0] - dense)}


def _set_activation(model: nn.Module, **kwargs) -> None:
    for m in model.modules():
        if isinstance(m, Activation):
            for k, v in kwargs.items():
                setattr(m, k, v)


def run_activations(cfg: ActivationsConfig, seed: int = 0) -> dict:
    """ReLU vs GELU vs SiLU Transformers: nonzero fraction, fraction with |a| > τ, PPL-p% sparsity;
    then, from the SiLU model: continued SiLU training and ReLU substitution (plain, ProSparse's
    schedule, DEFT's density loss), all fine-tuned equally long; and CATS / CHESS thresholds
    calibrated on one batch and evaluated on held-out data (no retraining)."""
    ec = cfg.emergence
    out = {"models": {}}
    models = {}
    for act in ("relu", "gelu", "silu"):
        # the ReLU model is the one of run_emergence (cached)
        model, src, (hx, hy), _, _ = _transformer_run(ec, seed, act, act == "relu")
        ev = evaluate(model, hx, hy)
        acts = record_activations(model, hx)
        models[act] = model
        out["models"][act] = {"loss": ev["loss"], "nonzero": _mean(ev["nonzero"]), "dead": _mean(ev["dead"]),
                              "above_tau": _mean(nonzero_fraction(acts, tau=cfg.tau)),
                              "ppl_p": ppl_p_sparsity(model, hx[:cfg.ppl_rows], hy[:cfg.ppl_rows], cfg.p)["sparsity"]}
    base = models["silu"]

    dev = torch.device(ec.device)
    rng = np.random.default_rng(seed + 1)
    batches = [tuple(t.to(dev) for t in src.sample(ec.tf_batch, ec.seq_len, rng)) for _ in range(cfg.finetune_steps)]
    l1 = lambda acts, s: prosparse_lambda(s, cfg.stage_ends, cfg.stage_lambdas) * sum(  # noqa: E731
        a.abs().mean() for a in acts.values())
    deft = lambda acts, s: cfg.deft_weight * sum(deft_density_loss(a) for a in acts.values())  # noqa: E731
    ft = {}
    for label, act, pen in (("SiLU, continued", "silu", None), ("ReLU substituted", "relu", None),
                            ("ReLU + ProSparse L1", "relu", l1), ("ReLU + DEFT density", "relu", deft)):
        seed_everything(seed)
        m = TinyTransformer(ec.vocab, ec.seq_len, ec.d_model, ec.ff, ec.layers, activation="silu").to(dev)
        m.load_state_dict(base.state_dict())
        _set_activation(m, name=act)
        train(m, lambda s: batches[s], steps=cfg.finetune_steps, lr=cfg.finetune_lr, penalty=pen)
        ev = evaluate(m, hx, hy)
        ft[label] = {"loss": ev["loss"], "nonzero": _mean(ev["nonzero"]), "dead": _mean(ev["dead"])}
    out["finetune"] = ft

    # CATS (one threshold per layer) and CHESS (one per channel), calibrated on one batch, no retraining
    cal_x, _ = src.sample(ec.tf_batch, ec.seq_len, np.random.default_rng(seed + 555))
    cal = record_activations(base, cal_x.to(dev))
    rows = []
    for s in cfg.targets:
        row = {"target": s}
        for label, fn in (("cats", cats_threshold), ("chess", chess_thresholds)):
            for n, mod in mlp_activation_modules(base).items():
                mod.threshold = fn(cal[n], s)
            ev = evaluate(base, hx, hy)
            _set_activation(base, threshold=None)
            row[f"{label}_sparsity"] = 1 - _mean(ev["nonzero"])
            row[f"{label}_loss"] = ev["loss"]
        rows.append(row)
    out["thresholds"] = rows
    out["entropy"] = src.entropy()
    return out


# ---------------------------------------------------------------------------
# experiment 7: an MLP-Mixer on digits
# ---------------------------------------------------------------------------


class MixerBlock(nn.Module):
    """One MLP-Mixer block (Tolstikhin et al. 2021), pre-LayerNorm, two ReLU MLPs with biases and residuals.

    On ``x`` [b, t, d] (t tokens = patches, d channels):

    - token mixing, across patches for each channel:
      ``x ← x + (token_down(token_act(token_up(LN(x)ᵀ))))ᵀ``, hidden activation [b, d, token_hidden];
    - channel mixing, across channels for each patch:
      ``x ← x + channel_down(channel_act(channel_up(LN(x))))``, hidden activation [b, t, channel_hidden].

    ``token_act`` and ``channel_act`` are :class:`Activation` modules, so the recorder finds both.
    """

    def __init__(self, tokens: int, d: int, token_hidden: int, channel_hidden: int, activation: str = "relu"):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.token_up, self.token_act, self.token_down = (nn.Linear(tokens, token_hidden), Activation(activation),
                                                          nn.Linear(token_hidden, tokens))
        self.channel_up, self.channel_act, self.channel_down = (nn.Linear(d, channel_hidden), Activation(activation),
                                                                nn.Linear(channel_hidden, d))

    def forward(self, x):
        h = self.ln1(x).transpose(1, 2)                                  # [b, d, t]
        x = x + self.token_down(self.token_act(self.token_up(h))).transpose(1, 2)
        return x + self.channel_down(self.channel_act(self.channel_up(self.ln2(x))))


class TinyMixer(nn.Module):
    """An MLP-Mixer for square images: ``patch × patch`` patches → tokens, ``layers`` :class:`MixerBlock` s,
    LayerNorm, mean over tokens, a linear head.

    Input ``x`` [b, side²] (flattened images, e.g. digits' 64 pixels) or [b, side, side]; output [b, classes].
    The image is cut into ``t = (side/patch)²`` patches of ``patch²`` pixels, each embedded linearly to ``d``.
    """

    def __init__(self, side: int = 8, patch: int = 2, d: int = 32, token_hidden: int = 64,
                 channel_hidden: int = 128, layers: int = 2, classes: int = 10, activation: str = "relu"):
        super().__init__()
        side = _check_int(side, "side", 1)
        patch = _check_int(patch, "patch", 1, side)
        if side % patch:
            raise ValueError(f"patch must divide side; got patch {patch} and side {side}")
        self.side, self.patch = side, patch
        self.tokens = (side // patch) ** 2
        self.embed = nn.Linear(patch * patch, _check_int(d, "d", 1))
        self.blocks = nn.ModuleList(
            MixerBlock(self.tokens, d, _check_int(token_hidden, "token_hidden", 1),
                       _check_int(channel_hidden, "channel_hidden", 1), activation)
            for _ in range(_check_int(layers, "layers", 1)))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, _check_int(classes, "classes", 2))

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [b, side²] or [b, side, side] → patches [b, t, patch²] (row-major over the patch grid)."""
        s, p = self.side, self.patch
        if not ((x.ndim == 2 and x.shape[1] == s * s) or (x.ndim == 3 and tuple(x.shape[1:]) == (s, s))):
            raise ValueError(f"x must be [b, {s * s}] or [b, {s}, {s}]; got {tuple(x.shape)}")
        x = x.reshape(-1, s // p, p, s // p, p)                      # [b, gi, pi, gj, pj]
        return x.permute(0, 1, 3, 2, 4).reshape(x.shape[0], self.tokens, p * p)

    def forward(self, x):
        h = self.embed(self.patches(x))                              # [b, t, d]
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln(h).mean(1))                         # [b, classes]


@dataclass(frozen=True)
class MixerConfig:
    """A :class:`TinyMixer` trained on scikit-learn's digits with Adam at ``lr``.

    Each step draws ``batch`` training images and replaces each label by a uniform one with
    probability ``label_noise``, afresh every step (so the noisy task cannot be memorized; the
    held-out set keeps its clean labels).  Sparsity is measured every ``every`` steps.
    """

    patch: int = 2
    d: int = 32
    token_hidden: int = 64
    channel_hidden: int = 128
    layers: int = 2
    steps: int = 400
    batch: int = 128
    lr: float = 1e-2
    label_noise: float = 0.5
    every: int = 50
    device: str = "cpu"

    def __post_init__(self):
        _check_int(self.patch, "patch", 1, 8)
        if 8 % self.patch:
            raise ValueError(f"patch must divide 8 (the digits' side); got {self.patch}")
        for name in ("d", "token_hidden", "channel_hidden", "layers", "steps", "batch", "every"):
            _check_int(getattr(self, name), name, 1)
        _check_real(self.lr, "lr", 0.0, math.inf, low_open=True)
        _check_real(self.label_noise, "label_noise", 0.0, 1.0)

    @classmethod
    def preset(cls, scale: str) -> "MixerConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(d=128, token_hidden=256, channel_hidden=512, layers=4, steps=5000, every=250,
                   device=_auto_device())


def run_mixer(cfg: MixerConfig, seed: int = 0) -> dict:
    """Train a ReLU :class:`TinyMixer` on digits (labels noised afresh each step) and record its sparsity.

    Returns
    -------
    dict with
    ``steps`` [p] (probe steps: 0, every ``every``, the last);
    ``train``, ``held_out``, ``dead`` : ``{MLP name: [p] array}`` — nonzero fraction on the first
    training images (as many as held-out ones) and on the held-out images, and the held-out dead
    fraction, per MLP (``blocks.i.token_act`` and ``blocks.i.channel_act``);
    ``loss`` [steps] (training loss on the noisy labels); ``final``: :func:`evaluate` on the
    held-out images with their clean labels (loss, accuracy, per-MLP nonzero, dead, nonzero among live units).
    """
    if not isinstance(cfg, MixerConfig):
        raise TypeError(f"cfg must be a MixerConfig; got {type(cfg).__name__}")
    seed = _check_int(seed, "seed", 0)
    from sparsebook.data import digits

    rng = seed_everything(seed)
    dev = torch.device(cfg.device)
    d = digits(seed=seed)
    x, y = torch.as_tensor(d["x_train"]).to(dev), torch.as_tensor(d["y_train"]).to(dev)
    hx, hy = torch.as_tensor(d["x_test"]).to(dev), torch.as_tensor(d["y_test"]).to(dev)
    model = TinyMixer(8, cfg.patch, cfg.d, cfg.token_hidden, cfg.channel_hidden, cfg.layers).to(dev)
    names = list(mlp_activation_modules(model))
    tr = {"step": [], "train": [], "held_out": [], "dead": []}

    def batch(s):
        i = torch.as_tensor(rng.integers(0, len(x), cfg.batch)).to(dev)
        flip = torch.as_tensor(rng.random(cfg.batch) < cfg.label_noise).to(dev)
        noise = torch.as_tensor(rng.integers(0, 10, cfg.batch)).to(dev)
        return x[i], torch.where(flip, noise, y[i])

    def probe(m, s):
        held = record_activations(m, hx)
        tr["step"].append(s)
        tr["held_out"].append(nonzero_fraction(held))
        tr["dead"].append(dead_fraction(held))
        tr["train"].append(nonzero_fraction(record_activations(m, x[:len(hx)])))

    losses = train(model, batch, steps=cfg.steps, lr=cfg.lr, probe=probe, every=cfg.every)
    trace = {k: {n: np.array([row[n] for row in tr[k]]) for n in names} for k in ("train", "held_out", "dead")}
    return {"steps": np.array(tr["step"]), **trace, "loss": losses, "final": evaluate(model, hx, hy)}


# ---------------------------------------------------------------------------
# experiment 6: wall clock of the sparse MLP forward
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedConfig:
    """One token (``rows`` = 1) through the down projection ``h → d`` of MLPs of each size ``(d, h)``;
    times are medians of ``repeats`` calls after a warm-up."""

    sizes: tuple = ((256, 1024), (512, 2048))
    rows: int = 1
    sparsities: tuple = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
    repeats: int = 100

    @classmethod
    def preset(cls, scale: str) -> "SpeedConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(sizes=((256, 1024), (512, 2048), (1024, 4096), (4096, 16384)),
                                               repeats=500)


def _median_time(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def sparse_activation_batch(rows: int, h: int, sparsity: float, rng: np.random.Generator) -> torch.Tensor:
    """ReLU-like activations [rows, h] with exactly ``round(sparsity·h)`` zeros per row (same set in every row)."""
    sparsity = _check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)
    a = torch.as_tensor(np.abs(rng.standard_normal((rows, h))), dtype=torch.float32)
    off = rng.permutation(h)[: int(round(sparsity * h))]
    a[:, torch.as_tensor(off, dtype=torch.long)] = 0.0
    return a


def run_speed(cfg: SpeedConfig, seed: int = 0) -> dict:
    """Wall clock of the down projection, dense ``F.linear`` vs :func:`sparse_down`, at each sparsity and size.

    Returns per size ``"d×h"``: times (seconds), measured speedup and max abs difference of the
    results; and the ideal speedup ``1/(1 − s)``.  Timings are machine-dependent: never a claim.
    """
    rng = seed_everything(seed)
    s = np.array(cfg.sparsities)
    out = {"sparsity": s, "ideal": 1 / (1 - s), "sizes": {}}
    for d, h in cfg.sizes:
        w = torch.as_tensor(rng.standard_normal((d, h)) / math.sqrt(h), dtype=torch.float32)
        wt, b = w.T.contiguous(), torch.zeros(d)
        dense_t, sparse_t, err = [], [], []
        for sp in cfg.sparsities:
            a = sparse_activation_batch(cfg.rows, h, sp, rng)
            dense_t.append(_median_time(lambda: F.linear(a, w, b), cfg.repeats))
            sparse_t.append(_median_time(lambda: sparse_down(a, wt, b, dense_above=1.0), cfg.repeats))
            err.append(float((F.linear(a, w, b) - sparse_down(a, wt, b, dense_above=1.0)).abs().max()))
        out["sizes"][f"{d}×{h}"] = {"dense_s": np.array(dense_t), "sparse_s": np.array(sparse_t),
                                    "speedup": np.array(dense_t) / np.array(sparse_t), "max_abs_err": max(err)}
    return out
