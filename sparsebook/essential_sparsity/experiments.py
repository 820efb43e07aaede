"""Essential sparsity, experiments: the models (MLPs, a small CNN, a masked autoencoder, a tiny Transformer),
data, frozen configs with ``preset(scale)`` and the runners ``run_<experiment>(config, seed)``."""
from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from sparsebook.data import digits
from sparsebook.essential_sparsity.kernels import (KNEE_METHODS, apply_masks, average_density,
                                                   average_state_dicts, cubic_sparsity_schedule, essential_sparsity_point, hinge_fit,
                                                   knee_sharpness, largest_rise_fraction, log_magnitude_histogram,
                                                   magnitude_mask, magnitude_threshold, n_pruned, nm_mask,
                                                   pruning_window,
                                                   random_mask, ridge_probe_accuracy)
from sparsebook.models import TinyTransformer, mlp
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import fit
from sparsebook.validate import check_int, check_real

DEVICES = ("cpu", "cuda")


def full_device(model: str = "large") -> str:
    """The device of a ``full`` preset (the ``ci`` presets always run on the CPU, so the stored outputs
    do not depend on a GPU).

    ``model="large"`` (the Transformer, the CNN): ``"cuda"`` when a GPU is present, else ``"cpu"``.
    ``model="mlp"`` (the digits MLPs: batches of 64, at most 512 units): ``"cpu"`` unless the environment
    variable ``SPARSEBOOK_ES_MLP_DEVICE=cuda`` asks for the GPU (and one is present).  A step of these MLPs
    is a few dozen kernel launches of microseconds each, and the full run trains them in 20 worker
    processes at once (:func:`run_seeds`): on one GPU without MPS those processes would queue for it,
    while the CPU cores run them side by side.
    """
    if model not in ("large", "mlp"):
        raise ValueError(f"model must be 'large' or 'mlp'; got {model!r}")
    gpu = "cuda" if torch.cuda.is_available() else "cpu"
    if model == "large":
        return gpu
    want = os.environ.get("SPARSEBOOK_ES_MLP_DEVICE", "cpu")
    if want not in DEVICES:
        raise ValueError(f"SPARSEBOOK_ES_MLP_DEVICE must be one of {DEVICES}; got {want!r}")
    return gpu if want == "cuda" else "cpu"


def _check_device(device) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}; got {device!r}")
    return device


