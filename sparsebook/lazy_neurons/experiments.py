"""Lazy neurons, experiments: the activation recorder, data sources, the training loop, the frozen
configs with ``preset(scale)`` and the runners ``run_<experiment>(config, seed)``."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sparsebook.lazy_neurons.kernels import (cats_threshold, cett_threshold, chess_thresholds, core_neurons_batch,
                                             dead_fraction, deft_density_loss, expected_calibration_error, fatrelu,
                                             firing_frequency, jaccard_rows, nonzero_fraction, prosparse_lambda,
                                             quantize_ste, sparse_down, temporal_deltas, delta_density, lora_linear)
from sparsebook.models import Activation, Block, TinyTransformer
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import make_optimizer, run_steps
from sparsebook.validate import check_int, check_real


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------


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
    steps = check_int(steps, "steps", 1)
    opt = make_optimizer(model.parameters(), "adam", lr)

    def _probe(s):
        if probe is not None:
            model.eval()
            with torch.no_grad():
                probe(model, s)
            model.train()

    def _on_step(s):
        if every and (s % every == 0 or s == steps):
            _probe(s)

    rec = ActivationRecorder(model, detach=False) if penalty is not None else None  # keep the graph

    def objective(s):
        x, y = batch(s)
        if rec is not None:
            with rec:
                loss = _ce(model(x), y)
            return loss + penalty(rec.activations, s), loss
        loss = _ce(model(x), y)
        return loss, loss

    _probe(0)
    model.train()
    losses = run_steps(opt, objective, steps=steps, on_step=_on_step)
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
    """Train a tiny Transformer on a Markov source and an MLP on a noisy teacher; record sparsity over training.

    ``full``: a 4-block d=128 Transformer (ff 512) on sequences of 32 tokens, batches of 128, twice ci's steps
    (600; MLP 800) and 5x the held-out rows; sized by optimizer steps (GPU steps are launch-bound)"""

    vocab: int = 16
    seq_len: int = 16
    d_model: int = 32
    ff: int = 128
    layers: int = 2
    tf_batch: int = 32
    tf_steps: int = 300
    tf_lr: float = 1e-2
    mlp_width: int = 256
    mlp_steps: int = 400
    mlp_lr: float = 1e-2
    mlp_batch: int = 128
    noise: float = 0.5
    every: int = 50
    eval_rows: int = 2000
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "EmergenceConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(d_model=128, ff=512, layers=4, tf_batch=128, tf_steps=600, seq_len=32, mlp_width=1024,
                   mlp_steps=800, eval_rows=10000, every=100, tf_lr=3e-3, device=_auto_device())


def _auto_device() -> str:
    """"cuda" when a GPU is present, else "cpu" (used by the full-scale presets only).  Deterministic
    cuBLAS (``CUBLAS_WORKSPACE_CONFIG``) is set by :func:`sparsebook.seeding.seed_everything`, which
    every runner calls before its first CUDA operation."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=16)
def _transformer_fit(cfg: EmergenceConfig, seed: int, activation: str = "relu", record: bool = True,
                     ppl_every: int = 0, ppl_rows: int = 64, p: float = 1.0):
    """Train once per arguments (cached) and return ``(state_dict, trace, losses)`` on the CPU.

    ``trace``: nonzero fractions on the latest training batch and on held-out data every ``cfg.every``
    steps (``record``), and Sparsing Law's PPL-``p``% sparsity every ``ppl_every`` steps."""
    seed_everything(seed)
    dev = torch.device(cfg.device)
    src = MarkovSource(cfg.vocab, seed=seed)
    rng = np.random.default_rng(seed)
    model = TinyTransformer(cfg.vocab, cfg.seq_len, cfg.d_model, cfg.ff, cfg.layers, activation=activation).to(dev)
    held_x, held_y = _held_out(cfg, seed, src, dev)
    trace = {"step": [], "train": [], "held_out": [], "dead": [], "ppl_step": [], "ppl_sparsity": []}
    last = {}

    def batch(s):
        x, y = src.sample(cfg.tf_batch, cfg.seq_len, rng)
        last["x"] = x.to(dev)
        return last["x"], y.to(dev)

    def probe(m, s):
        if record and (s % cfg.every == 0 or s == cfg.tf_steps):
            held = record_activations(m, held_x)
            trace["step"].append(s)
            trace["held_out"].append(nonzero_fraction(held))
            trace["dead"].append(dead_fraction(held))
            trace["train"].append(nonzero_fraction(record_activations(m, last.get("x", held_x))))
        if ppl_every and s > 0 and (s % ppl_every == 0 or s == cfg.tf_steps):
            trace["ppl_step"].append(s)
            trace["ppl_sparsity"].append(ppl_p_sparsity(m, held_x[:ppl_rows], held_y[:ppl_rows], p)["sparsity"])

    every = math.gcd(cfg.every if record else 0, ppl_every) or (cfg.every if record else ppl_every)
    losses = train(model, batch, steps=cfg.tf_steps, lr=cfg.tf_lr, probe=probe if every else None, every=every)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return state, trace, losses


