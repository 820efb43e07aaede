"""Sparse training, experiments: batched small networks (one slice per seed), frozen configs with
``preset(scale)``, and the runners ``run_<experiment>(config, seeds)``.

Every runner trains all its seeds as one batched computation: parameters carry a leading member
axis (seeds, or seeds × arms), minibatches follow :func:`sparsebook.train.batch_order` with each
member's seed, and the optimisation goes through :func:`sparsebook.train.run_steps`.  Each seed has
its own stratified 75/25 split of the digits, so intervals include the variation between test sets.
Runners return dicts of NumPy arrays with one value per seed (shape ``[K]``) for
:func:`sparsebook.stats.from_seeds`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from sparsebook.data import digits
from sparsebook.models import mlp
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.sparse_training.kernels import (dsnot, expected_calibration_error, gaussian_kl, group_norms,
                                                layer_topk_mask, lora_rank_for_budget, mlp_flops, n_keep,
                                                nuclear_norm, patch_mask, pst_importance, random_node_masks, ridge_probe,
                                                row_topk_mask, smallest_magnitude_mask, sparse_envelope,
                                                sparse_wide_factor, ssvi_swap, straight_through, upsample_mask,
                                                wanda_scores)
from sparsebook.train import batch_order, make_optimizer, run_steps
from sparsebook.validate import check_int, check_real

#: Seeds per training-based claim.
N_SEEDS = {"ci": 5, "full": 10}


def device_for(scale: str) -> torch.device:
    """CPU at ``ci`` (what the stored outputs hold); CUDA at ``full`` when a GPU is present."""
    return torch.device("cuda" if check_scale(scale) == "full" and torch.cuda.is_available() else "cpu")


def _seeds(seeds) -> list[int]:
    seeds = [check_int(s, "seeds[i]", 0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    return seeds


# ---------------------------------------------------------------------------
# data and batched networks
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _digits_cpu(seeds: tuple) -> dict:
    parts = [digits(seed=s) for s in seeds]
    return {k: torch.as_tensor(np.stack([p[k] for p in parts])) for k in ("x_train", "y_train", "x_test", "y_test")}


def stacked_digits(seeds: Sequence[int], dev: torch.device | str = "cpu") -> dict:
    """The digits split of every seed, stacked: ``x_train [K, 1347, 64]``, ``y_train [K, 1347]``, ``x_test [K, 450, 64]``, ``y_test``."""
    return {k: v.to(dev) for k, v in _digits_cpu(tuple(_seeds(seeds))).items()}


def mirror(x: torch.Tensor) -> torch.Tensor:
    """The shifted task: every 8×8 image flipped left-right (``[..., 64]`` → ``[..., 64]``)."""
    return x.reshape(*x.shape[:-1], 8, 8).flip(-1).reshape(x.shape)


def init_mlp(sizes: Sequence[int], seeds: Sequence[int], dev="cpu") -> list[list[torch.Tensor]]:
    """``[[W, b], …]`` per layer, stacked over seeds (``W [K, out, in]``): member k is
    :func:`sparsebook.models.mlp` drawn after ``seed_everything(seeds[k])`` (PyTorch's default init)."""
    nets = []
    for s in _seeds(seeds):
        seed_everything(s)
        nets.append([m for m in mlp(list(sizes)) if isinstance(m, torch.nn.Linear)])
    return [[torch.stack([n[i].weight.detach() for n in nets]).to(dev).requires_grad_(),
             torch.stack([n[i].bias.detach() for n in nets]).to(dev).requires_grad_()] for i in range(len(nets[0]))]


def forward(params, x: torch.Tensor, weights=None, hidden_masks=None) -> torch.Tensor:
    """A batched ReLU MLP: ``x [K, B, in]`` → logits ``[K, B, out]``.

    ``weights``: effective weight matrices replacing ``params[l][0]`` (masked, adapted, ...);
    ``hidden_masks``: per hidden layer a ``[K, width]`` 0/1 tensor multiplying its activations (node masks).
    """
    h = x
    last = len(params) - 1
    for l, (w, b) in enumerate(params):
        w = w if weights is None or weights[l] is None else weights[l]
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if l < last:
            h = torch.relu(h)
            if hidden_masks is not None and hidden_masks[l] is not None:
                h = h * hidden_masks[l].unsqueeze(1)
    return h


def member_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of every member: logits ``[K, B, C]``, labels ``[K, B]`` → ``[K]``."""
    k, b, c = logits.shape
    return F.cross_entropy(logits.reshape(k * b, c), y.reshape(k * b), reduction="none").reshape(k, b).mean(1)


def member_accuracy(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Fraction correct of every member (exact count / rows), ``[K]`` float64."""
    return (logits.argmax(-1) == y).double().mean(1).cpu().numpy()


def _orders(n: int, batch: int, steps: int, seeds: Sequence[int], dev) -> torch.Tensor:
    return torch.as_tensor(np.stack([batch_order(n, batch, steps, s) for s in seeds], axis=1), device=dev)


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x[torch.arange(x.shape[0], device=x.device).unsqueeze(1), idx]


def train_members(params: Sequence[torch.Tensor], loss_fn, *, steps: int, lr: float, n: int, batch: int,
                  seeds: Sequence[int], dev="cpu") -> np.ndarray:
    """Minimise ``Σ_k loss_fn(idx)[k]`` with Adam through :func:`run_steps`; ``idx [K, batch]`` are
    member k's rows from ``batch_order(n, batch, steps, seeds[k])``.  Returns the per-member loss ``[steps, K]``."""
    order = _orders(n, batch, steps, seeds, dev)
    opt = make_optimizer(params, "adam", lr)

    def objective(s):
        per = loss_fn(s, order[s])
        return per.sum(), per

    return run_steps(opt, objective, steps=steps)


def _repeat(x: torch.Tensor, times: int) -> torch.Tensor:
    """Member axis ``[K, …]`` → ``[K·times, …]`` (each seed's slice repeated ``times`` times, seed-major)."""
    return x.repeat_interleave(times, 0)


# ---------------------------------------------------------------------------
# the book's own pretrained model
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PretrainConfig:
    """The "pretrained" model that DSnoT, PST and SaRA start from: ``64 → width → width → 10`` on digits."""

    width: int = 128
    steps: int = 300
    lr: float = 2e-3
    batch: int = 64

    @classmethod
    def preset(cls, scale: str = "ci") -> "PretrainConfig":
        return cls() if check_scale(scale) == "ci" else cls(width=256, steps=2000)

    def __post_init__(self):
        check_int(self.width, "width", 1)
        check_int(self.steps, "steps", 1)
        check_real(self.lr, "lr", 0, None, low_open=True)
        check_int(self.batch, "batch", 1)


@functools.lru_cache(maxsize=4)
def _pretrained(cfg: PretrainConfig, seeds: tuple, dev: str):
    seed_everything(seeds[0])
    d = stacked_digits(seeds, dev)
    params = init_mlp([64, cfg.width, cfg.width, 10], seeds, dev)
    flat = [t for layer in params for t in layer]
    train_members(flat, lambda s, idx: member_ce(forward(params, _take(d["x_train"], idx)), _take(d["y_train"], idx)),
                  steps=cfg.steps, lr=cfg.lr, n=d["x_train"].shape[1], batch=cfg.batch, seeds=seeds, dev=dev)
    return [[t.detach() for t in layer] for layer in params]


def pretrained(cfg: PretrainConfig, seeds: Sequence[int], dev="cpu") -> list[list[torch.Tensor]]:
    """The trained parameters (detached, ``[K, ...]``), trained once per (config, seeds) and cached."""
    return _pretrained(cfg, tuple(_seeds(seeds)), str(dev))


def _evaluate(params, x, y, weights=None) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        logits = forward(params, x, weights)
        return member_ce(logits, y).double().cpu().numpy(), member_accuracy(logits, y)


def cubic_schedule(step: int, total: int, final: float) -> float:
    """Sparsity at ``step``: ``s_f (1 − (1 − t/T)³)`` rising over the first ``total`` steps, then ``s_f``."""
    t = min(step / max(total, 1), 1.0)
    return final * (1.0 - (1.0 - t) ** 3)


# ---------------------------------------------------------------------------
# DSnoT
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DSnoTConfig:
    """One-shot pruning of the pretrained hidden layers (per output row), then DSnoT's mask updates."""

    sparsities: tuple = (0.5, 0.6, 0.7, 0.8, 0.9)
    calibration: int = 128
    cycles: int = 100
    tol: float = 0.0
    pretrain: PretrainConfig = PretrainConfig()

    @classmethod
    def preset(cls, scale: str = "ci") -> "DSnoTConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(sparsities=(0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9), calibration=512, cycles=300,
                   pretrain=PretrainConfig.preset("full"))