# ---------------------------------------------------------------------------
# Models, masks on models, soups
# ---------------------------------------------------------------------------
def prunable(model: nn.Module, include_head: bool = False) -> dict[str, nn.Parameter]:
    """The weight matrices (ndim >= 2) of ``model`` by name; the last one (the head) only if ``include_head``.

    The head is taken to be the last weight matrix in registration order (``named_parameters``), which holds
    for the chapter's models: the MLPs and the CNN (``nn.Sequential`` ending in the classifier) and
    :class:`MaskedReconstruction` (its decoder ``head`` is registered last).  A model whose output layer is
    registered earlier would need its pool named explicitly, as :func:`transformer_pool` does.

    For a :class:`~sparsebook.models.TinyTransformer` the pool is :func:`transformer_pool`
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
            x = x * (torch.rand(x.shape, device=x.device) >= self.mask_ratio).to(x.dtype)
        return self.head(self.encoder(x))


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(model, MaskedReconstruction):
        return model.features(x)
    return model[:-1](x)  # an nn.Sequential MLP: everything before the head


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
    """A dense MLP trained on digits: ``64 → width (× depth) → 10`` (supervised) or a masked autoencoder.

    ``full``: twice as wide (512 units), three times the steps (900); still on the CPU cores (see
    :func:`full_device`)."""

    width: int = 256
    depth: int = 2
    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    objective: str = "supervised"  # or "masked" (masked-pixel reconstruction)
    mask_ratio: float = 0.5
    data_fraction: float = 1.0
    track_every: int = 0  # > 0: record the essential sparsity every this many steps (run_emergence)
    track_sparsities: tuple = ()
    arch: str = "mlp"  # or "cnn" (supervised only): see :func:`small_cnn`; ``width`` is its second conv's channels
    device: str = "cpu"  # where the model and the data live ("cuda" at full when a GPU is present)

    @classmethod
    def preset(cls, scale: str = "ci") -> "ParentConfig":
        if check_scale(scale) == "ci":
            return cls()
        # depth 2 as at ci; the full run is sized by optimizer steps (at most 3x the ci total, FULL_STEP_FACTOR)
        return cls(width=512, depth=2, steps=900, device=full_device("mlp"))

    def __post_init__(self):
        check_int(self.width, "width", 1)
        check_int(self.depth, "depth", 1)
        check_int(self.steps, "steps", 1)
        if self.objective not in ("supervised", "masked"):
            raise ValueError(f"objective must be 'supervised' or 'masked'; got {self.objective!r}")
        if self.arch not in ("mlp", "cnn"):
            raise ValueError(f"arch must be 'mlp' or 'cnn'; got {self.arch!r}")
        if self.arch == "cnn" and self.objective != "supervised":
            raise ValueError("arch='cnn' supports objective='supervised' only")
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1]; got {self.data_fraction}")
        _check_device(self.device)


@functools.lru_cache(maxsize=4)
def _data(seed: int, device: str = "cpu") -> dict:
    d = digits(test_fraction=0.25, seed=seed, standardize=True)
    return {k: (torch.as_tensor(v).to(device) if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def small_cnn(channels: int = 16) -> nn.Sequential:
    """A small CNN for 8×8 digits given as 64-vectors: ``conv3×3(1→c/2) → ReLU → conv3×3(c/2→c) → ReLU →
    maxpool 2 → linear(16c → 10)``."""
    c = check_int(channels, "channels", 2)
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, c // 2, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c // 2, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * c, 10))


def _new_model(cfg: ParentConfig) -> nn.Module:
    """A freshly initialised model on ``cfg.device`` (drawn on the CPU, then moved: the same weights on every device)."""
    if cfg.arch == "cnn":
        model = small_cnn(cfg.width)
    elif cfg.objective == "masked":
        model = MaskedReconstruction(cfg.width, cfg.depth, mask_ratio=cfg.mask_ratio)
    else:
        model = mlp([64] + [cfg.width] * cfg.depth + [10])
    return model.to(cfg.device)


def _subset(data: dict, fraction: float, seed: int):
    x, y = data["x_train"], data["y_train"]
    if fraction >= 1.0:
        return x, y
    rng = np.random.default_rng(seed + 1)
    # stratified: the same fraction of every class
    idx = np.concatenate([rng.permutation(np.flatnonzero(y.cpu().numpy() == c))[:max(1, int(round(fraction * int((y == c).sum()))))]
                          for c in range(10)])
    idx = torch.as_tensor(np.sort(idx), device=y.device)
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
    data = _data(seed, cfg.device)
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
    seed = check_int(seed, "seed", 0)
    state, loss, track = _train_parent_cached(cfg, seed)
    model = _new_model(cfg)
    model.load_state_dict(state)
    model.eval()
    return model, {"train_loss": loss, "track": track}


def _train_sparse(model: nn.Module, data: dict, *, steps: int, lr: float, batch_size: int, seed: int,
                  names: Sequence[str], masks: dict | None = None, schedule=None, weight_decay: float = 0.0,
                  x=None, y=None, loss_fn=None, rezero: bool = False) -> nn.Module:
    """Train ``model`` keeping ``masks`` fixed (``w ← w ⊙ m``, pruned weights get no gradient), or, with ``schedule``
    (``step -> sparsity``), re-prune the weights ``names`` by global magnitude whenever the target rises.

    The gradients of pruned weights are zeroed too (a hook on each of ``names``), so Adam's moments
    do not accumulate on weights the mask removes (as ``torch.nn.utils.prune``'s re-parametrisation).
    With fixed ``masks`` (and ``rezero=False``, the default) the weights are masked once before training
    and not re-zeroed after each step: a pruned weight gets a zero gradient, hence zero Adam moments and an
    update of exactly zero (L2 weight decay adds ``λ·0``), so it stays zero, which callers verify
    (same numbers as re-zeroing every step, without its per-step cost).  ``loss_fn`` as in
    :func:`~sparsebook.train.fit`."""
    if masks and not set(masks) <= set(names or []):
        raise ValueError(f"every masked weight must be in names (its gradient is masked); "
                         f"missing: {sorted(set(masks) - set(names or []))}")
    state = {"masks": dict(masks) if masks else None, "s": -1.0}
    params = dict(model.named_parameters())
    hooks = []
    for k in (names or []):
        def _mask_grad(g, k=k):
            m = state["masks"]
            return g if not m or k not in m else g * m[k].to(g)
        hooks.append(params[k].register_hook(_mask_grad))

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
    each_step = rezero or schedule is not None
    if not each_step and state["masks"]:
        apply_masks(model, state["masks"])
    try:
        fit(model, x, y, steps=steps, lr=lr, batch_size=batch_size, seed=seed, weight_decay=weight_decay,
            callback=cb if each_step else None, every=1 if each_step else 0, loss_fn=loss_fn)
    finally:
        for h in hooks:
            h.remove()
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
    data = _data(seed, config.parent.device)
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
    best: dict = {}
    for n_, m_, sp, a, _ in nm:
        best[sp] = max(a, best.get(sp, 0.0))
    dense = evaluate(model, data)
    nm_s = np.array([0.0] + sorted(best))
    nm_y = np.array([dense] + [best[v] for v in sorted(best)])
    return {"sparsities": s, "acc_global": acc_g, "acc_layer": acc_l, "loss_global": loss_g,
            "dense_acc": dense, "nm": nm, "knees": knees,
            "knees_layer": {meth: essential_sparsity_point(s, acc_l, method=meth) for meth in KNEE_METHODS},
            "hinge": hinge_fit(s, acc_g, knees["hinge"]), "sharpness": knee_sharpness(s, acc_g),
            "plateau": essential_sparsity_point(s, acc_g, method="delta", delta=0.01),
            "nm_sparsities": nm_s, "nm_best": nm_y,
            "nm_sharpness": knee_sharpness(nm_s, nm_y) if nm_s.size >= 4 else None,
            "acc_2_4": next(a for n_, m_, _, a, _ in nm if (n_, m_) == (2, 4)),
            "nm_exact": all(bool((nm_mask(v.detach(), n_, m_).reshape(-1, m_).sum(1) == n_).all())
                            for n_, m_ in config.nm_patterns for v in ws.values() if v.shape[-1] % m_ == 0),
            **_magnitudes(saved, knees["hinge"], _initial_pool(lambda: _new_model(config.parent), prunable, seed))}


def _initial_pool(make, pool, seed: int) -> dict:
    """The pool of the model as training started: ``make()`` after ``seed_everything(seed)`` draws the same
    initial weights as the cached trainings (which seed, then build the model; their data draws use NumPy
    generators of their own)."""
    seed_everything(seed)
    return {k: v.detach() for k, v in pool(make()).items()}


def _magnitudes(pool: dict, knee: float, init: dict) -> dict:
    """``{"magnitudes": log_magnitude_histogram(pool), "magnitudes_init": the same at initialisation,
    "threshold_knee": the |w| cut at the hinge knee}``."""
    return {"magnitudes": log_magnitude_histogram(pool), "magnitudes_init": log_magnitude_histogram(init),
            "threshold_knee": magnitude_threshold(pool, knee)}


@dataclass(frozen=True)
class ArchitectureConfig:
    """The one-shot global curve of a small CNN (:func:`small_cnn`), to check the knee is not an MLP artefact."""

    parent: ParentConfig = field(default_factory=lambda: ParentConfig(arch="cnn", width=16, steps=300))
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "ArchitectureConfig":
        if check_scale(scale) == "ci":
            return cls()
        # full: 64 channels (4x), 3x the steps, the finer grid (evaluation only)
        return cls(parent=ParentConfig(arch="cnn", width=64, steps=900, device=full_device()), sparsities=_grid(scale))


def run_architecture(config: ArchitectureConfig, seed: int = 0) -> dict:
    """``{"sparsities", "acc", "dense_acc", "n_weights", "sharpness"}`` for the CNN pruned one-shot (global pool)."""
    if not isinstance(config, ArchitectureConfig):
        raise TypeError(f"config must be an ArchitectureConfig; got {type(config).__name__}")
    seed_everything(seed)
    model, _ = train_parent(config.parent, seed)
    data = _data(seed, config.parent.device)
    s = np.array(config.sparsities)
    acc = oneshot_curve(model, data, s, "global")
    sharp = knee_sharpness(s, acc)
    return {"sparsities": s, "acc": acc, "dense_acc": float(acc[0]),
            "n_weights": sum(p.numel() for p in prunable(model).values()),
            "sharpness": sharp, **_magnitudes(prunable(model), essential_sparsity_point(s, acc),
                                              _initial_pool(lambda: _new_model(config.parent), prunable, seed))}


@dataclass(frozen=True)
class FinetuneConfig:
    """The authors' BERT/ViT protocol: prune the trained parent one-shot (global pool), then fine-tune
    ``steps`` Adam steps with the mask fixed, at every sparsity of ``sparsities``.

    ``preset(scale, model)``: ``model="mlp"`` (the digits MLP; 12 sparsities) or ``"cnn"`` (the CNN of
    :class:`ArchitectureConfig`; 4 sparsities, for :class:`IMPConfig`).  ``full``: the full parent and
    3x the fine-tuning steps (90), at the same sparsities."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    sparsities: tuple = (0.0, 0.5, 0.7, 0.8, 0.87, 0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99)
    steps: int = 30
    lr: float = 1e-3

    @classmethod
    def preset(cls, scale: str = "ci", model: str = "mlp") -> "FinetuneConfig":
        full = check_scale(scale) == "full"
        if model not in ("mlp", "cnn"):
            raise ValueError(f"model must be 'mlp' or 'cnn'; got {model!r}")
        steps = 90 if full else cls.steps
        if model == "cnn":
            return cls(parent=ArchitectureConfig.preset(scale).parent, sparsities=(0.0, 0.5, 0.8, 0.9), steps=steps)
        return cls(parent=ParentConfig.preset(scale), steps=steps)


def run_finetune(config: FinetuneConfig, seed: int = 0) -> dict:
    """``{"sparsities", "acc" (fine-tuned with the mask fixed), "acc_oneshot" (same masks, no fine-tuning),
    "sharpness", "knees"}``."""
    if not isinstance(config, FinetuneConfig):
        raise TypeError(f"config must be a FinetuneConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed, config.parent.device)
    s = np.array(config.sparsities, dtype=float)
    acc, acc0 = [], []
    for sp in s:
        model, _ = train_parent(config.parent, seed)
        ws = prunable(model)
        masks = magnitude_mask({k: v.detach() for k, v in ws.items()}, float(sp))
        apply_masks(model, masks)
        acc0.append(evaluate(model, data))
        _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=config.parent.batch_size,
                      seed=seed + 7, names=list(ws), masks=masks)
        acc.append(evaluate(model, data))
    acc, acc0 = np.array(acc), np.array(acc0)
    return {"sparsities": s, "acc": acc, "acc_oneshot": acc0, "sharpness": knee_sharpness(s, acc),
            "knees": {m: essential_sparsity_point(s, acc, method=m) for m in KNEE_METHODS},
            "plateau": essential_sparsity_point(s, acc, method="delta", delta=0.01)}


@dataclass(frozen=True)
class IMPConfig:
    """Iterative magnitude pruning (lottery tickets with rewinding to the trained parent) against the
    one-shot masks of :class:`FinetuneConfig`, with the same fine-tuning protocol (steps, learning rate,
    batch order) and at its sparsities (the nonzero ones), so the two are paired seed by seed."""

    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    #: the IMP rounds' sparsities, a subset of ``finetune.sparsities`` (empty: all of its nonzero ones);
    #: at ci five rounds (each removes 40-60% of the weights left) keep the cost at half of run_finetune's
    sparsities: tuple = (0.5, 0.8, 0.9, 0.94, 0.97)

    @classmethod
    def preset(cls, scale: str = "ci", model: str = "mlp") -> "IMPConfig":
        """``model="mlp"``: five rounds (0.5 to 0.97); ``"cnn"``: three rounds (0.5, 0.8, 0.9), on
        :meth:`FinetuneConfig.preset`'s CNN.  ``full``: the same rounds with the full fine-tuning."""
        ft = FinetuneConfig.preset(scale, model)
        return cls(finetune=ft, sparsities=(0.5, 0.8, 0.9) if model == "cnn" else cls.sparsities)

    def __post_init__(self):
        grid = [float(v) for v in self.finetune.sparsities]
        s = [float(v) for v in self.sparsities]
        if any(v not in grid or v <= 0 for v in s) or s != sorted(set(s)):
            raise ValueError(f"sparsities must increase strictly and be nonzero values of finetune.sparsities "
                             f"{tuple(grid)}; got {self.sparsities}")

    def targets(self) -> list[float]:
        """The sparsities of the IMP rounds, in order."""
        return [float(v) for v in (self.sparsities or self.finetune.sparsities) if v > 0]


def run_imp(config: IMPConfig, seed: int = 0) -> dict:
    """Iterative magnitude pruning to the sparsities ``s_1 < … < s_R`` of :meth:`IMPConfig.targets`.

    Round ``r`` (``s_0 = 0``): rewind to the trained parent ``θ_p``, apply the mask ``m_r``, fine-tune
    ``steps`` steps with the mask fixed (:func:`run_finetune`'s protocol and batch order), record the
    test accuracy, then prune the fine-tuned weights by global magnitude to ``s_{r+1}`` (the pruned
    weights are zero, so they stay pruned: ``m_{r+1} ⊆ m_r``).  This is the lottery-ticket procedure of
    Chen et al. (2020) for pre-trained BERT that Jaiswal et al. compare one-shot masks with.

    Returns ``{"sparsities" (R,), "acc_imp" (R,) (IMP mask, rewound and fine-tuned), "overlap" (R,)
    (fraction of the one-shot mask's kept weights that the IMP mask keeps too; chance is ``1 − s``),
    "chance" (R,), "nested" (every mask inside the previous one), "exact" (every mask at its sparsity,
    to the weight)}``.  The one-shot accuracies with the same protocol are :func:`run_finetune`'s ``acc``.
    """
    if not isinstance(config, IMPConfig):
        raise TypeError(f"config must be an IMPConfig; got {type(config).__name__}")
    ft = config.finetune
    seed = check_int(seed, "seed", 0)
    seed_everything(seed)
    data = _data(seed, ft.parent.device)

    def finetune(model, masks):
        _train_sparse(model, data, steps=ft.steps, lr=ft.lr, batch_size=ft.parent.batch_size, seed=seed + 7,
                      names=list(masks), masks=masks)

    return _imp_rounds(lambda: train_parent(ft.parent, seed)[0], prunable, finetune,
                       lambda model: evaluate(model, data), config.targets())


def _imp_rounds(load, pool, finetune, score, targets: Sequence[float]) -> dict:
    """The rounds of iterative magnitude pruning with rewinding, for any model (:func:`run_imp`,
    :func:`run_transformer_imp`).

    ``load()`` returns a fresh copy of the trained parent ``θ_p`` (the rewinding point), ``pool(model)`` its
    prunable weights by name, ``finetune(model, masks)`` fine-tunes it in place with ``masks`` fixed, and
    ``score(model)`` is its test accuracy.  Round ``r`` rewinds, applies ``m_r`` (``m_0``: all ones),
    fine-tunes, scores (``r >= 1``) and prunes the fine-tuned weights by global magnitude to ``s_{r+1}``.
    Returns :func:`run_imp`'s dictionary."""
    parent = load()
    theta = {k: v.detach().clone() for k, v in pool(parent).items()}
    total = sum(v.numel() for v in theta.values())
    oneshot = {sp: magnitude_mask(theta, sp) for sp in targets}
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in theta.items()}
    acc, overlap, nested, exact = [], [], True, True
    for r in range(len(targets) + 1):
        model = load()  # rewind to θ_p
        apply_masks(model, masks)
        finetune(model, masks)
        if r:
            acc.append(score(model))
        if r == len(targets):
            break
        sp = targets[r]
        new = magnitude_mask({k: v.detach() for k, v in pool(model).items()}, sp)
        nested &= all(bool((new[k] <= masks[k]).all()) for k in masks)
        exact &= sum(int((~m).sum()) for m in new.values()) == n_pruned(sp, total)
        masks = new
        overlap.append(sum(int((masks[k] & oneshot[sp][k]).sum()) for k in masks)
                       / sum(int(m.sum()) for m in oneshot[sp].values()))
    t = np.array(targets)
    return {"sparsities": t, "acc_imp": np.array(acc), "overlap": np.array(overlap), "chance": 1.0 - t,
            "nested": bool(nested), "exact": bool(exact)}