def _held_out(cfg: EmergenceConfig, seed: int, src: "MarkovSource", dev):
    hx, hy = src.sample(max(cfg.eval_rows // cfg.seq_len, 8), cfg.seq_len, np.random.default_rng(seed + 999))
    return hx.to(dev), hy.to(dev)


def _transformer_run(cfg: EmergenceConfig, seed: int, activation: str = "relu", record: bool = True, **kw):
    """A FRESH model (from the cached trained weights, so callers may modify it) and
    ``(model, source, (held_x, held_y), losses, trace)``; model and data live on ``cfg.device``."""
    state, trace, losses = _transformer_fit(cfg, seed, activation, record, **kw)
    dev = torch.device(cfg.device)
    model = TinyTransformer(cfg.vocab, cfg.seq_len, cfg.d_model, cfg.ff, cfg.layers, activation=activation)
    model.load_state_dict(state)
    model = model.to(dev).eval()
    src = MarkovSource(cfg.vocab, seed=seed)
    return model, src, _held_out(cfg, seed, src, dev), losses, trace


def run_emergence(cfg: EmergenceConfig, seed: int = 0) -> dict:
    """Sparsity over training from a dense start: Transformer (Markov source) and 2-layer MLP (noisy teacher).

    Returns per-layer traces of the nonzero fraction on training batches and held-out data,
    and the final held-out nonzero and dead fractions.
    """
    model, src, (hx, hy), losses, trace = _transformer_run(cfg, seed)
    ev = evaluate(model, hx, hy)
    held = record_activations(model, hx)
    out = {"transformer": {"steps": np.array(trace["step"]),
                           "tokens_per_step": cfg.tf_batch * cfg.seq_len,
                           "train": {k: np.array([d[k] for d in trace["train"]]) for k in trace["train"][0]},
                           "held_out": {k: np.array([d[k] for d in trace["held_out"]]) for k in trace["held_out"][0]},
                           "dead": {k: np.array([d[k] for d in trace["dead"]]) for k in trace["dead"][0]},
                           "firing": {k: firing_frequency(v).cpu().numpy() for k, v in held.items()},
                           "loss": losses, "entropy": src.entropy(), "final": ev}}
    out["mlp"] = mlp_emergence(cfg.mlp_width, cfg.mlp_steps, cfg.mlp_lr, seed, noise=cfg.noise, batch=cfg.mlp_batch,
                               every=cfg.every, eval_rows=cfg.eval_rows, device=cfg.device)
    return out


def mlp_emergence(width: int, steps: int, lr: float, seed: int = 0, *, noise: float = 0.5, batch: int = 128,
                  every: int = 50, eval_rows: int = 2000, device: str = "cpu") -> dict:
    """A 2-layer ReLU :class:`MLP` of ``width`` hidden units trained on the noisy teacher (label noise
    ``noise``, fresh batches of ``batch``) with Adam at ``lr`` for ``steps``; its fraction nonzero on
    held-out data and on the latest training batch every ``every`` steps (the MLP half of
    :func:`run_emergence`, and the try-your-own cell's model).

    The model and its batches live on ``device``; the data are drawn on the CPU (same numbers on any device).
    Returns ``{"steps" [p], "train" [p], "held_out" [p], "loss" [steps], "final", "firing" [width]}``.
    """
    width = check_int(width, "width", 1)
    steps = check_int(steps, "steps", 1)
    every = check_int(every, "every", 1)
    batch = check_int(batch, "batch", 1)
    check_real(lr, "lr", 0.0, math.inf, low_open=True)
    check_real(noise, "noise", 0.0, 1.0)
    seed_everything(seed)
    dev = torch.device(device)
    teacher = NoisyTeacher(noise=noise, seed=seed)
    rng = np.random.default_rng(seed)
    model = MLP(teacher.d, width, teacher.classes).to(dev)
    held_x, _ = teacher.sample(eval_rows, np.random.default_rng(seed + 999), symmetric=True)
    held_y = teacher.clean_labels(held_x).to(dev)
    held_x = held_x.to(dev)
    tr = {"step": [], "held_out": [], "train": []}
    last = {}

    def draw(s):
        last["x"] = tuple(t.to(dev) for t in teacher.sample(batch, rng))
        return last["x"]

    def probe(m, s):
        tr["step"].append(s)
        tr["held_out"].append(nonzero_fraction(record_activations(m, held_x))["acts.0"])
        tx = last["x"][0] if last else held_x
        tr["train"].append(nonzero_fraction(record_activations(m, tx))["acts.0"])

    losses = train(model, draw, steps=steps, lr=lr, probe=probe, every=every)
    ev = evaluate(model, held_x, held_y)
    return {"steps": np.array(tr["step"]), "train": np.array(tr["train"]),
           "held_out": np.array(tr["held_out"]), "loss": losses, "final": ev,
           "firing": firing_frequency(record_activations(model, held_x)["acts.0"]).cpu().numpy()}


# ---------------------------------------------------------------------------
# experiment 2: conditions (when it emerges and when it does not)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionsConfig:
    """One 2-layer ReLU MLP trained under contrasting conditions (width, steps, batch shared).

    ``full``: 1024 units, twice ci's steps (600), 5x the held-out rows"""

    width: int = 256
    steps: int = 300
    batch: int = 128
    small_lr: float = 1e-3
    large_lr: float = 1e-2
    noise: float = 0.5
    eval_rows: int = 2000
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "ConditionsConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(width=1024, steps=600, eval_rows=10000, device=_auto_device())


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
              random_labels: bool = False, device: str = "cpu"):
    """(d_in, classes, batch(step), held-out x, held-out y, train x for evaluation), tensors on ``device``
    (drawn on the CPU, so the numbers do not depend on the device)."""
    rng = np.random.default_rng(seed)
    dev = torch.device(device)

    def draw(x, y):
        x, y = x.to(dev), y.to(dev)
        return lambda s: (lambda i: (x[i], y[i]))(torch.as_tensor(rng.integers(0, len(x), batch_size)).to(dev))

    if kind == "digits":
        from sparsebook.data import digits

        d = digits(seed=seed)
        x, y = torch.as_tensor(d["x_train"]), torch.as_tensor(d["y_train"])
        if random_labels:
            y = torch.as_tensor(rng.integers(0, 10, len(y)))
        return (64, 10, draw(x, y), torch.as_tensor(d["x_test"]).to(dev), torch.as_tensor(d["y_test"]).to(dev),
                x.to(dev))
    teacher = NoisyTeacher(noise=noise, random_labels=random_labels, seed=seed)
    hx, hy = teacher.sample(eval_rows, np.random.default_rng(seed + 999), symmetric=True)
    hx, hy = hx.to(dev), hy.to(dev)
    if n_train is None:
        fresh = lambda s: tuple(t.to(dev) for t in teacher.sample(batch_size, rng))  # noqa: E731
        return teacher.d, teacher.classes, fresh, hx, hy, hx
    x, y = teacher.sample(n_train, rng)
    return teacher.d, teacher.classes, draw(x, y), hx, hy, x.to(dev)


@lru_cache(maxsize=64)
def _mlp_fit(seed, kind, lr, width, steps, batch, noise, eval_rows, bias, depth, n_train, random_labels,
             device="cpu"):
    seed_everything(seed)
    d, c, draw, hx, hy, tx = _mlp_task(kind, batch, eval_rows, seed, noise, n_train, random_labels, device)
    model = MLP(d, width, c, depth=depth, bias=bias).to(torch.device(device))
    losses = train(model, draw, steps=steps, lr=lr)
    ev = evaluate(model, hx, hy)
    tx = tx[:eval_rows]
    tr = evaluate(model, tx, torch.zeros(len(tx), dtype=torch.long, device=tx.device))
    return {"final_loss": float(np.mean(losses[-20:])), "held_out": ev, "train_nonzero": tr["nonzero"],
            "train_dead": tr["dead"]}


def _mlp_run(cfg, seed, kind, lr, *, bias=True, noise=None, width=None, depth=1, n_train=None,
             random_labels=False, steps=None) -> dict:
    """Train a ReLU :class:`MLP` on ``kind`` ("digits" or "teacher") on ``cfg.device``, evaluate on held-out data.

    Cached on the values that determine the run, so chapters that share a setting train it once.
    """
    return _mlp_fit(seed, kind, float(lr), width or cfg.width, steps or cfg.steps, cfg.batch,
                    float(cfg.noise if noise is None else noise), cfg.eval_rows, bool(bias), depth, n_train,
                    bool(random_labels), str(cfg.device))


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
    """Width and depth sweeps, and data sweeps, of ReLU MLPs on the noisy teacher (lr ``lr``).

    ``full``: widths to 1024, depths to 4 (512 wide), data sizes to 65,536, twice ci's steps (600)"""

    widths: tuple = (32, 64, 128, 256)
    depths: tuple = (1, 2, 3)
    depth_width: int = 128
    data_sizes: tuple = (256, 1024, 4096, 16384)
    width: int = 256
    steps: int = 300
    batch: int = 128
    lr: float = 1e-2
    noise: float = 0.5
    eval_rows: int = 2000
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "ScalingConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(widths=(32, 64, 128, 256, 512, 1024), depths=(1, 2, 3, 4), depth_width=512,
                   data_sizes=(256, 1024, 4096, 16384, 65536), width=1024, steps=600, eval_rows=10000,
                   device=_auto_device())


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
    :class:`EmergenceConfig`, each trained as in :func:`run_emergence`.

    ``full``: the full Transformer (ff 512, 4 blocks) with ff 128 / 512 / 2048 and 1 / 2 / 4 blocks"""

    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    ffs: tuple = (64, 128)
    depths: tuple = (1, 2)

    @classmethod
    def preset(cls, scale: str) -> "TransformerScalingConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(emergence=EmergenceConfig.preset("full"), ffs=(128, 512, 2048), depths=(1, 2, 4))


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
    a dense ReLU MLP against the same MLP with Top-k (k of ``width``) thresholding, one seed per call.

    ``full``: 1024 units with k = 64 (the ci ratio k/width = 1/16), twice ci's steps (600)"""

    width: int = 128
    k: int = 8
    steps: int = 300
    batch: int = 128
    lr: float = 1e-3
    label_noise: float = 0.4
    corruption: float = 1.0
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "TopKConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(width=1024, k=64, steps=600, device=_auto_device())


def run_topk(cfg: TopKConfig, seed: int = 0) -> dict:
    """For the dense and the Top-k model, each trained on clean and on noisy labels (one seed):
    clean test accuracy, accuracy under Gaussian input corruption (σ = ``corruption``, on
    standardized pixels), expected calibration error, and nonzero fraction.

    The seed draws the train/test split, the noisy labels, the corruption, the batch order and the
    initialization; the four models of one seed share all of them but the labels and ``k`` (paired).
    Returns ``{model: {"clean": {...}, "noisy": {...}}}`` with model in ("dense", "topk").
    """
    from sparsebook.data import digits

    if not isinstance(cfg, TopKConfig):
        raise TypeError(f"cfg must be a TopKConfig; got {type(cfg).__name__}")
    s = check_int(seed, "seed", 0)
    dev = torch.device(cfg.device)
    d = digits(seed=s)
    rng = np.random.default_rng(s)
    x, y = torch.as_tensor(d["x_train"]), torch.as_tensor(d["y_train"])
    flip = torch.as_tensor(rng.random(len(y)) < cfg.label_noise)
    y_noisy = torch.where(flip, torch.as_tensor(rng.integers(0, 10, len(y))), y)
    xt, yt = torch.as_tensor(d["x_test"]), torch.as_tensor(d["y_test"])
    xc = xt + cfg.corruption * torch.as_tensor(rng.standard_normal(tuple(xt.shape)), dtype=torch.float32)
    idx = [torch.as_tensor(rng.integers(0, len(x), cfg.batch)).to(dev) for _ in range(cfg.steps)]
    x, y, y_noisy, xt, yt, xc = (t.to(dev) for t in (x, y, y_noisy, xt, yt, xc))  # drawn on the CPU, then moved
    out = {"dense": {}, "topk": {}}
    for labels, yy in (("clean", y), ("noisy", y_noisy)):
        for name, k in (("dense", None), ("topk", cfg.k)):
            seed_everything(s)
            model = MLP(64, cfg.width, 10, k=k).to(dev)
            train(model, lambda t: (x[idx[t]], yy[idx[t]]), steps=cfg.steps, lr=cfg.lr)
            with torch.no_grad():
                p = model(xt).softmax(-1)
                out[name][labels] = {
                    "accuracy": float((p.argmax(-1) == yt).double().mean()),
                    "corrupted": float((model(xc).argmax(-1) == yt).double().mean()),
                    "ece": expected_calibration_error(p, yt),
                    "nonzero": nonzero_fraction(record_activations(model, xt))["acts.0"]}
    return out