def _layer_inputs(params, x):
    """Inputs of every layer of the dense network: ``[x, h1, h2, …]``."""
    ins, h = [x], x
    for w, b in params[:-1]:
        h = torch.relu(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)))
        ins.append(h)
    return ins


def run_dsnot(cfg: DSnoTConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Test loss and accuracy of magnitude and Wanda masks at every sparsity, before and after DSnoT.

    Hidden layers are pruned (per output row, as Wanda and DSnoT do); the head stays dense.
    Calibration statistics come from ``calibration`` training images of the dense network.
    """
    seeds = _seeds(seeds)
    seed_everything(seeds[0])
    params = pretrained(cfg.pretrain, seeds, dev)
    d = stacked_digits(seeds, dev)
    ins = _layer_inputs(params, d["x_train"][:, :cfg.calibration])
    out = {"dense_loss": None, "dense_acc": None, "rows": [], "rows_kept_equal": True, "cycles_used": 0}
    out["dense_loss"], out["dense_acc"] = _evaluate(params, d["x_test"], d["y_test"])
    for s in cfg.sparsities:
        row = {"sparsity": s}
        for crit in ("magnitude", "wanda"):
            ws, ws_d = [], []
            for l, (w, _) in enumerate(params[:-1]):
                x = ins[l]
                mean, var, norm = x.mean(1), x.var(1, unbiased=False), x.norm(dim=1)
                score = w.abs() if crit == "magnitude" else wanda_scores(w, norm)
                m = row_topk_mask(score, s)
                md = dsnot(w, m, mean, var, norm, cycles=cfg.cycles, tol=cfg.tol)
                out["rows_kept_equal"] &= bool(torch.equal(m.sum(-1), md.sum(-1)))
                ws.append(w * m)
                ws_d.append(w * md)
            row[f"{crit}_loss"], row[f"{crit}_acc"] = _evaluate(params, d["x_test"], d["y_test"], ws + [None])
            row[f"{crit}_dsnot_loss"], row[f"{crit}_dsnot_acc"] = _evaluate(params, d["x_test"], d["y_test"], ws_d + [None])
        out["rows"].append(row)
    return out


# ---------------------------------------------------------------------------
# PST and SaRA: adapting the pretrained model to the mirrored task
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PSTConfig:
    """Sparse fine-tuning of the pretrained hidden layers on the mirrored digits: PST against full sparse fine-tuning."""

    sparsity: float = 0.8
    rank: int = 4            # LoRA rank of the weight update and rank of the importance scores
    steps: int = 200
    lr: float = 3e-3
    batch: int = 64
    ramp: float = 0.6        # fraction of steps over which the sparsity rises (cubic)
    pretrain: PretrainConfig = PretrainConfig()

    @classmethod
    def preset(cls, scale: str = "ci") -> "PSTConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(steps=1500, pretrain=PretrainConfig.preset("full"))


def pst_trainable(shapes: Sequence[tuple], rank: int, method: str) -> int:
    """Trainable parameters of the adapted hidden layers: ``full``: weights and a full score matrix
    (``2·out·in`` per layer); ``pst``: LoRA ``rank(out+in)`` + importance ``rank(out+in) + out + in``."""
    if method == "full":
        return sum(2 * o * i for o, i in shapes)
    if method == "pst":
        return sum(2 * rank * (o + i) + o + i for o, i in shapes)
    raise ValueError(f"method must be 'full' or 'pst'; got {method!r}")


def run_pst(cfg: PSTConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Mirrored-digit test accuracy after sparse fine-tuning at ``cfg.sparsity``: PST and full, plus
    the pretrained model (dense, and magnitude-pruned without fine-tuning) on the new task."""
    seeds = _seeds(seeds)
    base = pretrained(cfg.pretrain, seeds, dev)
    d = stacked_digits(seeds, dev)
    xtr, xte = mirror(d["x_train"]), mirror(d["x_test"])
    n = xtr.shape[1]
    hidden = base[:-1]
    shapes = [tuple(w.shape[1:]) for w, _ in hidden]
    ramp = int(cfg.ramp * cfg.steps)
    out = {"sparsity": cfg.sparsity}
    _, out["pretrained_acc"] = _evaluate(base, xte, d["y_test"])
    mag = [w * layer_topk_mask(w.abs(), cfg.sparsity) for w, _ in hidden]
    _, out["magnitude_acc"] = _evaluate(base, xte, d["y_test"], mag + [None])

    def masked(weight, score, s):
        return weight * straight_through(layer_topk_mask(score.detach(), s), score)

    # full sparse fine-tuning: all hidden weights and a full score matrix are trained (movement-style)
    seed_everything(seeds[0])
    w_full = [w.clone().requires_grad_() for w, _ in hidden]
    s_full = [torch.zeros_like(w, requires_grad=True) for w, _ in hidden]

    def eff_full(step):
        s = cubic_schedule(step, ramp, cfg.sparsity)
        return [masked(w, w.abs() + sc, s) for w, sc in zip(w_full, s_full)] + [None]

    train_members(w_full + s_full, lambda st, idx: member_ce(forward(base, _take(xtr, idx), eff_full(st)), _take(d["y_train"], idx)),
                  steps=cfg.steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=seeds, dev=dev)
    _, out["full_acc"] = _evaluate(base, xte, d["y_test"], eff_full(cfg.steps))

    # PST: frozen W, LoRA update U V, importance |W + U V| + A B + r + c
    seed_everything(seeds[0])
    k = cfg.rank
    g = torch.Generator().manual_seed(seeds[0])
    lora_u = [torch.zeros(len(seeds), o, k, device=dev, requires_grad=True) for o, _ in shapes]
    lora_v = [(torch.randn(len(seeds), k, i, generator=g) / math.sqrt(i)).to(dev).requires_grad_() for _, i in shapes]
    imp_a = [torch.zeros(len(seeds), o, k, device=dev, requires_grad=True) for o, _ in shapes]
    imp_b = [(torch.randn(len(seeds), k, i, generator=g) / math.sqrt(i)).to(dev).requires_grad_() for _, i in shapes]
    imp_r = [torch.zeros(len(seeds), o, device=dev, requires_grad=True) for o, _ in shapes]
    imp_c = [torch.zeros(len(seeds), i, device=dev, requires_grad=True) for _, i in shapes]

    def eff_pst(step):
        s = cubic_schedule(step, ramp, cfg.sparsity)
        ws = []
        for l, (w, _) in enumerate(hidden):
            wl = w + lora_u[l] @ lora_v[l]
            ws.append(masked(wl, pst_importance(wl, imp_a[l], imp_b[l], imp_r[l], imp_c[l]), s))
        return ws + [None]

    train_members(lora_u + lora_v + imp_a + imp_b + imp_r + imp_c,
                  lambda st, idx: member_ce(forward(base, _take(xtr, idx), eff_pst(st)), _take(d["y_train"], idx)),
                  steps=cfg.steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=seeds, dev=dev)
    final = eff_pst(cfg.steps)
    _, out["pst_acc"] = _evaluate(base, xte, d["y_test"], final)
    out["pst_density"] = float(np.mean([float((w != 0).double().mean()) for w in final[:-1]]))
    out["trainable_full"] = pst_trainable(shapes, k, "full")
    out["trainable_pst"] = pst_trainable(shapes, k, "pst")
    out["hidden_weights"] = sum(o * i for o, i in shapes)
    return out


@dataclass(frozen=True)
class SaRAConfig:
    """Fine-tuning the pretrained hidden layers on the mirrored digits: SaRA against LoRA at equal trainable parameters."""

    rank: int = 4            # LoRA rank; SaRA trains rank·(out + in) smallest weights per layer
    steps: int = 200
    lr: float = 3e-3
    batch: int = 64
    nuclear: float = 1e-3    # weight of the nuclear-norm penalty on SaRA's sparse update
    progressive_at: float = 0.5
    ineffective: float = 0.1  # fraction of smallest weights zeroed to test "they do not contribute"
    pretrain: PretrainConfig = PretrainConfig()

    @classmethod
    def preset(cls, scale: str = "ci") -> "SaRAConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(rank=8, steps=1500, pretrain=PretrainConfig.preset("full"))


def run_sara(cfg: SaRAConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Mirrored-task accuracy (adaptation) and original-task accuracy (what is kept) after SaRA and LoRA."""
    seeds = _seeds(seeds)
    base = pretrained(cfg.pretrain, seeds, dev)
    d = stacked_digits(seeds, dev)
    xtr, xte = mirror(d["x_train"]), mirror(d["x_test"])
    n = xtr.shape[1]
    hidden = base[:-1]
    shapes = [tuple(w.shape[1:]) for w, _ in hidden]
    budget = [cfg.rank * (o + i) for o, i in shapes]
    out = {"budget": int(sum(budget))}
    _, out["dense_acc"] = _evaluate(base, d["x_test"], d["y_test"])
    zeroed = [w * ~smallest_magnitude_mask(w, math.floor(cfg.ineffective * w.shape[1] * w.shape[2] + 0.5)) for w, _ in base]
    _, out["ineffective_zeroed_acc"] = _evaluate(base, d["x_test"], d["y_test"], zeroed)
    _, out["pretrained_mirror_acc"] = _evaluate(base, xte, d["y_test"])

    def loss(weights_fn, extra=None):
        def f(st, idx):
            per = member_ce(forward(base, _take(xtr, idx), weights_fn()), _take(d["y_train"], idx))
            return per if extra is None else per + extra()
        return f

    # LoRA
    seed_everything(seeds[0])
    g = torch.Generator().manual_seed(seeds[0])
    u = [torch.zeros(len(seeds), o, cfg.rank, device=dev, requires_grad=True) for o, _ in shapes]
    v = [(torch.randn(len(seeds), cfg.rank, i, generator=g) / math.sqrt(i)).to(dev).requires_grad_() for _, i in shapes]
    lora_w = lambda: [w + a @ b for (w, _), a, b in zip(hidden, u, v)] + [None]
    train_members(u + v, loss(lora_w), steps=cfg.steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=seeds, dev=dev)
    _, out["lora_mirror_acc"] = _evaluate(base, xte, d["y_test"], lora_w())
    _, out["lora_original_acc"] = _evaluate(base, d["x_test"], d["y_test"], lora_w())

    # SaRA: train only the smallest weights; nuclear-norm penalty on the sparse update; progressive re-selection
    seed_everything(seeds[0])
    cur = [w.clone() for w, _ in hidden]
    first = max(1, int(cfg.progressive_at * cfg.steps))
    touched = [torch.zeros_like(w, dtype=torch.bool) for w in cur]
    for stage_steps in (first, cfg.steps - first):
        if stage_steps <= 0:
            continue
        masks = [smallest_magnitude_mask(w, b) for w, b in zip(cur, budget)]
        touched = [t | m for t, m in zip(touched, masks)]
        deltas = [torch.zeros_like(w, requires_grad=True) for w in cur]
        sara_w = lambda: [w + p * m for w, p, m in zip(cur, deltas, masks)] + [None]
        nuc = lambda: cfg.nuclear * sum(nuclear_norm(p * m) for p, m in zip(deltas, masks))
        train_members(deltas, loss(sara_w, nuc), steps=stage_steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=seeds, dev=dev)
        cur = [w.detach() for w in sara_w()[:-1]]
    final = cur + [None]
    _, out["sara_mirror_acc"] = _evaluate(base, xte, d["y_test"], final)
    _, out["sara_original_acc"] = _evaluate(base, d["x_test"], d["y_test"], final)
    out["sara_changed_fraction"] = float(np.mean([float(t.double().mean()) for t in touched]))
    out["lora_trainable"] = int(sum(cfg.rank * (o + i) for o, i in shapes))
    out["sara_trainable"] = int(sum(budget))
    return out


# ---------------------------------------------------------------------------
# Sparse-IFT: sparse wide MLPs at equal FLOPs
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class IsoFlopConfig:
    """Dense ``64 → width → width → 10`` against Sparse Wide versions at equal FLOPs, trained from scratch."""

    width: int = 16
    sparsities: tuple = (0.5, 0.75, 0.9375)
    steps: int = 300
    lr: float = 3e-3
    batch: int = 64

    @classmethod
    def preset(cls, scale: str = "ci") -> "IsoFlopConfig":
        return cls() if check_scale(scale) == "ci" else cls(width=32, steps=2000)


def sparse_wide_plan(width: int, sparsity: float) -> tuple[list[int], list[float]]:
    """Widths and per-layer densities of Sparse Wide for ``64 → width → width → 10``: hidden width
    ``round(k·width)``, ``k = 1/√(1−s)``; the input and output layers (one side widened) keep density
    ``width/width'``, the hidden-to-hidden layer ``(width/width')²``, so each layer's FLOPs stay those of the dense layer."""
    wide = round(sparse_wide_factor(sparsity) * width)
    r = width / wide
    return [64, wide, wide, 10], [r, r * r, r]


def _random_masks(sizes, densities, seeds, dev):
    masks = []
    for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        g = torch.Generator().manual_seed(10_007 * seeds[0] + l)
        scores = torch.rand(len(seeds), b, a, generator=g)
        masks.append(layer_topk_mask(scores, 1.0 - densities[l]).to(dev))
    return masks


def run_sparse_ift(cfg: IsoFlopConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Test accuracy and exact forward FLOPs of the dense MLP and of Sparse Wide MLPs (static random masks)."""
    seeds = _seeds(seeds)
    d = stacked_digits(seeds, dev)
    n = d["x_train"].shape[1]
    arms = [("dense", [64, cfg.width, cfg.width, 10], [1.0, 1.0, 1.0])]
    arms += [(f"sparse wide s={s:g}", *sparse_wide_plan(cfg.width, s)) for s in cfg.sparsities]
    out = {"arms": []}
    for name, sizes, dens in arms:
        params = init_mlp(sizes, seeds, dev)
        masks = _random_masks(sizes, dens, seeds, dev)
        flat = [t for layer in params for t in layer]
        eff = lambda: [w * m for (w, _), m in zip(params, masks)]
        train_members(flat, lambda s, idx: member_ce(forward(params, _take(d["x_train"], idx), eff()), _take(d["y_train"], idx)),
                      steps=cfg.steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=seeds, dev=dev)
        _, acc = _evaluate(params, d["x_test"], d["y_test"], eff())
        nnz = [int(m[0].sum()) for m in masks]
        flops = 2 * sum(nnz)
        out["arms"].append({"name": name, "sizes": sizes, "acc": acc, "flops": flops,
                            "flops_formula": mlp_flops(sizes, dens)})
    return out


# ---------------------------------------------------------------------------
# WGSEF against group lasso: neuron-level (k-level) sparsity
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupSparsityConfig:
    """``64 → width → 10`` with one group per hidden neuron (its incoming row, bias and outgoing column);
    trained with a WGSEF or group-lasso penalty, then cut to the ``keep`` largest groups."""

    width: int = 64
    keep: int = 8
    lambdas: tuple = (1e-4, 1e-3, 1e-2, 1e-1)
    steps: int = 300
    lr: float = 3e-3
    batch: int = 64
    validation: int = 300

    @classmethod
    def preset(cls, scale: str = "ci") -> "GroupSparsityConfig":
        return cls() if check_scale(scale) == "ci" else cls(width=128, keep=16, lambdas=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1), steps=2000)


def _neuron_groups(params) -> torch.Tensor:
    (w1, b1), (w2, _) = params
    return torch.cat([w1, b1.unsqueeze(-1), w2.transpose(1, 2)], dim=-1)   # [M, width, 64 + 1 + 10]


def run_group_sparsity(cfg: GroupSparsityConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Per seed: the λ of each penalty with the best validation accuracy after the cut to ``keep`` neurons,
    its test accuracy after the cut, and the share of squared weight outside the kept groups before it."""
    seeds = _seeds(seeds)
    d = stacked_digits(seeds, dev)
    K, L = len(seeds), len(cfg.lambdas)
    methods = ("wgsef", "group_lasso", "none")
    arms = [(m, lam) for m in methods for lam in (cfg.lambdas if m != "none" else (0.0,))]
    A = len(arms)
    nval = cfg.validation
    xtr, ytr = _repeat(d["x_train"][:, nval:], A), _repeat(d["y_train"][:, nval:], A)
    xva, yva = d["x_train"][:, :nval], d["y_train"][:, :nval]
    member_seeds = [s for s in seeds for _ in range(A)]
    params = init_mlp([64, cfg.width, 10], member_seeds, dev)
    lam = torch.tensor([a[1] for a in arms] * K, device=dev)
    is_sef = torch.tensor([a[0] == "wgsef" for a in arms] * K, device=dev)
    flat = [t for layer in params for t in layer]

    def loss(s, idx):
        per = member_ce(forward(params, _take(xtr, idx)), _take(ytr, idx))
        v = group_norms(_neuron_groups(params), torch.ones(cfg.width, device=dev))
        pen = torch.where(is_sef, sparse_envelope(v, cfg.keep), v.sum(-1))
        return per + lam * pen

    train_members(flat, loss, steps=cfg.steps, lr=cfg.lr, n=xtr.shape[1], batch=cfg.batch, seeds=member_seeds, dev=dev)
    with torch.no_grad():
        v = group_norms(_neuron_groups(params), torch.ones(cfg.width, device=dev))
        keep = row_topk_mask(v, 1 - cfg.keep / cfg.width).to(v.dtype)            # [M, width]
        outside = ((v * v) * (1 - keep)).sum(-1) / (v * v).sum(-1)
        cut = [params[0][0] * keep.unsqueeze(-1), params[1][0] * keep.unsqueeze(1)]
        bias_cut = params[0][1] * keep
        cut_params = [[cut[0], bias_cut], [cut[1], params[1][1]]]
        va = member_accuracy(forward(cut_params, _repeat(xva, A)), _repeat(yva, A)).reshape(K, A)
        te = member_accuracy(forward(cut_params, _repeat(d["x_test"], A)), _repeat(d["y_test"], A)).reshape(K, A)
        dense_te = member_accuracy(forward(params, _repeat(d["x_test"], A)), _repeat(d["y_test"], A)).reshape(K, A)
    outside = outside.cpu().numpy().reshape(K, A)
    out = {"keep": cfg.keep, "width": cfg.width}
    for m in methods:
        cols = [j for j, a in enumerate(arms) if a[0] == m]
        best = [cols[int(np.argmax(va[k, cols]))] for k in range(K)]     # first best on ties
        out[f"{m}_acc"] = np.array([te[k, j] for k, j in enumerate(best)])
        out[f"{m}_dense_acc"] = np.array([dense_te[k, j] for k, j in enumerate(best)])
        out[f"{m}_outside"] = np.array([outside[k, j] for k, j in enumerate(best)])
        out[f"{m}_lambda"] = np.array([arms[j][1] for j in best])
        out[f"{m}_all_acc"] = te[:, cols]
    out["kept_exact"] = bool((keep.sum(-1) == cfg.keep).all())
    return out


# ---------------------------------------------------------------------------
# DASS against DARTS: search, derive, train, prune
# ---------------------------------------------------------------------------
OPS = ("skip", "linear", "bottleneck")


@dataclass(frozen=True)
class SearchConfig:
    """A three-layer supernet on digits (64 features), each layer a mixture of ``OPS``; derived
    architectures are trained, pruned one-shot (global magnitude over their operations) and fine-tuned."""

    layers: int = 3
    bottleneck: int = 16
    sparsity: float = 0.95
    search_steps: int = 150
    train_steps: int = 150
    finetune_steps: int = 60
    lr: float = 3e-3
    arch_lr: float = 3e-3
    batch: int = 64
    validation: int = 400

    @classmethod
    def preset(cls, scale: str = "ci") -> "SearchConfig":
        return cls() if check_scale(scale) == "ci" else cls(layers=4, search_steps=1500, train_steps=1500, finetune_steps=500)


def _supernet(members: Sequence[int], cfg: SearchConfig, dev):
    """Parameters of every operation of every layer, plus the head, stacked over members."""
    ops = []
    for l in range(cfg.layers):
        lin = init_mlp([64, 64], [10_000 * l + s for s in members], dev)[0]
        bott = init_mlp([64, cfg.bottleneck, 64], [10_000 * l + 5_000 + s for s in members], dev)
        ops.append({"linear": lin, "bottleneck": bott})
    head = init_mlp([64, 10], [77_777 + s for s in members], dev)[0]
    return ops, head


def _op_weights(ops, head=None):
    """The prunable matrices, in a fixed order: ``[(layer, op, index, tensor)]``; the head last, as ``(-1, "head", 0, W)``."""
    out = []
    for l, layer in enumerate(ops):
        out.append((l, "linear", 0, layer["linear"][0]))
        out.append((l, "bottleneck", 0, layer["bottleneck"][0][0]))
        out.append((l, "bottleneck", 1, layer["bottleneck"][1][0]))
    if head is not None:
        out.append((-1, "head", 0, head[0]))
    return out


def _apply_op(name, p, h, masks, key):
    """One candidate operation on ``h [M, B, 64]``: identity, ReLU(linear), or a ReLU bottleneck of two linears."""
    def lin(x, w, b, i):
        m = masks.get(key + (i,)) if masks else None
        w = w if m is None else w * m
        return torch.relu(torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)))

    if name == "skip":
        return h
    if name == "linear":
        return lin(h, p[0], p[1], 0)
    return lin(lin(h, p[0][0], p[0][1], 0), p[1][0], p[1][1], 1)