def imp_pairs(runs: Sequence[dict], imp: str = "imp", finetune: str = "finetune") -> dict:
    """One-shot and IMP accuracies at the IMP sparsities, paired seed by seed (same fine-tuning protocol):
    ``{"sparsities" (R,), "oneshot" [K, R] (one-shot mask + fine-tuning), "imp" [K, R] (IMP mask + fine-tuning),
    "oneshot_no_ft" [K, R] (one-shot mask, no fine-tuning), "overlap" [K, R], "chance" (R,)}``.

    ``imp``/``finetune`` name the two experiments of :func:`run_seed`: ``"imp"``/``"finetune"`` (the MLP),
    ``"cnn_imp"``/``"cnn_ft"`` (the CNN), ``"transformer_imp"``/``"transformer_ft"`` (the Transformer)."""
    s = np.asarray(runs[0][imp]["sparsities"], dtype=float)
    grid = [round(float(v), 9) for v in runs[0][finetune]["sparsities"]]
    idx = [grid.index(round(float(v), 9)) for v in s]
    return {"sparsities": s, "oneshot": collect(runs, finetune, "acc")[:, idx],
            "imp": collect(runs, imp, "acc_imp"), "oneshot_no_ft": collect(runs, finetune, "acc_oneshot")[:, idx],
            "overlap": collect(runs, imp, "overlap"), "chance": 1.0 - s}


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
    data = _data(seed, config.supervised.device)
    s = np.array(config.sparsities)
    out = {"sparsities": s}
    for name, cfg in (("supervised", config.supervised), ("masked", config.masked)):
        model, _ = train_parent(cfg, seed)
        # prune the encoder only (the head is not used by the probe)
        include_head = False
        curve = oneshot_curve(model, data, s, "global", metric="probe", include_head=include_head)
        out[name] = {"probe": curve, "knees": {m: essential_sparsity_point(s, curve, method=m) for m in KNEE_METHODS}}
    # controls: the same probe on the raw pixels and on an untrained encoder of the same shape
    out["raw_probe"] = ridge_probe_accuracy(data["x_train"], data["y_train"], data["x_test"], data["y_test"])
    seed_everything(seed)
    untrained = _new_model(config.masked)
    out["untrained_probe"] = evaluate(untrained, data, "probe")
    return out