# ---------------------------------------------------------------------------
# experiment 5: activation functions, ProSparse, CATS/CHESS, PPL-p%
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivationsConfig:
    """The Transformer of :class:`EmergenceConfig` trained with each of ``activations``; then sparsified.

    Fine-tuning (``finetune_steps`` of Adam at ``finetune_lr``) starts from the SiLU model;
    ProSparse's L1 factor rises to ``stage_lambdas[i]`` by step ``stage_ends[i]`` (the constant-λ
    control uses ``stage_lambdas[-1]`` from the first step); FATReLU (ProSparse's step 3) then
    raises the ReLU's cut to ``fat_threshold``.  CATS and CHESS are calibrated at each of ``targets``.
    The SiLU model's PPL-``p``% sparsity is traced every ``ppl_every`` training steps (Sparsing Law).

    ``full``: GELU too, twice ci's fine-tuning steps (200, stages scaled alike), PPL-p% on 256 sequences at 200,
    400 and 600 steps (the ReLU trace's checkpoints include them)"""

    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    activations: tuple = ("relu", "silu")
    finetune_steps: int = 100
    finetune_lr: float = 3e-3
    stage_ends: tuple = (25, 50, 75)
    stage_lambdas: tuple = (0.03, 0.1, 0.3)
    fat_threshold: float = 0.01
    deft_weight: float = 0.05
    targets: tuple = (0.3, 0.5, 0.7, 0.9)
    tau: float = 0.01
    p: float = 1.0
    ppl_rows: int = 64
    ppl_every: int = 100

    @classmethod
    def preset(cls, scale: str) -> "ActivationsConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(emergence=EmergenceConfig.preset("full"), activations=("relu", "gelu", "silu"),
                   finetune_steps=200, finetune_lr=1e-3, stage_ends=(50, 100, 150), ppl_rows=256,
                   ppl_every=200)


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


def ppl_p_sparsity(model: nn.Module, x, y, p: float = 1.0, iters: int = 8, cett_iters: int = 12) -> dict:
    """Sparsing Law's PPL-p% sparsity: the sparsity reached when perplexity may rise by at most ``p`` %.

    One CETT level ``c`` is shared by all layers; each layer's threshold ``t`` solves
    ``CETT(t) = c`` on the dense activations of ``x``; ``c`` is the largest level (bisection)
    with ``exp(L_sparse − L_dense) ≤ 1 + p/100``.  Sparsity = mean over layers of the fraction
    of entries cut (exact zeros included).  Returns ``{"sparsity", "cett", "loss_ratio"}``.
    """
    p = check_real(p, "p", 0.0, math.inf, low_open=True)
    model.eval()
    sites = mlp_sites(model)
    with torch.no_grad():
        acts = record_activations(model, x)
        dense = float(_ce(model(x), y))
    budget = math.log1p(p / 100)

    def at(c):
        th = {n: cett_threshold(acts[n], d.weight, c, cett_iters) for n, (_, d) in sites.items()}
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


def _fat_hooks(model: nn.Module, threshold: float) -> list:
    """Forward hooks that turn every ReLU :class:`Activation` into FATReLU(``threshold``)."""
    return [m.register_forward_hook(lambda mod, i, o: fatrelu(i[0], threshold))
            for m in model.modules() if isinstance(m, Activation)]


def run_activations(cfg: ActivationsConfig, seed: int = 0) -> dict:
    """Activation functions and the methods that use their sparsity, one seed.

    - ``models``: for each of ``cfg.activations``, held-out loss, nonzero, dead, fraction above ``tau``
      and PPL-p% sparsity; ``ppl_trace``: the SiLU model's PPL-p% sparsity against training steps.
    - ``finetune``: from the SiLU model, equally long fine-tunings: SiLU continued; ReLU substituted;
      ReLU + ProSparse's progressive L1; ReLU + constant L1 (the final λ from the first step);
      ReLU + DEFT's density loss; and ``ProSparse + FATReLU`` (the progressive model with its
      ReLU cut raised to ``fat_threshold``, no further training).
    - ``thresholds``: CATS (one cut per layer) and CHESS (one importance cut per layer, a threshold
      per channel) on the SiLU model, calibrated on one batch, evaluated on held-out data.
    """
    if not isinstance(cfg, ActivationsConfig):
        raise TypeError(f"cfg must be an ActivationsConfig; got {type(cfg).__name__}")
    seed = check_int(seed, "seed", 0)
    ec = cfg.emergence
    out = {"models": {}}
    base = None
    for act in cfg.activations:
        kw = {"ppl_every": cfg.ppl_every, "ppl_rows": cfg.ppl_rows, "p": cfg.p} if act == "silu" else {}
        # the ReLU model is the one of run_emergence (cached)
        model, src, (hx, hy), _, trace = _transformer_run(ec, seed, act, act == "relu", **kw)
        ev = evaluate(model, hx, hy)
        acts = record_activations(model, hx)
        out["models"][act] = {"loss": ev["loss"], "nonzero": _mean(ev["nonzero"]), "dead": _mean(ev["dead"]),
                              "above_tau": _mean(nonzero_fraction(acts, tau=cfg.tau)),
                              "ppl_p": ppl_p_sparsity(model, hx[:cfg.ppl_rows], hy[:cfg.ppl_rows], cfg.p)["sparsity"]}
        if act == "silu":
            base = model
            out["ppl_trace"] = {"step": np.array(trace["ppl_step"]), "sparsity": np.array(trace["ppl_sparsity"]),
                                "tokens_per_step": ec.tf_batch * ec.seq_len}
    if base is None:
        raise ValueError(f"cfg.activations must include 'silu' (the base of the fine-tunings); got {cfg.activations}")

    dev = torch.device(ec.device)
    rng = np.random.default_rng(seed + 1)
    batches = [tuple(t.to(dev) for t in src.sample(ec.tf_batch, ec.seq_len, rng)) for _ in range(cfg.finetune_steps)]

    def l1(schedule):
        return lambda acts, s: schedule(s) * sum(a.abs().mean() for a in acts.values())

    progressive = l1(lambda s: prosparse_lambda(s, cfg.stage_ends, cfg.stage_lambdas))
    constant = l1(lambda s: cfg.stage_lambdas[-1])
    deft = lambda acts, s: cfg.deft_weight * sum(deft_density_loss(a) for a in acts.values())  # noqa: E731
    ft = {}
    for label, act, pen in (("SiLU, continued", "silu", None), ("ReLU substituted", "relu", None),
                            ("ReLU + ProSparse L1", "relu", progressive), ("ReLU + constant L1", "relu", constant),
                            ("ReLU + DEFT density", "relu", deft)):
        seed_everything(seed)
        m = TinyTransformer(ec.vocab, ec.seq_len, ec.d_model, ec.ff, ec.layers, activation="silu").to(dev)
        m.load_state_dict(base.state_dict())
        _set_activation(m, name=act)
        train(m, lambda s: batches[s], steps=cfg.finetune_steps, lr=cfg.finetune_lr, penalty=pen)
        ev = evaluate(m, hx, hy)
        ft[label] = {"loss": ev["loss"], "nonzero": _mean(ev["nonzero"]), "dead": _mean(ev["dead"])}
        if label == "ReLU + ProSparse L1":
            handles = _fat_hooks(m, cfg.fat_threshold)
            try:
                ev = evaluate(m, hx, hy)
            finally:
                for h in handles:
                    h.remove()
            ft["ProSparse + FATReLU"] = {"loss": ev["loss"], "nonzero": _mean(ev["nonzero"]), "dead": _mean(ev["dead"])}
    out["finetune"] = ft

    # CATS (one threshold per layer) and CHESS (one importance cutoff per layer), calibrated on one batch
    cal_x, _ = src.sample(ec.tf_batch, ec.seq_len, np.random.default_rng(seed + 555))
    cal = record_activations(base, cal_x.to(dev))
    sites = mlp_sites(base)
    rows = []
    for s in cfg.targets:
        row = {"target": s}
        for label in ("cats", "chess"):
            m = _transformer_run(ec, seed, "silu", False, **{"ppl_every": cfg.ppl_every, "ppl_rows": cfg.ppl_rows,
                                                              "p": cfg.p})[0]          # a fresh copy
            for n, (mod, down) in mlp_sites(m).items():
                mod.threshold = (cats_threshold(cal[n], s) if label == "cats"
                                 else chess_thresholds(cal[n], down.weight.detach().norm(dim=0), s))
            ev = evaluate(m, hx, hy)
            row[f"{label}_sparsity"] = 1 - _mean(ev["nonzero"])
            row[f"{label}_loss"] = ev["loss"]
        rows.append(row)
    del sites
    out["thresholds"] = rows
    out["entropy"] = src.entropy()
    return out