def _op_params(ops) -> list[torch.Tensor]:
    """Every tensor of every operation, in a fixed order."""
    out = []
    for layer in ops:
        out += layer["linear"] + [t for q in layer["bottleneck"] for t in q]
    return out


def _detached(ops):
    return [{"linear": [t.detach() for t in layer["linear"]],
             "bottleneck": [[t.detach() for t in q] for q in layer["bottleneck"]]} for layer in ops]


def _supernet_forward(ops, head, x, weights, masks=None):
    """``weights [M, layers, len(OPS)]``: mixing weights (softmax of α in search, one-hot for a derived net)."""
    h = x
    for l, layer in enumerate(ops):
        mix = 0
        for o, name in enumerate(OPS):
            p = layer.get(name)
            y = _apply_op(name, p, h, masks, (l, name))
            mix = mix + weights[:, l, o].reshape(-1, 1, 1) * y
        h = mix
    hw = head[0] if not masks or (-1, "head", 0) not in masks else head[0] * masks[(-1, "head", 0)]
    return torch.baddbmm(head[1].unsqueeze(1), h, hw.transpose(1, 2))


def _magnitude_masks(ops, head, sparsity, selected):
    """Global magnitude masks over the head and the matrices of the selected operations of each member.
    ``selected [M, layers, len(OPS)]`` (nonzero = used); unused operations' weights are left out of the pool."""
    mats = _op_weights(ops, head)
    scores = []
    for l, name, i, w in mats:
        use = (selected[:, l, OPS.index(name)] if name != "head" else torch.ones_like(selected[:, 0, 0])).reshape(-1, 1, 1) > 0
        scores.append(torch.where(use, w.detach().abs(), torch.full_like(w, -1.0)).reshape(w.shape[0], -1))
    allsc = torch.cat(scores, 1)
    n_used = (allsc >= 0).sum(1)
    masks_flat = torch.zeros_like(allsc, dtype=torch.bool)
    for mem in range(allsc.shape[0]):
        keep = n_keep(int(n_used[mem]), sparsity)
        if keep:
            idx = allsc[mem].topk(keep, sorted=False).indices
            masks_flat[mem, idx] = True
    out, pos = {}, 0
    for (l, name, i, w), sc in zip(mats, scores):
        k = sc.shape[1]
        out[(l, name, i)] = masks_flat[:, pos:pos + k].reshape(w.shape)
        pos += k
    return out