@dataclass(frozen=True)
class DataAmountConfig:
    """Parents trained on growing fractions of the training set (same steps), pruned one-shot.

    ``full``: the full parent, three fractions (10%, 30%, 100%) instead of two, the finer grid."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    fractions: tuple = (0.1, 1.0)
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "DataAmountConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), fractions=(0.1, 0.3, 1.0), sparsities=_grid(scale))


def run_data_amount(config: DataAmountConfig, seed: int = 0) -> dict:
    """Knees (all methods) and curves for each data fraction."""
    if not isinstance(config, DataAmountConfig):
        raise TypeError(f"config must be a DataAmountConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed, config.parent.device)
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
    """Essential sparsity (``delta`` knee, 1 point of accuracy) of checkpoints taken every ``every`` steps.

    ``full``: the full parent's width, 1,200 steps (from 450) at the same learning rate and checkpoint interval."""

    parent: ParentConfig = field(default_factory=lambda: ParentConfig(lr=2e-4, steps=450))
    every: int = 30
    min_accuracy: float = 0.5  # checkpoints whose dense accuracy is below this are not scored
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))

    @classmethod
    def preset(cls, scale: str = "ci") -> "EmergenceConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=replace(ParentConfig.preset(scale), lr=2e-4, steps=1200), every=30, sparsities=_grid(scale))


def run_emergence(config: EmergenceConfig, seed: int = 0) -> dict:
    """``{"steps", "dense_acc", "essential", "scored", "jump_fraction", "jump_step"}``.

    ``jump_fraction`` = :func:`largest_rise_fraction` of the essential sparsity over the
    scored checkpoints (largest rise between consecutive checkpoints / total rise); a smooth
    rise over K checkpoints gives about 1/K, a single jump 1.
    ``acc_jump_fraction`` is the same statistic on the dense accuracy of the same checkpoints
    (the control: a curve that merely saturates fast scores high too).
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
    jump = largest_rise_fraction(e) if e.size >= 2 else 0.0
    jump_step = int(steps[scored][1 + int(np.argmax(rises))]) if rises.size else -1
    return {"steps": steps, "dense_acc": acc, "essential": ess, "scored": scored,
            "jump_fraction": jump, "jump_step": jump_step, "total_rise": total,
            "acc_jump_fraction": largest_rise_fraction(acc[scored]) if e.size >= 2 else 0.0}


# ---------------------------------------------------------------------------
# Experiment 4: random pruning at initialisation (uniform vs ERK, narrow vs wide)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RandomPruningConfig:
    """Sparse training from scratch with a random mask (all layers, head included) at ``density``.

    ``full``: three widths (32, 128, 512) instead of two, 500 steps (from 300)."""

    widths: tuple = (32, 256)
    density: float = 0.1
    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 64
    depth: int = 2
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci") -> "RandomPruningConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(widths=(32, 128, 512), steps=500, device=full_device("mlp"))

    def __post_init__(self):
        _check_device(self.device)


def run_random_pruning(config: RandomPruningConfig, seed: int = 0) -> dict:
    """Test accuracy of dense, uniform-random and ERK-random networks per width: ``{"rows": [...]}``."""
    if not isinstance(config, RandomPruningConfig):
        raise TypeError(f"config must be a RandomPruningConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed, config.device)
    rows = []
    for w in config.widths:
        row = {"width": int(w)}
        parent = ParentConfig(width=int(w), depth=config.depth, steps=config.steps, lr=config.lr,
                              batch_size=config.batch_size, device=config.device)
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
    """From the trained parent: one-shot prune + retrain vs cubic gradual pruning over the same steps.

    ``full``: the full parent, 400 retraining steps (from 150), the same sparsities."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    sparsities: tuple = (0.9, 0.97, 0.99)
    steps: int = 150
    lr: float = 1e-3
    dt: int = 10
    prune_fraction: float = 0.75  # the cubic ramp ends at this fraction of the retraining steps

    @classmethod
    def preset(cls, scale: str = "ci") -> "GradualConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), steps=400)


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
    data = _data(seed, config.parent.device)
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
        small = ParentConfig(width=h, depth=p.depth, steps=p.steps + config.steps, lr=p.lr, batch_size=p.batch_size,
                             device=p.device)
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
    """Train from scratch while pruning to ``sparsity`` with a cubic ramp over a window of training.

    ``full``: width 512, 500 steps (from 300), five windows instead of three."""

    width: int = 256
    depth: int = 2
    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 64
    sparsity: float = 0.97
    windows: tuple = ((0.0, 0.5), (0.25, 0.75), (0.5, 1.0))
    dt: int = 10
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci") -> "JourneyConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(width=512, steps=500, windows=((0.0, 0.25), (0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.75, 1.0)),
                   device=full_device("mlp"))

    def __post_init__(self):
        _check_device(self.device)