# ---------------------------------------------------------------------------
# experiment 8: the rest of the family on the trained ReLU Transformer (CoreInfer, MoHD)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyConfig:
    """Measurements on the trained ReLU Transformer of :class:`EmergenceConfig` (no extra training).

    CoreInfer: core neurons of a sequence from its first ``prefix`` tokens (α = ``alpha``,
    β = ``beta``), compared with those of its remaining tokens and of another sequence's; the loss
    on the remaining tokens when only the prefix's core neurons may fire.  MoHD: the ``top`` fraction
    of hidden (residual-stream) dimensions with the largest |h| per token, and their overlap between
    consecutive tokens.

    ``full``: the full Transformer, prefixes of 16 of its 32 tokens, 512 sequences (all at once on the device)"""

    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    prefix: int = 8
    alpha: float = 0.4
    beta: float = 0.2
    sequences: int = 64
    top: float = 0.25

    @classmethod
    def preset(cls, scale: str) -> "FamilyConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(emergence=EmergenceConfig.preset("full"), prefix=16, sequences=512)


@torch.no_grad()
def run_family(cfg: FamilyConfig, seed: int = 0) -> dict:
    """CoreInfer's stability and similarity of sentence-wise core neurons, and the cost of running only
    them; MoHD's "activation flow" in the residual stream.  One seed (the ReLU model of
    :func:`run_emergence`).

    Returns ``{"core_same", "core_other"}`` (mean Jaccard similarity of the prefix's core set with the
    same sequence's remaining tokens, and with another sequence's), ``core_density`` (fraction of
    units that are core), ``core_loss_ratio`` (exp of the loss increase on the remaining tokens),
    ``flow_consecutive`` and ``flow_other`` (mean share of a token's top dimensions also top for
    the previous token, and for the same position of another sequence), ``flow_chance`` (= ``top``).
    """
    if not isinstance(cfg, FamilyConfig):
        raise TypeError(f"cfg must be a FamilyConfig; got {type(cfg).__name__}")
    seed = check_int(seed, "seed", 0)
    ec = cfg.emergence
    if not 1 <= cfg.prefix < ec.seq_len:
        raise ValueError(f"prefix must be in [1, seq_len); got {cfg.prefix}")
    model, src, _, _, _ = _transformer_run(ec, seed)
    dev = torch.device(ec.device)
    x, y = src.sample(cfg.sequences, ec.seq_len, np.random.default_rng(seed + 4242))
    x, y = x.to(dev), y.to(dev)
    # {layer: [n, T, h]}; core neurons of all sequences at once, on the model's device
    acts = record_activations(model, x)
    names = list(acts)
    p = cfg.prefix
    core = {n: core_neurons_batch(acts[n][:, :p], cfg.alpha, cfg.beta) for n in names}     # [n, h] each
    rest = {n: core_neurons_batch(acts[n][:, p:], cfg.alpha, cfg.beta) for n in names}
    per_layer = lambda f: np.stack([f(n).cpu().numpy() for n in names])  # noqa: E731   [layers, n]
    same = np.mean(per_layer(lambda n: jaccard_rows(core[n], rest[n])))
    other = np.mean(per_layer(lambda n: jaccard_rows(core[n], rest[n].roll(-1, 0))))
    density = np.mean(per_layer(lambda n: core[n].double().mean(-1)))

    # loss on the remaining tokens with only the prefix's core neurons allowed to fire (per sequence)
    dense_logits = model(x)
    handles = []
    for n, (act, _) in mlp_sites(model).items():
        mask = core[n].to(dev)                               # [n, h]

        def hook(mod, i, o, mask=mask):
            keep = torch.ones_like(o, dtype=torch.bool)
            keep[:, p:] = mask[:, None, :]
            return o * keep
        handles.append(act.register_forward_hook(hook))
    try:
        sparse_logits = model(x)
    finally:
        for h in handles:
            h.remove()
    l_dense = float(_ce(dense_logits[:, p:], y[:, p:]))
    l_core = float(_ce(sparse_logits[:, p:], y[:, p:]))

    # MoHD: top dimensions of the residual stream after each block
    hid = {}
    hooks = [blk.register_forward_hook(lambda m, i, o, k=k: hid.__setitem__(k, o)) for k, blk in enumerate(model.blocks)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    cons, oth = [], []
    for k, h in hid.items():
        kk = max(1, int(round(cfg.top * h.shape[-1])))
        idx = h.abs().topk(kk, dim=-1).indices
        top = torch.zeros_like(h, dtype=torch.bool).scatter_(-1, idx, True)      # [n, T, d]
        cons.append(float((top[:, 1:] & top[:, :-1]).sum(-1).double().mean() / kk))
        oth.append(float((top[:, 1:] & top.roll(1, 0)[:, 1:]).sum(-1).double().mean() / kk))
    return {"core_same": float(same), "core_other": float(other), "core_density": float(density),
            "core_loss_ratio": math.exp(l_core - l_dense), "flow_consecutive": float(np.mean(cons)),
            "flow_other": float(np.mean(oth)), "flow_chance": kk / h.shape[-1]}


# ---------------------------------------------------------------------------
# experiment 8b: DEFT with LoRA on the trained ReLU Transformer
# ---------------------------------------------------------------------------


class LoRALinear(nn.Module):
    """A frozen :class:`torch.nn.Linear` with a trainable rank-``rank`` adapter ``B A`` (``B = 0`` at the
    start, ``A`` Kaiming-uniform as in LoRA); forward :func:`~sparsebook.lazy_neurons.kernels.lora_linear`."""

    def __init__(self, base: nn.Linear, rank: int, scale: float = 1.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be a torch.nn.Linear; got {type(base).__name__}")
        rank = check_int(rank, "rank", 1)
        self.base, self.scale = base, check_real(scale, "scale", 0.0, math.inf)
        for p in self.base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.a = nn.Parameter(torch.empty(rank, w.shape[1], device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.b = nn.Parameter(torch.zeros(w.shape[0], rank, device=w.device, dtype=w.dtype))

    def forward(self, x):
        return lora_linear(x, self.base.weight, self.base.bias, self.a, self.b, self.scale)


def add_lora(model: TinyTransformer, rank: int, scale: float = 1.0) -> TinyTransformer:
    """Freeze every weight of ``model`` and wrap each block's MLP ``up`` and ``down`` in :class:`LoRALinear`
    (in place; returns ``model``).  Only the adapters' ``A`` and ``B`` remain trainable."""
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"model must be a TinyTransformer; got {type(model).__name__}")
    for p in model.parameters():
        p.requires_grad_(False)
    for blk in model.blocks:
        blk.up, blk.down = LoRALinear(blk.up, rank, scale), LoRALinear(blk.down, rank, scale)
    return model


@dataclass(frozen=True)
class DeftLoraConfig:
    """DEFT with LoRA: from the trained ReLU Transformer of :class:`EmergenceConfig`, rank-``rank`` adapters
    on the MLP's up and down projections are fine-tuned ``steps`` Adam steps at ``lr`` on a new Markov
    chain (``MarkovSource(seed + task_offset)``, a shifted task), with and without DEFT's density loss
    ``weight · mean over layers of mean(a²/(a² + eps))``; both from the same adapter start and batches.

    ``full``: rank-8 adapters on the full Transformer, twice ci's steps (200)"""

    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    rank: int = 4
    scale: float = 1.0
    steps: int = 100
    lr: float = 3e-3
    weight: float = 0.05
    eps: float = 1e-7
    task_offset: int = 7_000

    @classmethod
    def preset(cls, scale: str) -> "DeftLoraConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(emergence=EmergenceConfig.preset("full"), rank=8, steps=200)


def run_deft_lora(cfg: DeftLoraConfig, seed: int = 0) -> dict:
    """One seed of DEFT with LoRA.  Returns ``{"peft": {...}, "deft": {...}}``, each with the held-out
    (new chain) ``loss`` (nats/token), ``density`` (fraction of MLP units nonzero, mean over layers)
    and ``base_changed`` (whether any frozen weight moved: must be False)."""
    if not isinstance(cfg, DeftLoraConfig):
        raise TypeError(f"cfg must be a DeftLoraConfig; got {type(cfg).__name__}")
    seed = check_int(seed, "seed", 0)
    ec = cfg.emergence
    base, _, _, _, _ = _transformer_run(ec, seed)                      # the cached ReLU model of run_emergence
    dev = torch.device(ec.device)
    task = MarkovSource(ec.vocab, seed=seed + cfg.task_offset)
    rng = np.random.default_rng(seed + cfg.task_offset)
    batches = [tuple(t.to(dev) for t in task.sample(ec.tf_batch, ec.seq_len, rng)) for _ in range(cfg.steps)]
    hx, hy = _held_out(ec, seed + cfg.task_offset, task, dev)
    frozen = {k: v.detach().cpu().clone() for k, v in base.state_dict().items()}
    out = {}
    for label, w in (("peft", 0.0), ("deft", cfg.weight)):
        seed_everything(seed)                                          # the same adapter start for both
        m = TinyTransformer(ec.vocab, ec.seq_len, ec.d_model, ec.ff, ec.layers, activation="relu").to(dev)
        m.load_state_dict(base.state_dict())
        add_lora(m, cfg.rank, cfg.scale)
        pen = None if w == 0 else (lambda acts, s: w * torch.stack([deft_density_loss(a, cfg.eps)
                                                                    for a in acts.values()]).mean())
        train(m, lambda s: batches[s], steps=cfg.steps, lr=cfg.lr, penalty=pen)
        ev = evaluate(m, hx, hy)
        now = {k.replace(".base.", "."): v.detach().cpu() for k, v in m.state_dict().items()}
        moved = any(not torch.equal(now[k], v) for k, v in frozen.items())
        out[label] = {"loss": ev["loss"], "density": _mean(ev["nonzero"]), "base_changed": bool(moved)}
    return out


def deft_lora_estimates(runs: list[dict]) -> dict:
    """Over seeds: held-out loss and density with and without DEFT; ``density_change`` (DEFT minus PEFT,
    paired) and ``loss_ratio`` (per seed, DEFT's loss over PEFT's); ``base_frozen`` (no frozen weight moved)."""
    from sparsebook.stats import from_seeds, paired_difference

    g = lambda m, k: _col(runs, lambda r: r["deft_lora"][m][k])  # noqa: E731
    out = {m: {k: from_seeds(g(m, k)) for k in ("loss", "density")} for m in ("peft", "deft")}
    out["density_change"] = paired_difference(g("deft", "density"), g("peft", "density"))
    out["loss_ratio"] = from_seeds(g("deft", "loss") / g("peft", "loss"))
    out["base_frozen"] = bool(not any(r["deft_lora"][m]["base_changed"] for r in runs for m in ("peft", "deft")))
    return out


# ---------------------------------------------------------------------------
# experiment 9: temporal sparsity (the Delta Activation Layer) on a synthetic video
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TemporalConfig:
    """Sequences of ``frames`` frames of a ring of ``pixels`` pixels: one of ``classes`` smooth templates
    (3 Gaussian bumps each, fixed per seed) drifting around the ring at a constant speed drawn from
    ``[−speed, speed]`` pixels per frame, plus Gaussian noise of s.d. ``noise``; the label is the template.

    A 2-layer ReLU MLP of ``width`` units classifies every frame (the sequence's prediction: the mean of
    its frames' logits) with its hidden activations quantized to multiples of ``step`` (straight-through),
    trained ``steps`` Adam steps at ``lr`` on ``batch`` fresh sequences, without and with the Delta
    Activation Layer's L1 penalty ``λ · mean|Δ|`` on the quantized changes, for each λ of ``penalties``;
    the claims use λ = ``penalty`` (one of them, fixed beforehand).

    ``full``: 256 units, 32-frame sequences, batches of 64, 3x ci's steps (600), 8x the held-out sequences"""

    pixels: int = 32
    classes: int = 8
    frames: int = 16
    speed: float = 0.5
    noise: float = 0.3
    width: int = 64
    steps: int = 200
    batch: int = 16
    lr: float = 1e-2
    step: float = 0.1
    penalties: tuple = (1.0, 3.0)
    penalty: float = 1.0
    eval_sequences: int = 256
    device: str = "cpu"

    def __post_init__(self):
        for name in ("pixels", "frames", "width", "steps", "batch", "eval_sequences"):
            check_int(getattr(self, name), name, 2 if name == "frames" else 1)
        check_int(self.classes, "classes", 2)
        for name in ("speed", "noise"):
            check_real(getattr(self, name), name, 0.0, math.inf)
        for lam in self.penalties:
            check_real(lam, "penalties", 0.0, math.inf, low_open=True)
        if self.penalty not in self.penalties:
            raise ValueError(f"penalty must be one of penalties {self.penalties}; got {self.penalty}")
        check_real(self.lr, "lr", 0.0, math.inf, low_open=True)
        check_real(self.step, "step", 0.0, math.inf, low_open=True)

    @classmethod
    def preset(cls, scale: str) -> "TemporalConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(width=256, frames=32, batch=64, steps=600, eval_sequences=2048,
                                               device=_auto_device())


class DriftingTemplates:
    """The synthetic video of :class:`TemporalConfig` (seeded templates; :meth:`sample` draws sequences)."""

    def __init__(self, cfg: TemporalConfig, seed: int = 0):
        r = np.random.default_rng(30_000 + seed)
        self.cfg = cfg
        self.centers = r.uniform(0, cfg.pixels, (cfg.classes, 3))
        self.amps = r.choice([-1.0, 1.0], (cfg.classes, 3)) * r.uniform(0.5, 1.5, (cfg.classes, 3))

    def sample(self, n: int, rng: np.random.Generator):
        """``(x [n, frames, pixels] float32, y [n, frames] int64)`` (the label repeated on every frame)."""
        c = self.cfg
        y = rng.integers(0, c.classes, n)
        shift = rng.uniform(0, c.pixels, n)[:, None] + rng.uniform(-c.speed, c.speed, n)[:, None] * np.arange(c.frames)
        pos = np.arange(c.pixels)[None, None, :, None] - shift[:, :, None, None] - self.centers[y][:, None, None, :]
        pos = (pos + c.pixels / 2) % c.pixels - c.pixels / 2                     # circular distance
        x = (self.amps[y][:, None, None, :] * np.exp(-0.5 * (pos / 1.5) ** 2)).sum(-1)
        x = x + c.noise * rng.standard_normal(x.shape)
        return (torch.as_tensor(x, dtype=torch.float32),
                torch.as_tensor(np.repeat(y[:, None], c.frames, 1), dtype=torch.long))


class DeltaMLP(nn.Module):
    """``x → Linear → ReLU → Q_step → Linear`` per frame, ``Q`` = :func:`quantize_ste`: the network of
    :class:`TemporalConfig`, whose quantized hidden activations feed the Delta Activation Layer."""

    def __init__(self, d_in: int, width: int, d_out: int, step: float):
        super().__init__()
        self.up, self.act, self.down = nn.Linear(d_in, width), Activation("relu"), nn.Linear(width, d_out)
        self.step = step

    def forward(self, x):
        return self.down(quantize_ste(self.act(self.up(x)), self.step))


def run_temporal(cfg: TemporalConfig, seed: int = 0) -> dict:
    """The Delta Activation Layer (Yousefzadeh & Sifalakis 2021) against the same quantized MLP trained
    without its penalty, one seed; both from the same initialization and the same batches.

    Returns ``{"baseline", λ: ...}`` for each λ of ``cfg.penalties``, each with held-out sequence ``accuracy``, ``spatial`` (fraction of
    quantized activations nonzero: the work of a sparsity-aware accelerator without delta inference)
    and ``temporal`` (fraction of quantized changes between consecutive frames nonzero: the work
    under delta inference).
    """
    if not isinstance(cfg, TemporalConfig):
        raise TypeError(f"cfg must be a TemporalConfig; got {type(cfg).__name__}")
    seed = check_int(seed, "seed", 0)
    seed_everything(seed)          # before the first CUDA operation (deterministic cuBLAS); reseeded per model below
    dev = torch.device(cfg.device)
    video = DriftingTemplates(cfg, seed)
    rng = np.random.default_rng(seed)
    batches = [video.sample(cfg.batch, rng) for _ in range(cfg.steps)]
    batches = [(x.to(dev), y.to(dev)) for x, y in batches]
    hx, hy = (t.to(dev) for t in video.sample(cfg.eval_sequences, np.random.default_rng(seed + 999)))
    def l1(lam):
        return lambda acts, s: lam * sum(temporal_deltas(a, cfg.step).abs().mean() for a in acts.values())

    out = {}
    for label, pen in (("baseline", None), *((float(lam), l1(lam)) for lam in cfg.penalties)):
        seed_everything(seed)
        model = DeltaMLP(cfg.pixels, cfg.width, cfg.classes, cfg.step).to(dev)
        train(model, lambda s: batches[s], steps=cfg.steps, lr=cfg.lr, penalty=pen)
        with torch.no_grad():
            logits = model(hx).mean(1)
            a = record_activations(model, hx)["act"]
        out[label] = {"accuracy": float((logits.argmax(-1) == hy[:, 0]).double().mean()),
                      "spatial": float((quantize_ste(a, cfg.step) != 0).double().mean()),
                      "temporal": delta_density(a, cfg.step)}
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
        side = check_int(side, "side", 1)
        patch = check_int(patch, "patch", 1, side)
        if side % patch:
            raise ValueError(f"patch must divide side; got patch {patch} and side {side}")
        self.side, self.patch = side, patch
        self.tokens = (side // patch) ** 2
        self.embed = nn.Linear(patch * patch, check_int(d, "d", 1))
        self.blocks = nn.ModuleList(
            MixerBlock(self.tokens, d, check_int(token_hidden, "token_hidden", 1),
                       check_int(channel_hidden, "channel_hidden", 1), activation)
            for _ in range(check_int(layers, "layers", 1)))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, check_int(classes, "classes", 2))

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

    ``full``: a 4-block Mixer (d 128, hidden 256 / 512), 3x ci's steps (600)"""

    patch: int = 2
    d: int = 32
    token_hidden: int = 64
    channel_hidden: int = 128
    layers: int = 2
    steps: int = 200
    batch: int = 128
    lr: float = 1e-2
    label_noise: float = 0.5
    every: int = 50
    device: str = "cpu"

    def __post_init__(self):
        check_int(self.patch, "patch", 1, 8)
        if 8 % self.patch:
            raise ValueError(f"patch must divide 8 (the digits' side); got {self.patch}")
        for name in ("d", "token_hidden", "channel_hidden", "layers", "steps", "batch", "every"):
            check_int(getattr(self, name), name, 1)
        check_real(self.lr, "lr", 0.0, math.inf, low_open=True)
        check_real(self.label_noise, "label_noise", 0.0, 1.0)

    @classmethod
    def preset(cls, scale: str) -> "MixerConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(d=128, token_hidden=256, channel_hidden=512, layers=4, steps=600, every=100,
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
    seed = check_int(seed, "seed", 0)
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
                                               repeats=50)


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
    sparsity = check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)
    a = torch.as_tensor(np.abs(rng.standard_normal((rows, h))), dtype=torch.float32)
    off = rng.permutation(h)[: int(round(sparsity * h))]
    a[:, torch.as_tensor(off, dtype=torch.long)] = 0.0
    return a