def _search(cfg, seeds, d, dev, sparse: bool):
    """First-order DARTS: weights on the training part, α on the validation part, one optimiser."""
    K = len(seeds)
    ops, head = _supernet(seeds, cfg, dev)
    alpha = torch.zeros(K, cfg.layers, len(OPS), device=dev, requires_grad=True)
    nval = cfg.validation
    xtr, ytr = d["x_train"][:, nval:], d["y_train"][:, nval:]
    xva, yva = d["x_train"][:, :nval], d["y_train"][:, :nval]
    vorder = _orders(nval, cfg.batch, cfg.search_steps, [s + 1 for s in seeds], dev)
    params = _op_params(ops) + head
    all_on = torch.ones(K, cfg.layers, len(OPS), device=dev)

    def masks_now():
        return _magnitude_masks(ops, head, cfg.sparsity, all_on) if sparse else None

    def loss(s, idx):
        m = masks_now()
        wmix = torch.softmax(alpha.detach(), -1)
        per_w = member_ce(_supernet_forward(ops, head, _take(xtr, idx), wmix, m), _take(ytr, idx))
        vi = vorder[s]
        per_a = member_ce(_supernet_forward(_detached(ops), [head[0].detach(), head[1].detach()], _take(xva, vi),
                                            torch.softmax(alpha, -1), m), _take(yva, vi))
        return per_w + per_a

    train_members(params + [alpha], loss, steps=cfg.search_steps, lr=cfg.lr, n=xtr.shape[1], batch=cfg.batch,
                  seeds=seeds, dev=dev)
    return alpha.detach().argmax(-1)      # [K, layers]