def run_journey(config: JourneyConfig, seed: int = 0) -> dict:
    """Final test loss and accuracy per window: ``{"rows": [{"start", "end", "loss", "acc", "avg_density"}]}``
    (``avg_density``: the mean over training steps of ``1 − s_t``, Jin et al.'s average parameter count
    as a fraction of the dense pool)."""
    if not isinstance(config, JourneyConfig):
        raise TypeError(f"config must be a JourneyConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed, config.device)
    rows = []
    for a, b in config.windows:
        seed_everything(seed)
        model = mlp([64] + [config.width] * config.depth + [10]).to(config.device)
        names = list(prunable(model))
        t0, n = pruning_window(config.steps, a, b, config.dt)
        # the last step at which the schedule rises must be < steps, so the final mask is applied
        sched = functools.partial(cubic_sparsity_schedule, s_initial=0.0, s_final=config.sparsity, t0=t0,
                                  n_steps=n, dt=min(config.dt, max(1, (config.steps - 1 - t0) // n)))
        _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=config.batch_size, seed=seed,
                      names=names, schedule=sched)
        rows.append({"start": a, "end": b, "loss": evaluate(model, data, "loss"), "acc": evaluate(model, data),
                     "avg_density": average_density(sched, config.steps)})
    return {"rows": rows}


# ---------------------------------------------------------------------------
# Experiment 7: sparse model soups
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SoupConfig:
    """Prune the parent once, retrain ``n_ingredients`` copies (different batch orders), average them.

    ``full``: the full parent, five ingredients (from three) of 250 steps (from 150)."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    sparsity: float = 0.9
    n_ingredients: int = 3
    steps: int = 150
    lr: float = 1e-3

    @classmethod
    def preset(cls, scale: str = "ci") -> "SoupConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), n_ingredients=5, steps=250)


def run_soups(config: SoupConfig, seed: int = 0) -> dict:
    """``{"ingredients": [(acc, loss)], "soup": (acc, loss), "soup_sparsity", "mask_sparsity", "soup_zeros_on_mask"}``.

    ``mask_sparsity`` is the shared mask's pruned fraction k/N (k = floor(s·N + 1/2), so not exactly ``s``
    unless N·s is an integer); ``soup_zeros_on_mask``: every weight the mask prunes is exactly zero in the soup."""
    if not isinstance(config, SoupConfig):
        raise TypeError(f"config must be a SoupConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed, config.parent.device)
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
            "soup": (evaluate(soup, data), evaluate(soup, data, "loss")), "soup_sparsity": sp,
            "mask_sparsity": float(sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())),
            "soup_zeros_on_mask": all(bool((w[~masks[k]] == 0).all()) for k, w in prunable(soup).items())}


# ---------------------------------------------------------------------------
# Experiment 8: N:M training, fixed mask vs progressive gradient flow
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NMTrainConfig:
    """Fine-tune the parent to an N:M pattern: fixed one-shot mask vs decaying dense gradient flow.

    ``full``: the full parent, 400 steps (from 150)."""

    parent: ParentConfig = field(default_factory=ParentConfig)
    n: int = 1
    m: int = 16
    steps: int = 150
    lr: float = 1e-3
    decay_fraction: float = 0.5  # β(t) falls linearly from 1 to 0 over this fraction of the steps
    srste_lambda: float = 2e-4   # SR-STE's sparse-refined decay (Zhou et al. 2021)

    @classmethod
    def preset(cls, scale: str = "ci") -> "NMTrainConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(parent=ParentConfig.preset(scale), steps=400)


class _PGFLinear(nn.Module):
    """``y = x (w ⊙ (m + (1 − m) β))ᵀ + b``, ``m = nm_mask(w)`` recomputed every forward pass.

    ``mode="pgf"``: pruned weights enter scaled by ``β`` (so their gradient is scaled by ``β``);
    ``mode="srste"`` (Zhou et al. 2021, the baseline of Bambhaniya et al.): the forward pass uses
    ``w ⊙ m``, the gradient reaches every weight unchanged (straight-through), and the sparse-refined
    term ``λ (1 − m) ⊙ w`` is added to the gradient of the pruned weights (a penalty ``λ/2 ‖(1−m)⊙w‖²``).
    """

    def __init__(self, lin: nn.Linear, n: int, m: int, mode: str = "pgf"):
        super().__init__()
        self.weight, self.bias, self.n, self.m, self.beta, self.mode = lin.weight, lin.bias, n, m, 1.0, mode

    def mask(self):
        return nm_mask(self.weight, self.n, self.m).to(self.weight.dtype)

    def forward(self, x):
        mask = self.mask()
        if self.mode == "srste" and self.training:
            w = self.weight + (self.weight * mask - self.weight).detach()
        elif self.mode == "srste":
            w = self.weight * mask
        else:
            w = self.weight * (mask + (1 - mask) * self.beta)
        return nn.functional.linear(x, w, self.bias)


def _wrap_nm(model: nn.Module, n: int, m: int, mode: str) -> dict[str, _PGFLinear]:
    """Replace, in place, every ``nn.Linear`` of :func:`prunable`'s pool by a :class:`_PGFLinear` sharing its
    parameters, found by its module path at any depth of nesting (not only an ``nn.Sequential``'s integer
    names); returns them by path.  A pool weight that is not an ``nn.Linear``'s raises ``TypeError``."""
    wrapped = {}
    for k in prunable(model):
        path, _, leaf = k.rpartition(".")
        lin = model.get_submodule(path)
        if leaf != "weight" or not isinstance(lin, nn.Linear):
            raise TypeError(f"N:M training wraps nn.Linear weights only; {k!r} is a {type(lin).__name__} parameter")
        owner, _, attr = path.rpartition(".")
        wrapped[path] = _PGFLinear(lin, n, m, mode)
        setattr(model.get_submodule(owner) if owner else model, attr, wrapped[path])
    return wrapped


def _nm_train(config: "NMTrainConfig", data: dict, seed: int, mode: str) -> float:
    """Fine-tune the parent to N:M with progressive gradient flow (``pgf``) or SR-STE; test accuracy."""
    model, _ = train_parent(config.parent, seed)
    wrapped = _wrap_nm(model, config.n, config.m, mode)
    t_end = max(1, int(config.decay_fraction * config.steps))

    def cb(_, step):
        for w in wrapped.values():
            w.beta = max(0.0, 1.0 - step / t_end)

    penalty = None
    if mode == "srste":
        def penalty(mdl, step):
            return 0.5 * config.srste_lambda * sum(((1 - w.mask().detach()) * w.weight).pow(2).sum()
                                                   for w in wrapped.values())
    fit(model, data["x_train"], data["y_train"], steps=config.steps, lr=config.lr,
        batch_size=config.parent.batch_size, seed=seed + 1, callback=cb if mode == "pgf" else None, every=1,
        penalty=penalty)
    for w in wrapped.values():
        w.beta = 0.0
    return evaluate(model, data)


def run_nm_training(config: NMTrainConfig, seed: int = 0) -> dict:
    """Test accuracy after N:M fine-tuning: one shot, a fixed mask, progressive gradient flow and SR-STE
    (``{"n", "m", "oneshot", "fixed", "pgf", "srste"}``)."""
    if not isinstance(config, NMTrainConfig):
        raise TypeError(f"config must be an NMTrainConfig; got {type(config).__name__}")
    seed_everything(seed)
    data = _data(seed, config.parent.device)
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
    # progressive gradient flow: pruned weights scaled by β(t) → 0, mask recomputed every step; SR-STE baseline
    pgf = _nm_train(config, data, seed, "pgf")
    srste = _nm_train(config, data, seed, "srste")
    return {"n": n, "m": m, "oneshot": oneshot, "fixed": fixed, "pgf": pgf, "srste": srste}


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
    n_seqs = check_int(n_seqs, "n_seqs", 1)
    length = check_int(length, "length", 2)
    vocab = check_int(vocab, "vocab", 3)
    seed = check_int(seed, "seed", 0)
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


def _check_curve_grid(sparsities) -> None:
    """A sparsity grid for a knee: starts at 0 (the dense reference), increases strictly, stays below 1,
    and has at least 4 points (the hinge fit)."""
    s = np.asarray(sparsities, dtype=float)
    if s.ndim != 1 or s.size < 4 or s[0] != 0.0 or (np.diff(s) <= 0).any() or s[-1] >= 1:
        raise ValueError("sparsities must start at 0, increase strictly, stay below 1 and have at least 4 points; "
                         f"got {sparsities}")


@dataclass(frozen=True)
class TransformerConfig:
    """A decoder-only :class:`~sparsebook.models.TinyTransformer` (pre-LayerNorm, causal) trained on
    :func:`sort_task` from scratch, then pruned one-shot over :func:`transformer_pool`."""

    length: int = 8          # numbers to sort (sequence 2·length tokens)
    vocab: int = 16          # values 0..vocab-2 and the separator
    d_model: int = 32
    ff: int = 128
    layers: int = 2
    heads: int = 2
    steps: int = 400
    lr: float = 3e-3
    batch_size: int = 64
    n_train: int = 20000     # training sequences (fit cycles over them)
    n_test: int = 500        # held-out sequences (length scored tokens each)
    sparsities: tuple = field(default_factory=lambda: _grid("ci"))
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci") -> "TransformerConfig":
        if check_scale(scale) == "ci":
            return cls()
        # full: the same task, twice as wide (d_model 64, FFN 256, 4 heads), batches of 256 (4x), 3x the
        # steps (1,200), fresh training sequences and 4x the held-out ones (16,000 scored tokens), on the GPU
        return cls(d_model=64, ff=256, layers=2, heads=4, steps=1200, batch_size=256, n_train=100000,
                   n_test=2000, sparsities=_grid(scale), device=full_device())

    def __post_init__(self):
        for name, low in (("length", 2), ("vocab", 3), ("d_model", 1), ("ff", 1), ("layers", 1), ("heads", 1),
                          ("steps", 1), ("batch_size", 1), ("n_train", 1), ("n_test", 1)):
            check_int(getattr(self, name), name, low)
        check_real(self.lr, "lr", 0, None, low_open=True)
        _check_device(self.device)
        if self.d_model % self.heads:
            raise ValueError(f"d_model must be divisible by heads; got d_model={self.d_model}, heads={self.heads}")
        _check_curve_grid(self.sparsities)

    def model(self) -> TinyTransformer:
        """A freshly initialised model (seed first) on ``device`` (drawn on the CPU, then moved):
        tokens (B, 2·length) → logits (B, 2·length, vocab)."""
        return TinyTransformer(self.vocab, 2 * self.length, self.d_model, self.ff, self.layers,
                               heads=self.heads).to(self.device)


@functools.lru_cache(maxsize=4)
def _transformer_data(cfg: TransformerConfig, seed: int) -> dict:
    x_tr, y_tr = sort_task(cfg.n_train, cfg.length, cfg.vocab, seed=2 * seed + 1)
    x_te, y_te = sort_task(cfg.n_test, cfg.length, cfg.vocab, seed=2 * seed + 2)
    return {k: v.to(cfg.device) for k, v in {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}.items()}


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
    seed = check_int(seed, "seed", 0)
    seed_everything(seed)
    state, train_loss = _train_transformer_cached(config, seed)
    model = config.model()
    model.load_state_dict(state)
    model.eval()
    data = _transformer_data(config, seed)
    s = np.array(config.sparsities, dtype=float)
    ws = transformer_pool(model)
    saved = {k: p.detach().clone() for k, p in ws.items()}
    acc, loss = [], []
    y = data["y_test"]
    scored = y.reshape(-1) != -100
    with torch.no_grad():
        for sp in s:
            masks = magnitude_mask(saved, float(sp))
            for k, p in ws.items():
                p.copy_(saved[k] * masks[k])
            logits = model(data["x_test"])
            loss.append(float(_token_ce(logits, y)))
            acc.append(float((logits.argmax(-1).reshape(-1)[scored] == y.reshape(-1)[scored]).double().mean()))
        for k, p in ws.items():
            p.copy_(saved[k])
    acc, loss = np.array(acc), np.array(loss)
    return {"sparsities": s, "acc": acc, "loss": loss, "dense_acc": float(acc[0]),
            "knees": {m: essential_sparsity_point(s, acc, method=m) for m in KNEE_METHODS},
            "sharpness": knee_sharpness(s, acc),
            "plateau": essential_sparsity_point(s, acc, method="delta", delta=0.01),
            "n_pool": sum(p.numel() for p in transformer_pool(model).values()),
            "n_params": sum(p.numel() for p in model.parameters()), "train_loss": train_loss,
            **_magnitudes(saved, essential_sparsity_point(s, acc), _initial_pool(config.model, transformer_pool, seed))}


@dataclass(frozen=True)
class TransformerFinetuneConfig:
    """The authors' BERT/ViT protocol on the Transformer of :class:`TransformerConfig` (the same trained
    model): prune :func:`transformer_pool` one-shot by global magnitude at each of ``sparsities``, then
    fine-tune ``steps`` Adam steps on the task with the mask fixed (the gradients of pruned weights are
    zeroed, so they stay exactly zero)."""

    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    #: a subset of the chapter's grid: every grid point up to 0.8 (where the plateau is read), then 0.87 and 0.94
    sparsities: tuple = (0.0, 0.2, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.87, 0.94)
    steps: int = 20
    lr: float = 1e-3

    @classmethod
    def preset(cls, scale: str = "ci") -> "TransformerFinetuneConfig":
        # full: the same sparsities, 3x the steps (60) with the full Transformer's batches of 256
        full = check_scale(scale) == "full"
        return cls(transformer=TransformerConfig.preset(scale), steps=60 if full else cls.steps)

    def __post_init__(self):
        if not isinstance(self.transformer, TransformerConfig):
            raise TypeError(f"transformer must be a TransformerConfig; got {type(self.transformer).__name__}")
        check_int(self.steps, "steps", 1)
        check_real(self.lr, "lr", 0, None, low_open=True)
        _check_curve_grid(self.sparsities)


def run_transformer_finetune(config: TransformerFinetuneConfig, seed: int = 0) -> dict:
    """One-shot pruning of the trained Transformer, then fine-tuning with the mask fixed, at every sparsity.

    Each sparsity starts from the same trained model (:func:`run_transformer_oneshot`'s, cached), prunes
    the attention + FFN pool to it, scores the pruned model (no fine-tuning: the Vicuna-style curve on the
    same masks), fine-tunes it ``steps`` steps (batch order of seed ``seed + 7``, the same at every sparsity;
    the dense point is fine-tuned too, so the reference moves with the protocol) and scores it again.

    Returns ``{"sparsities" (S,), "acc" (S,) (fine-tuned), "acc_oneshot" (S,) (same masks, no fine-tuning),
    "dense_acc" (fine-tuned dense), "knees", "knees_oneshot": {method: sparsity}, "plateau",
    "plateau_oneshot" (delta knee at 1 point, each against its own dense point), "sharpness",
    "masked_zero" (every pruned weight exactly zero after fine-tuning, at every sparsity),
    "sparsity_exact" (the pool's zeros number exactly the pruned count)}``.
    """
    if not isinstance(config, TransformerFinetuneConfig):
        raise TypeError(f"config must be a TransformerFinetuneConfig; got {type(config).__name__}")
    seed = check_int(seed, "seed", 0)
    seed_everything(seed)
    tc = config.transformer
    state, _ = _train_transformer_cached(tc, seed)
    data = _transformer_data(tc, seed)
    s = np.array(config.sparsities, dtype=float)
    acc, acc0, zero_ok, exact = [], [], True, True
    for sp in s:
        model = tc.model()
        model.load_state_dict(state)
        ws = transformer_pool(model)
        masks = magnitude_mask({k: v.detach() for k, v in ws.items()}, float(sp))
        apply_masks(model, masks)
        acc0.append(evaluate(model, data))
        _train_sparse(model, data, steps=config.steps, lr=config.lr, batch_size=tc.batch_size, seed=seed + 7,
                      names=list(ws), masks=masks, loss_fn=_token_ce)
        zero_ok &= all(bool((p.detach()[~masks[k]] == 0).all()) for k, p in ws.items())
        n = sum(p.numel() for p in ws.values())
        exact &= sum(int((p.detach() == 0).sum()) for p in ws.values()) >= n_pruned(float(sp), n)
        acc.append(evaluate(model, data))
    acc, acc0 = np.array(acc), np.array(acc0)
    delta = functools.partial(essential_sparsity_point, s, method="delta", delta=0.01)
    return {"sparsities": s, "acc": acc, "acc_oneshot": acc0, "dense_acc": float(acc[0]),
            "knees": {m: essential_sparsity_point(s, acc, method=m) for m in KNEE_METHODS},
            "knees_oneshot": {m: essential_sparsity_point(s, acc0, method=m) for m in KNEE_METHODS},
            "plateau": delta(acc), "plateau_oneshot": delta(acc0), "sharpness": knee_sharpness(s, acc),
            "masked_zero": bool(zero_ok), "sparsity_exact": bool(exact)}


@dataclass(frozen=True)
class TransformerIMPConfig:
    """Iterative magnitude pruning of the trained Transformer's attention + FFN pool (rewinding to the trained
    model), with the fine-tuning protocol of :class:`TransformerFinetuneConfig` (steps, learning rate, batch
    order), to the sparsities ``sparsities`` (a subset of its grid), so that each IMP mask pairs seed by seed
    with the one-shot mask of :func:`run_transformer_finetune` at the same sparsity."""

    finetune: TransformerFinetuneConfig = field(default_factory=TransformerFinetuneConfig)
    sparsities: tuple = (0.4, 0.6, 0.8)

    @classmethod
    def preset(cls, scale: str = "ci") -> "TransformerIMPConfig":
        return cls(finetune=TransformerFinetuneConfig.preset(scale))

    def __post_init__(self):
        if not isinstance(self.finetune, TransformerFinetuneConfig):
            raise TypeError(f"finetune must be a TransformerFinetuneConfig; got {type(self.finetune).__name__}")
        grid = [round(float(v), 9) for v in self.finetune.sparsities]
        s = [round(float(v), 9) for v in self.sparsities]
        if not s or any(v not in grid or v <= 0 for v in s) or s != sorted(set(s)):
            raise ValueError(f"sparsities must be non-empty, increase strictly and be nonzero values of "
                             f"finetune.sparsities {tuple(grid)}; got {self.sparsities}")


def run_transformer_imp(config: TransformerIMPConfig, seed: int = 0) -> dict:
    """Iterative magnitude pruning of the Transformer (:func:`run_imp`'s rounds on :func:`transformer_pool`,
    rewinding to the trained model of :func:`run_transformer_oneshot`, fine-tuning as
    :func:`run_transformer_finetune`).  Returns :func:`run_imp`'s dictionary; the one-shot accuracies with
    the same protocol are :func:`run_transformer_finetune`'s ``acc``."""
    if not isinstance(config, TransformerIMPConfig):
        raise TypeError(f"config must be a TransformerIMPConfig; got {type(config).__name__}")
    seed = check_int(seed, "seed", 0)
    seed_everything(seed)
    ft, tc = config.finetune, config.finetune.transformer
    state, _ = _train_transformer_cached(tc, seed)
    data = _transformer_data(tc, seed)

    def load():
        model = tc.model()
        model.load_state_dict(state)
        return model

    def finetune(model, masks):
        _train_sparse(model, data, steps=ft.steps, lr=ft.lr, batch_size=tc.batch_size, seed=seed + 7,
                      names=list(masks), masks=masks, loss_fn=_token_ce)

    return _imp_rounds(load, transformer_pool, finetune, lambda model: evaluate(model, data),
                       [float(v) for v in config.sparsities])


# ---------------------------------------------------------------------------
# Every experiment over seeds
# ---------------------------------------------------------------------------
#: Seeds behind every training-based claim at each scale.  The seeds are separate training runs (not
#: batched), so at ``full`` they count against the step budget (:data:`FULL_STEP_FACTOR`): ``full`` keeps 5
#: seeds and spends the budget on 3x longer training of wider models instead.
N_SEEDS = {"ci": 5, "full": 5}

#: The full preset's optimizer steps, summed over every training loop of every seed
#: (:func:`training_steps`), are at most this multiple of the ci preset's: these models are so small that
#: a GPU step is launch-bound and costs about the same at any width, so the full run is sized by steps.
FULL_STEP_FACTOR = 3


def training_steps(scale: str = "ci") -> dict[str, int]:
    """Optimizer steps of one seed's training loops, per experiment of :data:`PARTS`, at ``scale``.

    A dense parent is counted in each half of :func:`run_seed` that uses it (the two halves may run in
    different worker processes, each training its own copy); within a half it is trained once (cached).
    At ``ci`` the total over the 5 seeds, 44,900, is what the progress log of a ``reproduce`` run counts."""
    scale = check_scale(scale)
    parent = ParentConfig.preset(scale)
    ft, cft = FinetuneConfig.preset(scale), FinetuneConfig.preset(scale, "cnn")
    imp, cimp = IMPConfig.preset(scale), IMPConfig.preset(scale, "cnn")
    tc, tft, timp = (TransformerConfig.preset(scale), TransformerFinetuneConfig.preset(scale),
                     TransformerIMPConfig.preset(scale))
    obj, amt, em = ObjectiveConfig.preset(scale), DataAmountConfig.preset(scale), EmergenceConfig.preset(scale)
    rnd, gr, jo = RandomPruningConfig.preset(scale), GradualConfig.preset(scale), JourneyConfig.preset(scale)
    so, nmc = SoupConfig.preset(scale), NMTrainConfig.preset(scale)
    rnd_dense = [ParentConfig(width=int(w), depth=rnd.depth, steps=rnd.steps, lr=rnd.lr, batch_size=rnd.batch_size,
                              device=rnd.device) for w in rnd.widths]
    return {
        "oneshot": parent.steps,  # half "a"'s supervised parent (shared with finetune, objectives, cnn_ft's MLP twin)
        "cnn": ArchitectureConfig.preset(scale).parent.steps,
        "cnn_ft": len(cft.sparsities) * cft.steps,  # the CNN parent is cnn's (cached)
        "cnn_imp": (len(cimp.targets()) + 1) * cimp.finetune.steps,
        "finetune": len(ft.sparsities) * ft.steps,
        "transformer": tc.steps,
        "transformer_ft": len(tft.sparsities) * tft.steps,
        "transformer_imp": (len(timp.sparsities) + 1) * timp.finetune.steps,
        "objectives": obj.masked.steps + (obj.supervised != parent) * obj.supervised.steps,
        "emergence": em.parent.steps,
        # half "b": its own supervised parent (fraction 1), then the smaller fractions
        "amount": parent.steps + sum(amt.parent.steps for f in amt.fractions if f < 1),
        "imp": (len(imp.targets()) + 1) * imp.finetune.steps,
        "random": sum(rnd.steps * (2 + (d != parent)) for d in rnd_dense),
        "gradual": len(gr.sparsities) * (2 * gr.steps + gr.parent.steps + gr.steps),
        "journey": len(jo.windows) * jo.steps,
        "soups": so.n_ingredients * so.steps,
        "nm": 3 * nmc.steps,
    }


#: The experiments in the two halves of :func:`run_seed` (about equal cost at ``ci``).
PARTS = {"a": ("oneshot", "cnn", "cnn_ft", "cnn_imp", "finetune", "transformer", "transformer_ft",
               "transformer_imp", "objectives", "emergence"),
         "b": ("amount", "imp", "random", "gradual", "journey", "soups", "nm")}


def _run_experiment(name: str, seed: int, scale: str) -> dict:
    if name == "transformer":
        out = run_transformer_oneshot(TransformerConfig.preset(scale), seed)
        out.pop("train_loss")
        return out
    if name in ("cnn_ft", "cnn_imp"):
        runner, cfg = (run_finetune, FinetuneConfig) if name == "cnn_ft" else (run_imp, IMPConfig)
        return runner(cfg.preset(scale, "cnn"), seed)
    runner, cfg = {"oneshot": (run_oneshot, OneShotConfig), "transformer_imp": (run_transformer_imp, TransformerIMPConfig), "cnn": (run_architecture, ArchitectureConfig),
                   "finetune": (run_finetune, FinetuneConfig), "imp": (run_imp, IMPConfig),
                   "transformer_ft": (run_transformer_finetune, TransformerFinetuneConfig), "objectives": (run_objectives, ObjectiveConfig),
                   "amount": (run_data_amount, DataAmountConfig), "emergence": (run_emergence, EmergenceConfig),
                   "random": (run_random_pruning, RandomPruningConfig), "gradual": (run_gradual, GradualConfig),
                   "journey": (run_journey, JourneyConfig), "soups": (run_soups, SoupConfig),
                   "nm": (run_nm_training, NMTrainConfig)}[name]
    return runner(cfg.preset(scale), seed)


def run_seed(seed: int, scale: str = "ci", part: str | None = None) -> dict:
    """Every experiment of the chapter for one ``seed`` at ``scale`` (or only half of them: ``part`` "a" or
    "b", see :data:`PARTS`), in one process (the dense parent is trained once per process and shared).
    Returns ``{experiment: runner output}``."""
    seed = check_int(seed, "seed", 0)
    scale = check_scale(scale)
    if part is not None and part not in PARTS:
        raise ValueError(f"part must be None, 'a' or 'b'; got {part!r}")
    names = PARTS[part] if part else PARTS["a"] + PARTS["b"]
    return {name: _run_experiment(name, seed, scale) for name in names}


def _run_task(task: int, scale: str, seed0: int) -> dict:
    """Task ``2k`` is part "a" of seed ``seed0 + k``, task ``2k + 1`` its part "b" (for :func:`over_seeds`,
    which hands the task number to the worker; each half seeds itself from the real seed)."""
    return run_seed(seed0 + task // 2, scale, "ab"[task % 2])


def run_seeds(scale: str = "ci", seed: int = 0, n_seeds: int | None = None, workers: int | None = None) -> list[dict]:
    """:func:`run_seed` for seeds ``seed, seed+1, …`` (``N_SEEDS[scale]`` of them unless ``n_seeds``),
    on :func:`~sparsebook.seeding.over_seeds`'s pool of single-thread workers (results do not depend
    on ``workers``)."""
    from sparsebook.seeding import over_seeds

    scale = check_scale(scale)
    seed = check_int(seed, "seed", 0)
    k = N_SEEDS[scale] if n_seeds is None else check_int(n_seeds, "n_seeds", 1)
    # two halves per seed: 2K tasks share the workers more evenly than K (5 seeds on 2 workers); the
    # longer halves ("b") are queued first, so that no long task starts last (results do not depend on order)
    order = [2 * j + 1 for j in range(k)] + [2 * j for j in range(k)]
    done = dict(zip(order, over_seeds(_run_task, order, scale, seed, workers=workers)))
    return [{**done[2 * j], **done[2 * j + 1]} for j in range(k)]


def collect(runs: Sequence[dict], *path) -> np.ndarray:
    """The value at ``path`` in every seed's result, stacked: ``collect(runs, "oneshot", "sharpness", "ratio")``
    is an array of shape ``[K]``; a curve gives ``[K, S]``.  A row index may appear in the path
    (``collect(runs, "random", "rows", 0, "erk")``)."""
    if not isinstance(runs, (list, tuple)) or not runs:
        raise ValueError("runs must be a non-empty list of run_seed results")
    vals = []
    for r in runs:
        v = r
        for key in path:
            try:
                v = v[key]
            except (KeyError, IndexError, TypeError):
                raise KeyError(f"path {path!r} not found in a run (at {key!r})") from None
        vals.append(np.asarray(v, dtype=float))
    return np.stack(vals)