def run_speed(cfg: SpeedConfig, seed: int = 0) -> dict:
    """Wall clock of the down projection, dense ``F.linear`` vs :func:`sparse_down`, at each sparsity and size.

    Returns per size ``"d×h"``: times (seconds), measured speedup, the max abs difference of the
    results, and ``max_err_ratio``: the largest |sparse − dense| over every output divided by the float32
    rounding bound of two length-``h`` dot products, 2·γ_h·Σ_j |a_j||w_ij| with γ_h = h·u/(1 − h·u) and
    u = 2⁻²⁴ (Higham, *Accuracy and Stability of Numerical Algorithms*, eq. 3.5): a ratio ≤ 1 means
    the two differ by no more than summation order can explain, at any size (an absolute tolerance does
    not scale with h); and the ideal speedup ``1/(1 − s)``.  Timings are machine-dependent: never a claim.
    """
    rng = seed_everything(seed)
    s = np.array(cfg.sparsities)
    out = {"sparsity": s, "ideal": 1 / (1 - s), "sizes": {}}
    for d, h in cfg.sizes:
        w = torch.as_tensor(rng.standard_normal((d, h)) / math.sqrt(h), dtype=torch.float32)
        wt, b = w.T.contiguous(), torch.zeros(d)
        dense_t, sparse_t, err, ratio = [], [], [], []
        u = 2.0 ** -24
        gamma = h * u / (1 - h * u)
        for sp in cfg.sparsities:
            a = sparse_activation_batch(cfg.rows, h, sp, rng)
            dense_t.append(_median_time(lambda: F.linear(a, w, b), cfg.repeats))
            sparse_t.append(_median_time(lambda: sparse_down(a, wt, b, dense_above=1.0), cfg.repeats))
            diff = (F.linear(a, w, b) - sparse_down(a, wt, b, dense_above=1.0)).abs().double()
            bound = 2 * gamma * (a.abs().double() @ w.abs().double().T)
            err.append(float(diff.max()))
            ratio.append(float((diff / bound.clamp_min(1e-300)).max()))
        out["sizes"][f"{d}×{h}"] = {"dense_s": np.array(dense_t), "sparse_s": np.array(sparse_t),
                                    "speedup": np.array(dense_t) / np.array(sparse_t), "max_abs_err": max(err),
                                    "max_err_ratio": max(ratio)}
    return out


