"""Networks and network helpers shared by chapters.

- :func:`mlp`, :data:`ACTIVATIONS`, :func:`count_parameters`, :func:`accuracy`: small fully connected
  networks and their bookkeeping.
- :class:`TinyTransformer` (decoder-only, pre-LayerNorm, causal) with its :class:`Block` and the MLP
  nonlinearity :class:`Activation`, optionally sparsified by :func:`topk_activation` (Top-k) or
  :func:`apply_threshold` (a magnitude threshold).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sparsebook.validate import check_int

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}


def mlp(sizes: Sequence[int], activation: str = "relu", bias: bool = True) -> nn.Sequential:
    """A fully connected network ``sizes[0] → sizes[1] → … → sizes[-1]``.

    Hidden layers are ``Linear`` followed by ``activation`` (a name in
    :data:`ACTIVATIONS`); the last layer is linear (logits).  PyTorch's default
    initialization; seed with :func:`sparsebook.seed_everything` first.
    """
    sizes = list(sizes)
    if len(sizes) < 2 or any((not isinstance(s, int)) or isinstance(s, bool) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least 2 positive ints; got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``x`` whose argmax logit equals ``y`` (exact count / rows, in float64)."""
    model.eval()
    return int((model(x).argmax(-1) == y).sum()) / len(y)


# ---------------------------------------------------------------------------
# the Transformer and its sparsifiable MLP nonlinearity
# ---------------------------------------------------------------------------


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
    k = check_int(k, "k", 1, t.shape[-1])
    if k == t.shape[-1]:
        out = t.clone()
    else:
        idx = t.topk(k, dim=-1, sorted=False).indices
        mask = torch.zeros_like(t, dtype=torch.bool).scatter_(-1, idx, True)
        out = t * mask
    return out.numpy() if is_np else out


def apply_threshold(a, threshold):
    """``a·1[|a| ≥ t]`` with a scalar (CATS) or per-channel [h] (CHESS) threshold ``t``."""
    t = torch.as_tensor(threshold, dtype=a.dtype)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != a.shape[-1]):
        raise ValueError(f"threshold must be a scalar or have shape [{a.shape[-1]}]; got {tuple(t.shape)}")
    if torch.any(t < 0):
        raise ValueError("threshold must be >= 0")
    return a * (a.abs() >= t)


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