def run_search(cfg: SearchConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """DARTS (dense ops, dense objective) and DASS (sparse ops in the search, sparse objective): the
    derived architectures, their dense accuracy, and their accuracy after pruning at ``cfg.sparsity`` + fine-tuning."""
    seeds = _seeds(seeds)
    seed_everything(seeds[0])
    d = stacked_digits(seeds, dev)
    K = len(seeds)
    archs = {"darts": _search(cfg, seeds, d, dev, sparse=False), "dass": _search(cfg, seeds, d, dev, sparse=True)}
    out = {"archs": {k: v.cpu().numpy() for k, v in archs.items()}}
    members = [s for s in seeds for _ in range(2)]            # seed-major: (darts, dass) per seed
    sel = torch.stack([archs["darts"], archs["dass"]], 1).reshape(2 * K, cfg.layers)
    onehot = F.one_hot(sel, len(OPS)).to(torch.float32).to(dev)
    ops, head = _supernet([s + 1000 for s in members], cfg, dev)
    params = _op_params(ops) + head
    xtr, ytr = _repeat(d["x_train"], 2), _repeat(d["y_train"], 2)
    xte, yte = _repeat(d["x_test"], 2), _repeat(d["y_test"], 2)
    n = xtr.shape[1]
    train_members(params, lambda s, idx: member_ce(_supernet_forward(ops, head, _take(xtr, idx), onehot), _take(ytr, idx)),
                  steps=cfg.train_steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=members, dev=dev)
    with torch.no_grad():
        dense = member_accuracy(_supernet_forward(ops, head, xte, onehot), yte).reshape(K, 2)
    masks = _magnitude_masks(ops, head, cfg.sparsity, onehot)
    with torch.no_grad():
        for l, name, i, w in _op_weights(ops, head):
            w.mul_(masks[(l, name, i)])
    train_members(params, lambda s, idx: member_ce(_supernet_forward(ops, head, _take(xtr, idx), onehot, masks), _take(ytr, idx)),
                  steps=cfg.finetune_steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=[m + 1 for m in members], dev=dev)
    with torch.no_grad():
        pruned = member_accuracy(_supernet_forward(ops, head, xte, onehot, masks), yte).reshape(K, 2)
    out.update({"darts_dense": dense[:, 0], "dass_dense": dense[:, 1], "darts_pruned": pruned[:, 0], "dass_pruned": pruned[:, 1],
                "same_arch": (archs["darts"] == archs["dass"]).all(-1).cpu().numpy()})
    return out


# ---------------------------------------------------------------------------
# Random search over the node space
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RandomSearchConfig:
    """``64 → width → width → 10`` parent; sub-networks keep ``keep`` nodes of each hidden layer."""

    width: int = 128
    keep: int = 16
    candidates: int = 32
    steps: int = 300
    early: float = 0.2
    lr: float = 3e-3
    batch: int = 64

    @classmethod
    def preset(cls, scale: str = "ci") -> "RandomSearchConfig":
        return cls() if check_scale(scale) == "ci" else cls(width=256, keep=32, candidates=128, steps=1500)


ARMS_RS = ("random", "random_search", "importance")


def run_random_search(cfg: RandomSearchConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Random configuration, Random Search (best initial training loss of ``candidates`` random
    configurations) and an importance-based selection (SNIP connection sensitivity summed per node),
    each trained from the parent's initialisation: final test accuracy and early training loss."""
    seeds = _seeds(seeds)
    K = len(seeds)
    d = stacked_digits(seeds, dev)
    parent = init_mlp([64, cfg.width, cfg.width, 10], seeds, dev)
    rng = np.random.default_rng(seeds[0])
    xfull, yfull = d["x_train"], d["y_train"]
    chosen = {a: [] for a in ARMS_RS}
    # importance: |w ⊙ ∂L/∂w| summed over each node's incoming weights, at init, on the full training set
    loss0 = member_ce(forward(parent, xfull), yfull).sum()
    grads = torch.autograd.grad(loss0, [parent[0][0], parent[1][0]])
    imp = [(g * w).abs().sum(-1).detach() for g, (w, _) in zip(grads, parent[:2])]
    for l in range(2):
        chosen["importance"].append(row_topk_mask(imp[l], 1 - cfg.keep / cfg.width))
    for l in range(2):
        cands = torch.as_tensor(np.stack([random_node_masks(cfg.width, cfg.keep, cfg.candidates, rng) for _ in range(K)]), device=dev)
        chosen["random"].append(cands[:, 0])
        chosen.setdefault("_cands", []).append(cands)
    with torch.no_grad():
        losses = torch.stack([member_ce(forward(parent, xfull, hidden_masks=[chosen["_cands"][0][:, c].float(),
                                                                            chosen["_cands"][1][:, c].float()]), yfull)
                              for c in range(cfg.candidates)], 1)          # [K, candidates]
    best = losses.argmin(1)
    for l in range(2):
        chosen["random_search"].append(chosen["_cands"][l][torch.arange(K, device=best.device), best])
    A = len(ARMS_RS)
    members = [s for s in seeds for _ in range(A)]
    params = [[_repeat(w.detach(), A).requires_grad_(), _repeat(b.detach(), A).requires_grad_()] for w, b in parent]
    hmask = [torch.stack([chosen[a][l] for a in ARMS_RS], 1).reshape(K * A, cfg.width).float() for l in range(2)]
    xtr, ytr = _repeat(xfull, A), _repeat(yfull, A)
    flat = [t for layer in params for t in layer]
    curve = train_members(flat, lambda s, idx: member_ce(forward(params, _take(xtr, idx), hidden_masks=hmask), _take(ytr, idx)),
                          steps=cfg.steps, lr=cfg.lr, n=xtr.shape[1], batch=cfg.batch, seeds=members, dev=dev)
    with torch.no_grad():
        acc = member_accuracy(forward(params, _repeat(d["x_test"], A), hidden_masks=hmask), _repeat(d["y_test"], A)).reshape(K, A)
    early = curve[: max(1, int(cfg.early * cfg.steps))].mean(0).reshape(K, A)
    out = {"curves": curve.reshape(cfg.steps, K, A), "init_loss_best": losses.min(1).values.cpu().numpy(),
           "init_loss_first": losses[:, 0].cpu().numpy(),
           "kept_exact": bool(all((m.sum(-1) == cfg.keep).all() for m in hmask))}
    for j, a in enumerate(ARMS_RS):
        out[f"{a}_acc"] = acc[:, j]
        out[f"{a}_early_loss"] = early[:, j]
    return out


# ---------------------------------------------------------------------------
# a GRU on digits read row by row, pruned
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RNNConfig:
    """A GRU reads the 8 rows of a digit (8 pixels a step) and classifies it from its last state."""

    hidden: int = 32
    steps: int = 250
    lr: float = 5e-3
    batch: int = 64
    sparsities: tuple = (0.0, 0.5, 0.7, 0.8, 0.9)
    retrain_steps: int = 80

    @classmethod
    def preset(cls, scale: str = "ci") -> "RNNConfig":
        return cls() if check_scale(scale) == "ci" else cls(hidden=128, steps=3000, retrain_steps=500)


def init_gru(hidden: int, seeds: Sequence[int], dev="cpu") -> dict:
    """GRU parameters stacked over seeds, PyTorch's ``nn.GRU`` initialisation, plus a linear head."""
    ws = []
    for s in _seeds(seeds):
        seed_everything(s)
        g = torch.nn.GRU(8, hidden, batch_first=True)
        h = torch.nn.Linear(hidden, 10)
        ws.append([g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0, h.weight, h.bias])
    names = ("w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out")
    return {n: torch.stack([w[i].detach() for w in ws]).to(dev).requires_grad_() for i, n in enumerate(names)}


def gru_forward(p: dict, x: torch.Tensor, masks: dict | None = None) -> torch.Tensor:
    """``x [K, B, 64]`` read as 8 steps of 8 pixels; PyTorch's GRU equations (gates r, z, n); logits ``[K, B, 10]``."""
    w_ih = p["w_ih"] if not masks else p["w_ih"] * masks["w_ih"]
    w_hh = p["w_hh"] if not masks else p["w_hh"] * masks["w_hh"]
    k, b, _ = x.shape
    seq = x.reshape(k, b, 8, 8)
    H = w_hh.shape[-1]
    h = torch.zeros(k, b, H, dtype=x.dtype, device=x.device)
    for t in range(8):
        gi = torch.baddbmm(p["b_ih"].unsqueeze(1), seq[:, :, t], w_ih.transpose(1, 2))
        gh = torch.baddbmm(p["b_hh"].unsqueeze(1), h, w_hh.transpose(1, 2))
        r = torch.sigmoid(gi[..., :H] + gh[..., :H])
        z = torch.sigmoid(gi[..., H:2 * H] + gh[..., H:2 * H])
        nn_ = torch.tanh(gi[..., 2 * H:] + r * gh[..., 2 * H:])
        h = (1 - z) * nn_ + z * h
    return torch.baddbmm(p["b_out"].unsqueeze(1), h, p["w_out"].transpose(1, 2))


def run_rnn(cfg: RNNConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Test accuracy of the trained GRU pruned one-shot (magnitude, per matrix: input and recurrent
    weights) at every sparsity, without and with retraining of the kept weights."""
    seeds = _seeds(seeds)
    K, S = len(seeds), len(cfg.sparsities)
    d = stacked_digits(seeds, dev)
    n = d["x_train"].shape[1]
    p = init_gru(cfg.hidden, seeds, dev)
    train_members(list(p.values()), lambda s, idx: member_ce(gru_forward(p, _take(d["x_train"], idx)), _take(d["y_train"], idx)),
                  steps=cfg.steps, lr=cfg.lr, n=n, batch=cfg.batch, seeds=seeds, dev=dev)
    members = [s for s in seeds for _ in range(S)]
    q = {k: _repeat(v.detach(), S).requires_grad_() for k, v in p.items()}
    sp = list(cfg.sparsities) * K
    masks = {}
    for name in ("w_ih", "w_hh"):
        w = q[name].detach()
        masks[name] = torch.stack([layer_topk_mask(w[m].abs(), sp[m]) for m in range(K * S)])
    xte, yte = _repeat(d["x_test"], S), _repeat(d["y_test"], S)
    with torch.no_grad():
        oneshot = member_accuracy(gru_forward(q, xte, masks), yte).reshape(K, S)
        for name in masks:
            q[name].mul_(masks[name])
    xtr, ytr = _repeat(d["x_train"], S), _repeat(d["y_train"], S)
    train_members(list(q.values()), lambda s, idx: member_ce(gru_forward(q, _take(xtr, idx), masks), _take(ytr, idx)),
                  steps=cfg.retrain_steps, lr=cfg.lr / 5, n=n, batch=cfg.batch, seeds=[m + 1 for m in members], dev=dev)
    with torch.no_grad():
        retrained = member_accuracy(gru_forward(q, xte, masks), yte).reshape(K, S)
    return {"sparsities": list(cfg.sparsities), "oneshot": oneshot, "retrained": retrained,
            "params": int(sum(v[0].numel() for v in p.values()))}


# ---------------------------------------------------------------------------
# SSVI: sparse mean-field variational inference for a one-hidden-layer BNN
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SSVIConfig:
    """Mean-field Gaussian BNN ``64 → hidden → 10``: dense VI against SSVI at ``density`` (weights; biases dense)."""

    hidden: int = 128
    density: float = 0.1
    steps: int = 300
    lr: float = 1e-2
    batch: int = 64
    prior_sigma: float = 1.0
    rho_init: float = -5.0
    swap_every: int = 50
    swap_fraction: float = 0.1
    swap_until: float = 0.8
    test_samples: int = 16
    bins: int = 10

    @classmethod
    def preset(cls, scale: str = "ci") -> "SSVIConfig":
        return cls() if check_scale(scale) == "ci" else cls(hidden=400, steps=4000, test_samples=64)


def run_ssvi(cfg: SSVIConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Test accuracy, ECE and NLL of the posterior predictive (``test_samples`` draws) for dense VI and SSVI."""
    seeds = _seeds(seeds)
    K = len(seeds)
    d = stacked_digits(seeds, dev)
    n = d["x_train"].shape[1]
    out = {}
    for arm in ("dense", "ssvi"):
        seed_everything(seeds[0])
        base = init_mlp([64, cfg.hidden, 10], seeds, dev)
        mu = [t for layer in base for t in layer]                                  # w1, b1, w2, b2
        rho = [torch.full_like(t, cfg.rho_init).requires_grad_() for t in mu]
        g = torch.Generator().manual_seed(seeds[0] + (0 if arm == "dense" else 1))
        if arm == "dense":
            masks = [torch.ones_like(mu[0], dtype=torch.bool), torch.ones_like(mu[2], dtype=torch.bool)]
        else:
            masks = [layer_topk_mask(torch.rand(mu[i].shape, generator=g).to(dev), 1 - cfg.density) for i in (0, 2)]

        def sample(noise_gen=None):
            ws = []
            for i, (m_, r_) in enumerate(zip(mu, rho)):
                eps = torch.randn(m_.shape, generator=noise_gen).to(dev) if noise_gen is not None else torch.randn_like(m_)
                w = m_ + F.softplus(r_) * eps
                if i in (0, 2):
                    w = w * masks[i // 2]
                ws.append(w)
            return [[ws[0], ws[1]], [ws[2], ws[3]]]

        def kl():
            tot = 0
            for i, (m_, r_) in enumerate(zip(mu, rho)):
                k_ = gaussian_kl(m_, F.softplus(r_), cfg.prior_sigma)
                if i in (0, 2):
                    k_ = k_ * masks[i // 2]
                tot = tot + k_.reshape(K, -1).sum(1)
            return tot

        opt = make_optimizer(mu + rho, "adam", cfg.lr)
        order = _orders(n, cfg.batch, cfg.steps, seeds, dev)

        def objective(s):
            p = sample()
            per = member_ce(forward(p, _take(d["x_train"], order[s])), _take(d["y_train"], order[s])) + kl() / n
            return per.sum(), per

        def on_step(s):
            if arm == "ssvi" and s % cfg.swap_every == 0 and s <= cfg.swap_until * cfg.steps:
                with torch.no_grad():
                    for j, i in enumerate((0, 2)):
                        n_swap = int(cfg.swap_fraction * int(masks[j][0].sum()))
                        new = ssvi_swap(mu[i], F.softplus(rho[i]), masks[j], n_swap, g)
                        added = new & ~masks[j]
                        mu[i].masked_fill_(added, 0.0)
                        rho[i].masked_fill_(added, cfg.rho_init)
                        masks[j] = new

        run_steps(opt, objective, steps=cfg.steps, on_step=on_step)
        with torch.no_grad():
            tg = torch.Generator().manual_seed(99_991 + seeds[0])
            probs = torch.stack([torch.softmax(forward(sample(tg), d["x_test"]), -1) for _ in range(cfg.test_samples)]).mean(0)
            out[f"{arm}_acc"] = (probs.argmax(-1) == d["y_test"]).double().mean(1).cpu().numpy()
            out[f"{arm}_ece"] = expected_calibration_error(probs.double(), d["y_test"], cfg.bins).cpu().numpy()
            out[f"{arm}_nll"] = (-torch.log(probs.gather(-1, d["y_test"].unsqueeze(-1)).squeeze(-1) + 1e-12)).mean(1).double().cpu().numpy()
            out[f"{arm}_active"] = int(masks[0][0].sum() + masks[1][0].sum())
            out[f"{arm}_active_all"] = [m.reshape(K, -1).sum(-1).tolist() for m in masks]   # per matrix, per seed
    out["weights"] = 64 * cfg.hidden + cfg.hidden * 10
    return out


# ---------------------------------------------------------------------------
# SparK: masked image modelling of a tiny convnet, sparse against dense encoding
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SparKConfig:
    """Encoder: conv 3×3 (1→c1), ReLU, conv 3×3 stride 2 (c1→c2), ReLU (8×8 → 4×4); 2×2-pixel patches."""

    c1: int = 8
    c2: int = 32
    mask_ratio: float = 0.6
    steps: int = 150
    lr: float = 3e-3
    batch: int = 32
    ridge: float = 1.0

    @classmethod
    def preset(cls, scale: str = "ci") -> "SparKConfig":
        return cls() if check_scale(scale) == "ci" else cls(c1=32, c2=64, steps=3000)


def _conv_init(members, shape, dev):
    ws, bs = [], []
    for s in members:
        seed_everything(s)
        c = torch.nn.Conv2d(shape[1], shape[0], shape[2], padding=shape[2] // 2)
        ws.append(c.weight.detach())
        bs.append(c.bias.detach())
    return torch.cat(ws).to(dev).requires_grad_(), torch.cat(bs).to(dev).requires_grad_()


def spark_encode(p: dict, x: torch.Tensor, groups: int, vis: torch.Tensor | None = None) -> torch.Tensor:
    """Encoder on ``x [B, G, 8, 8]`` (one channel group a member); with ``vis [B, G, 4, 4]`` (visible
    patches) the input and every layer's output are re-masked, emulating sparse convolution."""
    pix = None if vis is None else upsample_mask(vis, 2).to(x.dtype)
    h = x if pix is None else x * pix
    h = torch.relu(F.conv2d(h, p["w1"], p["b1"], padding=1, groups=groups))
    if pix is not None:
        h = h * pix.repeat_interleave(h.shape[1] // groups, 1)
    h = torch.relu(F.conv2d(h, p["w2"], p["b2"], stride=2, padding=1, groups=groups))
    if vis is not None:
        h = h * vis.to(h.dtype).repeat_interleave(h.shape[1] // groups, 1)
    return h


def _spark_params(seeds, cfg: SparKConfig, dev) -> dict:
    p = {}
    p["w1"], p["b1"] = _conv_init(seeds, (cfg.c1, 1, 3), dev)
    p["w2"], p["b2"] = _conv_init(seeds, (cfg.c2, cfg.c1, 3), dev)
    p["w3"], p["b3"] = _conv_init([s + 500 for s in seeds], (cfg.c2, cfg.c2, 3), dev)
    p["w4"], p["b4"] = _conv_init([s + 900 for s in seeds], (4, cfg.c2, 1), dev)
    p["token"] = torch.zeros(len(seeds) * cfg.c2, device=dev, requires_grad=True)
    return p


def spark_loss(p: dict, x: torch.Tensor, vis: torch.Tensor, sparse: bool) -> torch.Tensor:
    """Masked-patch reconstruction error of every member, ``[G]``: encode the visible pixels (re-masked
    after every layer when ``sparse``), put the mask token at hidden patches, decode (conv 3×3, ReLU,
    conv 1×1 to the 2×2 pixels of each patch), mean squared error over the hidden pixels."""
    B, G = x.shape[:2]
    pix = upsample_mask(vis, 2).to(x.dtype)
    h = spark_encode(p, x * pix, G, vis if sparse else None)
    c2 = h.shape[1] // G
    visc = vis.to(h.dtype).repeat_interleave(c2, 1)
    h = h * visc + p["token"].reshape(1, -1, 1, 1) * (1 - visc)
    h = torch.relu(F.conv2d(h, p["w3"], p["b3"], padding=1, groups=G))
    rec = F.conv2d(h, p["w4"], p["b4"], groups=G)                     # [B, G·4, 4, 4]
    rec = rec.reshape(B, G, 2, 2, 4, 4).permute(0, 1, 4, 2, 5, 3).reshape(B, G, 8, 8)
    hidden = 1 - pix
    return ((((rec - x) ** 2) * hidden).sum((2, 3)) / hidden.sum((2, 3)).clamp(min=1)).mean(0)


def run_spark(cfg: SparKConfig, seeds: Sequence[int], dev="cpu") -> dict:
    """Ridge-probe test accuracy on encoder features after sparse (SparK) and dense masked pretraining
    (same initialisation, same masks, same batches), for the untrained encoder and for raw pixels."""
    seeds = _seeds(seeds)
    K = len(seeds)
    d = stacked_digits(seeds, dev)
    arms = {"sparse": _spark_params(seeds, cfg, dev), "dense": _spark_params(seeds, cfg, dev)}
    untrained = {k: v.detach().clone() for k, v in arms["sparse"].items()}
    img = lambda x: x.transpose(0, 1).reshape(x.shape[1], x.shape[0], 8, 8)   # [K, B, 64] -> [B, K, 8, 8]
    g = torch.Generator().manual_seed(seeds[0])

    def loss(s, idx):
        x = img(_take(d["x_train"], idx))
        vis = patch_mask(x.shape[0] * K, 4, cfg.mask_ratio, g).reshape(x.shape[0], K, 4, 4).to(dev)
        return spark_loss(arms["sparse"], x, vis, True) + spark_loss(arms["dense"], x, vis, False)

    train_members([t for p in arms.values() for t in p.values()], loss, steps=cfg.steps, lr=cfg.lr,
                  n=d["x_train"].shape[1], batch=cfg.batch, seeds=seeds, dev=dev)

    def feats(params, x):
        with torch.no_grad():
            return spark_encode(params, img(x), K, None).reshape(x.shape[1], K, -1).transpose(0, 1)

    sets = {name: (feats(p, d["x_train"]), feats(p, d["x_test"])) for name, p in
            (("sparse", arms["sparse"]), ("dense", arms["dense"]), ("untrained", untrained))}
    sets["pixels"] = (d["x_train"], d["x_test"])
    return {f"{name}_acc": member_accuracy_from_classes(ridge_probe(a, d["y_train"], b, 10, cfg.ridge), d["y_test"])
            for name, (a, b) in sets.items()}


def member_accuracy_from_classes(pred: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Fraction of ``pred == y`` per member (``[K, n]`` → ``[K]``, float64)."""
    return (pred == y).double().mean(-1).cpu().numpy()


# ---------------------------------------------------------------------------
# everything, for one scale
# ---------------------------------------------------------------------------
CONFIGS = {"dsnot": DSnoTConfig, "pst": PSTConfig, "sara": SaRAConfig, "sparse_ift": IsoFlopConfig,
           "group_sparsity": GroupSparsityConfig, "search": SearchConfig, "random_search": RandomSearchConfig,
           "rnn": RNNConfig, "ssvi": SSVIConfig, "spark": SparKConfig}
RUNNERS = {"dsnot": run_dsnot, "pst": run_pst, "sara": run_sara, "sparse_ift": run_sparse_ift,
           "group_sparsity": run_group_sparsity, "search": run_search, "random_search": run_random_search,
           "rnn": run_rnn, "ssvi": run_ssvi, "spark": run_spark}


#: The experiments, heaviest first (the order in which :func:`run_all` hands them to workers).
ORDER = ("spark", "sara", "ssvi", "search", "rnn", "group_sparsity", "pst", "dsnot", "random_search", "sparse_ift")


def run_indexed(index: int, scale: str = "ci", seed: int = 0) -> dict:
    """``run_experiment(ORDER[index], scale, seed)``: the picklable task :func:`run_all` spreads over workers."""
    return run_experiment(ORDER[check_int(index, "index", 0, len(ORDER) - 1)], scale, seed)


def run_all(scale: str = "ci", seed: int = 0, workers: int | None = None) -> dict:
    """Every experiment at ``scale``, on a pool of worker processes (:func:`sparsebook.seeding.over_seeds`
    with the experiment's index in :data:`ORDER` as the task); each experiment seeds itself, so the
    results do not depend on the number of workers.  Returns ``{name: result}``."""
    from sparsebook.seeding import over_seeds

    check_scale(scale)
    out = over_seeds(run_indexed, list(range(len(ORDER))), scale, seed, workers=workers)
    return dict(zip(ORDER, out))


def run_experiment(name: str, scale: str = "ci", seed: int = 0) -> dict:
    """Run experiment ``name`` at ``scale`` on seeds ``seed … seed + N_SEEDS[scale] − 1`` (one batched run)."""
    if name not in RUNNERS:
        raise ValueError(f"name must be one of {sorted(RUNNERS)}; got {name!r}")
    seed = check_int(seed, "seed", 0)
    seeds = list(range(seed, seed + N_SEEDS[check_scale(scale)]))
    return RUNNERS[name](CONFIGS[name].preset(scale), seeds, device_for(scale))