# ---------------------------------------------------------------------------
# the chapter over seeds
# ---------------------------------------------------------------------------

#: Seeds per scale: every training-based claim of the chapter rests on this many independent runs.  The
#: seeds are separate training loops here (not batched), so ``full`` keeps 5 and spends its step budget
#: (at most 3x ci's total of optimizer steps: 47,100 at ci, 125,000 at full) on longer training instead.
SEEDS = {"ci": 5, "full": 5}


#: The parts of one seed's work per scale, balanced in cost, longest first; each part holds the runs its
#: experiments share (the ReLU Transformer of ``emergence`` is reused by ``activations`` and ``family``,
#: and, at ``ci``, by ``transformer_scaling``; the widest MLP of ``conditions`` by ``data``).  At ``ci``
#: two halves for 2 cores; at ``full`` five parts, so that a GPU host runs more of them side by side and
#: no single part is long.  Optimizer steps per seed at full: conditions + data 7,800, scaling 5,400,
#: mixer + topk + temporal 4,800, emergence + activations + deft_lora 4,000, transformer_scaling 3,000
#: (its base Transformer is retrained in its own part).
PARTS_BY_SCALE = {
    "ci": (("conditions", "scaling", "data", "mixer", "topk", "temporal"),
           ("emergence", "transformer_scaling", "activations", "family", "deft_lora")),
    "full": (("conditions", "data"), ("scaling",), ("mixer", "topk", "temporal"),
             ("emergence", "activations", "family", "deft_lora"), ("transformer_scaling",)),
}
#: The two halves at ``ci`` (kept under this name for the tests and the notebook).
PARTS = PARTS_BY_SCALE["ci"]


def chapter_part(task: int, scale: str = "ci") -> dict:
    """One part of one seed's experiments: ``task = P·seed + part`` with ``P = len(PARTS_BY_SCALE[scale])``
    (``part`` indexes ``PARTS_BY_SCALE[scale]``).

    A module-level function of the task index, so that :func:`sparsebook.seeding.over_seeds` spreads
    the parts of all seeds over its workers (5 seeds on 2 workers: 10 half-tasks balance better
    than 5 whole ones).  Every run inside seeds itself from ``seed = task // P``."""
    task = check_int(task, "task", 0)
    check_scale(scale)
    parts = PARTS_BY_SCALE[scale]
    seed, part = divmod(task, len(parts))
    sc = ScalingConfig.preset(scale)
    runners = {"emergence": lambda: run_emergence(EmergenceConfig.preset(scale), seed),
               "conditions": lambda: run_conditions(ConditionsConfig.preset(scale), seed),
               "scaling": lambda: run_scaling(sc, seed),
               "data": lambda: run_data(sc, seed),
               "transformer_scaling": lambda: run_transformer_scaling(TransformerScalingConfig.preset(scale), seed),
               "mixer": lambda: run_mixer(MixerConfig.preset(scale), seed),
               "topk": lambda: run_topk(TopKConfig.preset(scale), seed),
               "activations": lambda: run_activations(ActivationsConfig.preset(scale), seed),
               "family": lambda: run_family(FamilyConfig.preset(scale), seed),
               "deft_lora": lambda: run_deft_lora(DeftLoraConfig.preset(scale), seed),
               "temporal": lambda: run_temporal(TemporalConfig.preset(scale), seed)}
    out = {name: runners[name]() for name in parts[part]}
    _transformer_fit.cache_clear()
    _mlp_fit.cache_clear()
    return out


def chapter_seed(seed: int, scale: str = "ci") -> dict:
    """Every experiment of the chapter for one seed at ``scale``: ``{"seed", experiment: result}``."""
    seed = check_int(seed, "seed", 0)
    check_scale(scale)
    p = len(PARTS_BY_SCALE[scale])
    out = {"seed": seed}
    for part in range(p):
        out.update(chapter_part(p * seed + part, scale))
    return out


def run_chapter(scale: str = "ci", seed: int = 0, seeds: int | None = None, workers: int | None = None) -> list[dict]:
    """:func:`chapter_seed` for seeds ``seed, seed+1, …`` (``SEEDS[scale]`` of them), as half-seed tasks on
    a pool of single-thread workers (:func:`sparsebook.seeding.over_seeds`); the list is in seed order
    and does not depend on the number of workers."""
    from sparsebook.seeding import over_seeds

    check_scale(scale)
    seed = check_int(seed, "seed", 0)
    n = SEEDS[scale] if seeds is None else check_int(seeds, "seeds", 2)
    # the longest part of every seed first (at ci part 1, the Transformers; at full the order of
    # PARTS_BY_SCALE): the shorter parts then fill the gaps and the last task to finish is a short one
    # (longest-processing-time order)
    P = len(PARTS_BY_SCALE[scale])
    order = reversed(range(P)) if scale == "ci" else range(P)
    tasks = [P * s + p for p in order for s in range(seed, seed + n)]
    parts = dict(zip(tasks, over_seeds(chapter_part, tasks, scale, workers=workers)))
    out = []
    for s in range(seed, seed + n):
        row = {"seed": s}
        for p in range(P):
            row.update(parts[P * s + p])
        out.append(row)
    return out


# ---------------------------------------------------------------------------
# estimates over seeds (what the notebook displays and the claims rest on)
# ---------------------------------------------------------------------------


def _col(runs, fn) -> np.ndarray:
    return np.array([fn(r) for r in runs], dtype=float)


def _trace_at(steps: np.ndarray, values: np.ndarray, at) -> np.ndarray:
    idx = [int(np.flatnonzero(steps == a)[0]) for a in at]
    return values[idx]


def emergence_estimates(runs: list[dict]) -> dict:
    """Final held-out nonzero and dead fractions (Transformer: mean over layers; MLP), and Sparsing Law's
    training-token traces: the ReLU Transformer's nonzero fraction and the SiLU Transformer's
    activation ratio (1 − PPL-p% sparsity) at the SiLU trace's checkpoints, as ``steps`` estimates."""
    from sparsebook.stats import from_seeds, steps

    if len(runs) < 2:
        raise ValueError(f"runs must hold at least 2 seeds; got {len(runs)}")
    tf = lambda r: r["emergence"]["transformer"]  # noqa: E731
    out = {"tf_nonzero": from_seeds(_col(runs, lambda r: _mean(tf(r)["final"]["nonzero"]))),
           "tf_dead": from_seeds(_col(runs, lambda r: _mean(tf(r)["final"]["dead"]))),
           "tf_loss": from_seeds(_col(runs, lambda r: tf(r)["final"]["loss"])),
           "mlp_nonzero": from_seeds(_col(runs, lambda r: r["emergence"]["mlp"]["final"]["nonzero"]["acts.0"])),
           "mlp_dead": from_seeds(_col(runs, lambda r: r["emergence"]["mlp"]["final"]["dead"]["acts.0"])),
           "mlp_accuracy": from_seeds(_col(runs, lambda r: r["emergence"]["mlp"]["final"]["accuracy"]))}
    for name in tf(runs[0])["final"]["nonzero"]:
        out[f"tf_nonzero {name}"] = from_seeds(_col(runs, lambda r: tf(r)["final"]["nonzero"][name]))
    pt = runs[0]["activations"]["ppl_trace"]
    at = [int(s) for s in pt["step"]]
    relu = np.array([_trace_at(tf(r)["steps"], np.mean([tf(r)["held_out"][k] for k in tf(r)["held_out"]], 0), at)
                     for r in runs])
    silu = np.array([1 - r["activations"]["ppl_trace"]["sparsity"] for r in runs])
    out.update({"trace_steps": at, "tokens": [a * pt["tokens_per_step"] for a in at],
                "relu_ratio": [from_seeds(relu[:, j]) for j in range(len(at))], "relu_steps": steps(relu),
                "silu_ratio": [from_seeds(silu[:, j]) for j in range(len(at))], "silu_steps": steps(silu)})
    return out


def conditions_estimates(runs: list[dict]) -> dict:
    """``{setting: {"nonzero", "dead", "train_loss"}}`` as estimates over seeds."""
    from sparsebook.stats import from_seeds

    labels = [row["setting"] for row in runs[0]["conditions"]]
    return {lab: {k: from_seeds(_col(runs, lambda r: r["conditions"][i][k])) for k in ("nonzero", "dead", "train_loss")}
            for i, lab in enumerate(labels)}


def scaling_estimates(runs: list[dict]) -> dict:
    """MLP width and depth sweeps, Transformer width and depth sweeps, data settings and sizes:
    per point estimates and the paired ``steps`` between neighbouring points."""
    from sparsebook.stats import from_seeds, steps

    def sweep(get):
        v = np.array([get(r) for r in runs], dtype=float)
        return {"points": [from_seeds(v[:, j]) for j in range(v.shape[1])], "steps": steps(v)}

    sc0, ts0, dt0 = runs[0]["scaling"], runs[0]["transformer_scaling"], runs[0]["data"]
    out = {"widths": [int(w) for w in sc0["widths"]], "depths": [int(d) for d in sc0["depths"]],
           "width_nonzero": sweep(lambda r: r["scaling"]["width_nonzero"]),
           "width_dead": sweep(lambda r: r["scaling"]["width_dead"]),
           "depth_nonzero": sweep(lambda r: r["scaling"]["depth_nonzero"]),
           "depth_alive": sweep(lambda r: r["scaling"]["depth_alive"]),
           "depth_dead": sweep(lambda r: r["scaling"]["depth_dead"]),
           "tf_ffs": [int(v) for v in ts0["width"]["values"]], "tf_depths": [int(v) for v in ts0["depth"]["values"]],
           "tf_width_alive": sweep(lambda r: r["transformer_scaling"]["width"]["alive"]),
           "tf_width_dead": sweep(lambda r: r["transformer_scaling"]["width"]["dead"]),
           "tf_depth_alive": sweep(lambda r: r["transformer_scaling"]["depth"]["alive"]),
           "tf_depth_dead": sweep(lambda r: r["transformer_scaling"]["depth"]["dead"]),
           "sizes": [float(n) for n in dt0["sizes"]],
           "size_nonzero": sweep(lambda r: r["data"]["nonzero"]),
           "size_train_nonzero": sweep(lambda r: r["data"]["train_nonzero"]),
           "size_dead": sweep(lambda r: r["data"]["dead"]),
           "train_vs_held_out": from_seeds(_col(runs, lambda r: np.max(np.abs(r["data"]["train_nonzero"] - r["data"]["nonzero"]))))}
    out["settings"] = {row["setting"]: {k: from_seeds(_col(runs, lambda r: r["data"]["settings"][i][k]))
                                        for k in ("nonzero", "dead", "train_loss")}
                       for i, row in enumerate(dt0["settings"])}
    return out


def mixer_estimates(runs: list[dict]) -> dict:
    """Held-out nonzero among live units and dead fraction per Mixer MLP, and the means over the
    token-mixing and over the channel-mixing MLPs; clean held-out accuracy."""
    from sparsebook.stats import from_seeds

    names = list(runs[0]["mixer"]["final"]["nonzero"])
    fin = lambda r: r["mixer"]["final"]  # noqa: E731
    out = {"accuracy": from_seeds(_col(runs, lambda r: fin(r)["accuracy"]))}
    for n in names:
        out[f"{n} live nonzero"] = from_seeds(_col(runs, lambda r: fin(r)["nonzero_alive"][n]))
        out[f"{n} dead"] = from_seeds(_col(runs, lambda r: fin(r)["dead"][n]))
    for kind in ("token", "channel"):
        sel = [n for n in names if n.endswith(f"{kind}_act")]
        out[kind] = from_seeds(_col(runs, lambda r: np.mean([fin(r)["nonzero_alive"][n] for n in sel])))
    return out


def topk_estimates(runs: list[dict]) -> dict:
    """Per model and labels: accuracy, corrupted accuracy, ECE, nonzero; and the paired differences the
    claims use: ``label_noise`` (dense drop − Top-k drop), ``corruption`` (Top-k − dense, clean labels),
    ``calibration`` (ECE dense − Top-k, clean labels) and ``calibration_noisy`` (same, noisy labels)."""
    from sparsebook.stats import from_seeds, paired_difference

    tk = lambda r: r["topk"]  # noqa: E731
    g = lambda m, l, k: _col(runs, lambda r: tk(r)[m][l][k])  # noqa: E731
    out = {f"{m}, {l}: {k}": from_seeds(g(m, l, k)) for m in ("dense", "topk") for l in ("clean", "noisy")
           for k in ("accuracy", "corrupted", "ece", "nonzero")}
    drop_dense = g("dense", "clean", "accuracy") - g("dense", "noisy", "accuracy")
    drop_topk = g("topk", "clean", "accuracy") - g("topk", "noisy", "accuracy")
    out["label_noise"] = paired_difference(drop_dense, drop_topk)
    out["corruption"] = paired_difference(g("topk", "clean", "corrupted"), g("dense", "clean", "corrupted"))
    out["calibration"] = paired_difference(g("dense", "clean", "ece"), g("topk", "clean", "ece"))
    out["calibration_noisy"] = paired_difference(g("dense", "noisy", "ece"), g("topk", "noisy", "ece"))
    return out


def activations_estimates(runs: list[dict]) -> dict:
    """Activation functions (loss, nonzero, above τ, PPL-p%), fine-tunings (loss, sparsity, perplexity
    ratio to SiLU continued), CATS and CHESS (sparsity and perplexity ratio per target), and the
    paired differences the claims use."""
    from sparsebook.stats import from_seeds, paired_difference

    ac = lambda r: r["activations"]  # noqa: E731
    acts = list(runs[0]["activations"]["models"])
    out = {"models": {a: {k: from_seeds(_col(runs, lambda r: ac(r)["models"][a][k]))
                          for k in ("loss", "nonzero", "dead", "above_tau", "ppl_p")} for a in acts}}
    out["silu_nonzero_exact"] = bool(all(ac(r)["models"]["silu"]["nonzero"] == 1.0 for r in runs))
    ppl = lambda a: _col(runs, lambda r: ac(r)["models"][a]["ppl_p"])  # noqa: E731
    others = [a for a in acts if a != "relu"]
    best_other = np.max([ppl(a) for a in others], axis=0)
    out["relu_ppl_gain"] = paired_difference(ppl("relu"), best_other)
    labels = list(runs[0]["activations"]["finetune"])
    ref = _col(runs, lambda r: ac(r)["finetune"]["SiLU, continued"]["loss"])
    ft = {}
    for lab in labels:
        loss = _col(runs, lambda r: ac(r)["finetune"][lab]["loss"])
        sp = 1 - _col(runs, lambda r: ac(r)["finetune"][lab]["nonzero"])
        ft[lab] = {"sparsity": from_seeds(sp), "ppl_ratio": from_seeds(np.exp(loss - ref)), "loss": from_seeds(loss),
                   "_sp": sp, "_loss": loss}
    out["finetune"] = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in ft.items()}
    out["prosparse_vs_relu"] = paired_difference(ft["ProSparse + FATReLU"]["_sp"], ft["ReLU substituted"]["_sp"])
    out["progressive_vs_constant_loss"] = paired_difference(ft["ReLU + ProSparse L1"]["_loss"],
                                                            ft["ReLU + constant L1"]["_loss"])
    out["progressive_vs_constant_sparsity"] = paired_difference(ft["ReLU + ProSparse L1"]["_sp"],
                                                                ft["ReLU + constant L1"]["_sp"])
    out["fat_gain"] = paired_difference(ft["ProSparse + FATReLU"]["_sp"], ft["ReLU + ProSparse L1"]["_sp"])
    out["deft_vs_relu_density"] = paired_difference(1 - ft["ReLU + DEFT density"]["_sp"], 1 - ft["ReLU substituted"]["_sp"])
    base = _col(runs, lambda r: ac(r)["models"]["silu"]["loss"])
    targets = [row["target"] for row in runs[0]["activations"]["thresholds"]]
    th = {}
    for j, t in enumerate(targets):
        row = {}
        for m in ("cats", "chess"):
            row[f"{m}_sparsity"] = from_seeds(_col(runs, lambda r: ac(r)["thresholds"][j][f"{m}_sparsity"]))
            row[f"{m}_ppl_ratio"] = from_seeds(np.exp(_col(runs, lambda r: ac(r)["thresholds"][j][f"{m}_loss"]) - base))
        row["chess_minus_cats_loss"] = paired_difference(_col(runs, lambda r: ac(r)["thresholds"][j]["chess_loss"]),
                                                         _col(runs, lambda r: ac(r)["thresholds"][j]["cats_loss"]))
        th[float(t)] = row
    out["thresholds"] = th
    out["cats_target_miss"] = from_seeds(_col(runs, lambda r: max(abs(x["cats_sparsity"] - x["target"])
                                                                  for x in ac(r)["thresholds"])))
    return out


def family_estimates(runs: list[dict]) -> dict:
    """CoreInfer and MoHD measurements over seeds, with the paired differences the claims use."""
    from sparsebook.stats import from_seeds, paired_difference

    f = lambda k: _col(runs, lambda r: r["family"][k])  # noqa: E731
    out = {k: from_seeds(f(k)) for k in ("core_same", "core_other", "core_density", "core_loss_ratio",
                                         "flow_consecutive", "flow_other")}
    out["core_stability"] = paired_difference(f("core_same"), f("core_other"))
    out["flow_shared"] = paired_difference(f("flow_consecutive"), f("flow_other"))
    out["flow_chance"] = float(runs[0]["family"]["flow_chance"])
    return out


def temporal_estimates(runs: list[dict], penalty: float) -> dict:
    """Per model (``"baseline"`` and each λ): held-out accuracy and the fractions of activations and of
    activation changes nonzero, over seeds; and what the claims use, at λ = ``penalty``:
    ``improvement`` (per seed, the baseline's fraction of activations nonzero over the Delta Activation
    Layer model's fraction of changes propagated: how many times fewer entries a sparsity-aware
    accelerator processes), ``delta_only`` (the same ratio for the baseline under delta inference, no
    penalty) and ``accuracy_change`` (penalized minus baseline accuracy, paired)."""
    from sparsebook.stats import from_seeds, paired_difference

    if len(runs) < 2:
        raise ValueError(f"runs must hold at least 2 seeds; got {len(runs)}")
    penalty = float(penalty)
    if penalty not in runs[0]["temporal"]:
        raise ValueError(f"penalty must be one of the trained λ {[k for k in runs[0]['temporal'] if k != 'baseline']}; "
                         f"got {penalty}")
    g = lambda m, k: _col(runs, lambda r: r["temporal"][m][k])  # noqa: E731
    out = {"models": {m: {k: from_seeds(g(m, k)) for k in ("accuracy", "spatial", "temporal")}
                      for m in runs[0]["temporal"]}}
    out["improvement"] = from_seeds(g("baseline", "spatial") / g(penalty, "temporal"))
    out["delta_only"] = from_seeds(g("baseline", "spatial") / g("baseline", "temporal"))
    out["accuracy_change"] = paired_difference(g(penalty, "accuracy"), g("baseline", "accuracy"))
    return out
