"""Mixture of experts, experiments: data with known expert structure, a small MoE network whose
parameters carry a leading seed axis (5 seeds train as one computation), frozen configs with
``preset(scale)`` and the runners ``run_<experiment>(config, seed)``.

The seeds of one runner are ``seed, seed + 1, …, seed + n_seeds − 1``; member ``s`` draws its
data, its initialisation and its batch order from its own seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from sparsebook.mixture_of_experts.kernels import (
    EXPERT_KEYS, auroc_matrix, comet_gate, expert_capacity, experts_all, gate_matrix, gaussian_moe_logpdf,
    group_experts, load_balancing_loss, low_rank_plus_sparse, low_rank_sparse_factors, merge_experts, stable_rank, moe_dense_reference,
    moe_dispatch, permute_gates, router_z_loss, sparsity_routing, swap_neighbourhood, top_k_routing,
)
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import batch_order, make_optimizer, run_steps
from sparsebook.validate import check_int, check_real

ROUTERS = ("topk", "pregate", "comet", "sparsity")


def device_for(scale: str) -> torch.device:
    """CPU at ``ci``; the GPU at ``full`` when one is present."""
    return torch.device("cuda" if check_scale(scale) == "full" and torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def cluster_regression(n: int, seed: int, n_clusters: int = 8, dim: int = 8, out_dim: int = 4,
                       spread: float = 4.0, noise: float = 0.1, task_seed: int | None = None) -> dict:
    """Gaussian clusters with cluster-specific linear targets (known expert structure).

    Cluster ``c`` (equally likely) has centre ``μ_c ~ N(0, (spread/2)² I)``, inputs
    ``x ~ N(μ_c, I)`` and target ``y = A_c (x − μ_c) + m_c + ε``, ``A_c`` with ``N(0, 1/dim)``
    entries, ``m_c ~ N(0, I)``, ``ε ~ N(0, noise²)``.  The task (centres, maps) is drawn from
    ``task_seed`` (default ``seed``), the samples from ``seed + 10⁶``.
    Returns ``{"x": [n, dim], "y": [n, out_dim], "cluster": [n]}`` (float32 / int64 tensors).
    """
    n = check_int(n, "n", 1)
    n_clusters = check_int(n_clusters, "n_clusters", 1)
    dim, out_dim = check_int(dim, "dim", 1), check_int(out_dim, "out_dim", 1)
    spread, noise = check_real(spread, "spread", 0), check_real(noise, "noise", 0)
    task = np.random.default_rng(seed if task_seed is None else task_seed)
    mu = task.normal(0, spread / 2, (n_clusters, dim))
    maps = task.normal(0, 1 / math.sqrt(dim), (n_clusters, dim, out_dim))
    means = task.normal(0, 1, (n_clusters, out_dim))
    rng = np.random.default_rng(seed + 10**6)
    c = rng.integers(0, n_clusters, n)
    x = mu[c] + rng.normal(0, 1, (n, dim))
    y = np.einsum("nd,ndo->no", x - mu[c], maps[c]) + means[c] + rng.normal(0, noise, (n, out_dim))
    return {"x": torch.tensor(x, dtype=torch.float32), "y": torch.tensor(y, dtype=torch.float32),
            "cluster": torch.tensor(c, dtype=torch.long)}


def planted_variables(n: int, seed: int, n_vars: int = 24, dim: int = 16, p: float = 0.1, noise: float = 0.05) -> dict:
    """Sparse binary planted variables in superposition: ``z ∈ {0,1}^m`` with i.i.d. Bernoulli(p)
    entries, ``x = A z + ε`` with unit-norm random columns ``A [dim, m]`` (``m > dim``: the
    variables share directions), target ``y = z``.  Returns ``{"x", "y", "z"}`` tensors."""
    n, n_vars, dim = check_int(n, "n", 1), check_int(n_vars, "n_vars", 1), check_int(dim, "dim", 1)
    p = check_real(p, "p", 0, 1, low_open=True, high_open=True)
    task = np.random.default_rng(seed)
    a = task.normal(0, 1, (dim, n_vars))
    a /= np.linalg.norm(a, axis=0, keepdims=True)
    rng = np.random.default_rng(seed + 10**6)
    z = (rng.random((n, n_vars)) < p).astype(np.float32)
    x = z @ a.T + rng.normal(0, noise, (n, dim))
    return {"x": torch.tensor(x, dtype=torch.float32), "y": torch.tensor(z), "z": torch.tensor(z)}


def _stack(datas: list[dict], device) -> dict:
    return {k: torch.stack([d[k] for d in datas]).to(device) for k in datas[0]}


# ---------------------------------------------------------------------------
# the network: input map, L residual MoE layers, linear head; parameters [S, ...]
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NetSpec:
    """A small MoE network: ``x₀ = x W_in + b_in``; ``x_{l+1} = x_l + MoE_l(x_l)``; ``ŷ = x_L W_out + b_out``.

    ``router``: ``topk`` (a router per layer on ``x_l``), ``pregate`` (Read-ME: every layer's router
    reads ``x₀``, so all routes are known before layer 1 runs), ``comet`` (tree gates,
    :func:`~sparsebook.mixture_of_experts.kernels.comet_gate`) or ``sparsity`` (MoE-X's
    sparsity-aware routing, :func:`~sparsebook.mixture_of_experts.kernels.sparsity_routing`, with
    softmax temperature ``temperature``; no router parameters).  ``n_experts = 1, k = 1`` is a dense MLP.
    """

    d_in: int
    d_out: int
    d_model: int = 16
    n_experts: int = 8
    k: int = 2
    hidden: int = 8
    layers: int = 1
    router: str = "topk"
    gamma: float = 1.0
    temperature: float = 0.1

    def __post_init__(self):
        for name in ("d_in", "d_out", "d_model", "n_experts", "hidden", "layers"):
            check_int(getattr(self, name), name, 1)
        check_int(self.k, "k", 1, self.n_experts)
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}; got {self.router!r}")
        if self.router == "comet" and 2 ** int(round(math.log2(self.n_experts))) != self.n_experts:
            raise ValueError(f"comet needs n_experts = 2^D; got {self.n_experts}")


def _linear(gen, fan_in, shape):
    return torch.empty(shape).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen)


def init_net(spec: NetSpec, seeds, device=None) -> dict:
    """Parameters of ``len(seeds)`` networks stacked on a leading axis (member ``s`` drawn from a
    generator seeded with ``seeds[s]``); PyTorch's default uniform(±1/√fan_in) initialisation."""
    seeds = [check_int(s, "seeds[i]", 0) for s in seeds]
    members = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        d, e, h = spec.d_model, spec.n_experts, spec.hidden
        p = {"w_in": _linear(g, spec.d_in, (spec.d_in, d)), "b_in": _linear(g, spec.d_in, (d,)),
             "w_out": _linear(g, d, (d, spec.d_out)), "b_out": _linear(g, d, (spec.d_out,))}
        for layer in range(spec.layers):
            p[f"w1_{layer}"] = _linear(g, d, (e, d, h))
            p[f"b1_{layer}"] = _linear(g, d, (e, h))
            p[f"w2_{layer}"] = _linear(g, h, (e, h, d))
            p[f"b2_{layer}"] = torch.zeros(e, d)
            if spec.router == "comet":
                p[f"node_w_{layer}"] = _linear(g, d, (spec.k, d, e - 1))
                p[f"node_b_{layer}"] = torch.zeros(spec.k, e - 1)
                p[f"tree_w_{layer}"] = _linear(g, d, (d, spec.k))
            elif spec.router != "sparsity":
                p[f"router_{layer}"] = _linear(g, d, (d, e))
        members.append(p)
    return {k: torch.stack([m[k] for m in members]).to(device or "cpu").requires_grad_() for k in members[0]}


def layer_experts(params: dict, layer: int) -> dict:
    """The stacked experts of ``layer``: ``{"w1": [S, E, d, h], ...}``."""
    return {key: params[f"{key}_{layer}"] for key in EXPERT_KEYS}


def net_forward(params: dict, spec: NetSpec, x: torch.Tensor, capacity_factor: float | None = None,
                keep_experts: torch.Tensor | None = None, merged: dict | None = None, dense_path: bool = False,
                expert_perm: torch.Tensor | None = None) -> tuple:
    """Forward pass of the stacked networks on ``x [S, T, d_in]``.

    ``capacity_factor``: expert capacity in training (None: no token dropped).
    ``keep_experts`` (``[S, E]`` bool): experts left after pruning; the router's logits of the
    others are set to −∞ and each token picks ``min(k, kept)`` experts (UNCURL).
    ``merged``: ``{"group": [S, E] long, "experts": {"w1": [S, m, d, h], ...}}``: after MC-SMoE
    merging, a token routed to expert ``e`` uses the merged expert of ``e``'s group (layer 0).
    ``expert_perm`` (``[S, L, E]`` long, COMET only): gate output ``j`` of layer ``l`` drives expert
    ``expert_perm[s, l, j]`` (:func:`permute_gates`; the local search's variable).
    Returns ``(ŷ [S, T, d_out], info)``; ``info`` holds the auxiliary losses ``balance`` and
    ``z`` (``[S]``), and per layer ``idx``, ``gmat``, ``kept``, the layer input ``h``.
    """
    h = torch.einsum("std,sde->ste", x, params["w_in"]) + params["b_in"].unsqueeze(1)
    x0 = h
    info = {"balance": 0.0, "z": 0.0, "layers": []}
    for layer in range(spec.layers):
        ex = layer_experts(params, layer)
        r_in = x0 if spec.router == "pregate" else h
        rec = {"h": h}
        if spec.n_experts == 1:                                   # the dense MLP: no router
            gmat = h.new_ones(*h.shape[:2], 1)
            y = moe_dense_reference(h, ex, gmat)
            rec.update(gmat=gmat, idx=torch.zeros(*h.shape[:2], 1, dtype=torch.long, device=h.device))
        elif spec.router == "comet":
            gmat = comet_gate(r_in, params[f"node_w_{layer}"], params[f"node_b_{layer}"], params[f"tree_w_{layer}"], spec.gamma)
            if expert_perm is not None:
                gmat = permute_gates(gmat, expert_perm[:, layer])
            y = moe_dense_reference(h, ex, gmat)
            rec.update(gmat=gmat, idx=torch.sort(gmat, dim=-1, descending=True, stable=True).indices[..., :spec.k])
        else:
            k = spec.k
            if spec.router == "sparsity":
                logits, probs, idx, gates = sparsity_routing(h, ex["w1"], ex["b1"], k, spec.temperature)
            else:
                logits = torch.einsum("std,sde->ste", r_in, params[f"router_{layer}"])
            if keep_experts is not None:
                logits = logits.masked_fill(~keep_experts.unsqueeze(1), float("-inf"))
                k = min(k, int(keep_experts.sum(-1).min()))
            if keep_experts is not None or spec.router != "sparsity":
                probs, idx, gates = top_k_routing(logits, k)
            if keep_experts is None:
                info["balance"] = info["balance"] + load_balancing_loss(probs, idx)
                info["z"] = info["z"] + router_z_loss(logits)
            if merged is not None and layer == 0:
                gm = gate_matrix(idx, gates, spec.n_experts)
                onehot = torch.nn.functional.one_hot(merged["group"], merged["experts"]["w1"].shape[1]).to(gm.dtype)
                y = moe_dense_reference(h, merged["experts"], torch.einsum("ste,sem->stm", gm, onehot))
                kept = torch.ones_like(idx, dtype=torch.bool)
            elif dense_path:
                kept = torch.ones_like(idx, dtype=torch.bool)
                y = moe_dense_reference(h, ex, gate_matrix(idx, gates, spec.n_experts))
            else:
                cap = expert_capacity(h.shape[1], spec.n_experts, k, capacity_factor)
                y, kept = moe_dispatch(h, ex, idx, gates, cap)
            rec.update(idx=idx, kept=kept, gmat=gate_matrix(idx, gates, spec.n_experts, kept), probs=probs)
        info["layers"].append(rec)
        h = h + y
    return torch.einsum("std,sdo->sto", h, params["w_out"]) + params["b_out"].unsqueeze(1), info


def nmse(pred: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Normalised mean squared error per member, ``mean (ŷ − y)² / mean (y − ȳ)²`` (``[S]``)."""
    mse = ((pred - y) ** 2).mean(dim=(1, 2))
    var = ((y - y.mean(1, keepdim=True)) ** 2).mean(dim=(1, 2))
    return (mse / var).detach().cpu().double().numpy()


def usage(idx: torch.Tensor, n_experts: int) -> np.ndarray:
    """Fraction of assignments per expert, ``[S, E]``."""
    c = torch.nn.functional.one_hot(idx, n_experts).sum(dim=(1, 2)).double()
    return (c / c.sum(-1, keepdim=True)).cpu().numpy()


def specialization(idx: torch.Tensor, cluster: torch.Tensor) -> np.ndarray:
    """Normalised mutual information between a token's cluster and its first-choice expert, per
    member (``sklearn.metrics.normalized_mutual_info_score``, arithmetic normalisation): 1 when
    the expert is a function of the cluster and vice versa, 0 when independent."""
    from sklearn.metrics import normalized_mutual_info_score

    a, b = idx[..., 0].cpu().numpy(), cluster.cpu().numpy()
    return np.array([normalized_mutual_info_score(b[s], a[s]) for s in range(a.shape[0])])


@dataclass(frozen=True)
class TrainSpec:
    """Adam on the mean squared error ``+ balance · E Σ f_i P_i + z_loss · mean(logsumexp²)``."""

    steps: int = 400
    lr: float = 3e-3
    batch: int = 256
    balance: float = 0.01
    z_loss: float = 1e-3
    capacity_factor: float | None = 1.25
    every: int = 0


def train_net(spec: NetSpec, train: TrainSpec, data: dict, seeds, monitor=None, forward_kw: dict | None = None,
              hook=None) -> tuple[dict, dict]:
    """Train ``len(seeds)`` networks at once through :func:`sparsebook.train.run_steps`.

    ``data``: ``{"x": [S, N, d_in], "y": [S, N, d_out]}``; member ``s`` sees
    ``batch_order(N, batch, steps, seeds[s])``.  ``monitor(params, step)`` runs at step 0 and every
    ``train.every`` steps (no grad) and its outputs are collected.  ``forward_kw`` is passed to
    :func:`net_forward`; ``hook(params, step)`` runs after every step (COMET's local search).
    Returns ``(params, log)``.
    """
    seed_everything(int(seeds[0]))
    device = data["x"].device
    params = init_net(spec, seeds, device)
    opt = make_optimizer(params.values(), "adam", train.lr)
    n = data["x"].shape[1]
    order = torch.as_tensor(np.stack([batch_order(n, train.batch, train.steps, s) for s in seeds], axis=1), device=device)
    rows = torch.arange(len(seeds), device=device).unsqueeze(1)
    log = {"monitor": [], "steps": []}

    def watch(step):
        if hook is not None and step > 0:
            with torch.no_grad():
                hook(params, step)
        if monitor is not None and (step == 0 or (train.every and (step % train.every == 0 or step == train.steps))):
            with torch.no_grad():
                log["monitor"].append(monitor(params, step))
            log["steps"].append(step)

    def objective(s):
        idx = order[s]
        pred, info = net_forward(params, spec, data["x"][rows, idx], train.capacity_factor, **(forward_kw or {}))
        per = ((pred - data["y"][rows, idx]) ** 2).mean(dim=(1, 2))
        total = per + train.balance * info["balance"] + train.z_loss * info["z"]
        return total.sum(), per

    watch(0)
    log["loss"] = run_steps(opt, objective, steps=train.steps, on_step=watch)
    return {k: v.detach() for k, v in params.items()}, log


def evaluate(params: dict, spec: NetSpec, x: torch.Tensor, y: torch.Tensor, **kw) -> tuple[np.ndarray, dict]:
    """Test NMSE per member and the forward's info, without gradients."""
    with torch.no_grad():
        pred, info = net_forward(params, spec, x, **kw)
    return nmse(pred, y), info


# ---------------------------------------------------------------------------
# 1. routing: sparse MoE against dense, load balancing, capacity, specialisation
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RoutingConfig:
    """Top-2 MoE (8 experts of 8 hidden units) on 8 Gaussian clusters, with and without the Switch
    balance loss, against a dense MLP with the same active parameters (hidden 16).

    ``full`` (sized by optimizer steps: GPU steps of networks this small are launch-bound): 10 seeds stacked in
    one model, 16 clusters and 16 experts of 16 units, 8x the data, batches of 1024, 3x ci's steps (900);
    Read-ME and COMET train with these settings too."""

    n_seeds: int = 5
    n_train: int = 4096
    n_test: int = 2048
    n_clusters: int = 8
    dim: int = 8
    out_dim: int = 4
    d_model: int = 16
    n_experts: int = 8
    k: int = 2
    hidden: int = 8
    steps: int = 300
    lr: float = 4e-3
    batch: int = 256
    balance: float = 0.01
    every: int = 30
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "RoutingConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(n_seeds=10, n_train=32768, n_test=8192, n_clusters=16, n_experts=16, hidden=16, d_model=32,
                   steps=900, batch=1024, every=100, device=str(device_for(scale)))

    def spec(self, **kw) -> NetSpec:
        base = NetSpec(d_in=self.dim, d_out=self.out_dim, d_model=self.d_model, n_experts=self.n_experts,
                       k=self.k, hidden=self.hidden)
        return replace(base, **kw)

    def dense_spec(self) -> NetSpec:
        return self.spec(n_experts=1, k=1, hidden=self.k * self.hidden)

    def data(self, seeds) -> tuple[dict, dict]:
        kw = dict(n_clusters=self.n_clusters, dim=self.dim, out_dim=self.out_dim)
        full = [cluster_regression(self.n_train + self.n_test, s, **kw) for s in seeds]
        tr = _stack([{k: v[:self.n_train] for k, v in d.items()} for d in full], self.device)
        te = _stack([{k: v[self.n_train:] for k, v in d.items()} for d in full], self.device)
        return tr, te


def _dropped_fraction(params, spec, x, factor, tokens_per_batch):
    """Fraction of assignments dropped at capacity ``factor`` when the test set is fed in batches."""
    drops = []
    for a in range(0, x.shape[1] - tokens_per_batch + 1, tokens_per_batch):
        _, info = evaluate(params, spec, x[:, a:a + tokens_per_batch], x.new_zeros(1, 1, 1), capacity_factor=factor)
        drops.append(1 - info["layers"][0]["kept"].double().mean(dim=(1, 2)).cpu().numpy())
    return np.mean(drops, axis=0)


def run_routing(config: RoutingConfig, seed: int = 0) -> dict:
    """Train the balanced MoE, the unbalanced MoE and the dense MLP on the same data (per seed).

    Returns per-member arrays ``[S]``: test NMSE of each model, NMI between cluster and expert,
    load coefficient of variation and max load, fraction of assignments dropped at capacity
    factors 1.0 and 1.25 (test set in batches of ``batch``), the monitor curves (NMI and max
    load over training), and the trained parameters and data (for merging, pruning, COMET).
    """
    seed = check_int(seed, "seed", 0)
    seeds = list(range(seed, seed + check_int(config.n_seeds, "n_seeds", 2)))
    seed_everything(seed)
    tr, te = config.data(seeds)
    spec = config.spec()
    out = {"seeds": seeds, "train": tr, "test": te, "spec": spec, "dense_spec": config.dense_spec()}

    sub = slice(0, min(512, config.n_test))

    def monitor(params, step):
        _, info = evaluate(params, spec, te["x"][:, sub], te["y"][:, sub])
        idx = info["layers"][0]["idx"]
        return {"nmi": specialization(idx, te["cluster"][:, sub]), "max_load": usage(idx, spec.n_experts).max(-1)}

    for name, bal in (("balanced", config.balance), ("unbalanced", 0.0)):
        ts = TrainSpec(steps=config.steps, lr=config.lr, batch=config.batch, balance=bal, every=config.every)
        params, log = train_net(spec, ts, tr, seeds, monitor)
        err, info = evaluate(params, spec, te["x"], te["y"])
        idx = info["layers"][0]["idx"]
        u = usage(idx, spec.n_experts)
        out[name] = {"params": params, "nmse": err, "nmi": specialization(idx, te["cluster"]), "usage": u,
                     "load_cv": u.std(-1) / u.mean(-1), "max_load": u.max(-1),
                     "dropped_1.0": _dropped_fraction(params, spec, te["x"], 1.0, config.batch),
                     "dropped_1.25": _dropped_fraction(params, spec, te["x"], 1.25, config.batch),
                     "curve_steps": np.array(log["steps"]),
                     "curve_nmi": np.stack([m["nmi"] for m in log["monitor"]], 1),
                     "curve_max_load": np.stack([m["max_load"] for m in log["monitor"]], 1)}
    dspec = config.dense_spec()
    ts = TrainSpec(steps=config.steps, lr=config.lr, batch=config.batch, balance=0.0, z_loss=0.0, capacity_factor=None)
    params, _ = train_net(dspec, ts, tr, seeds)
    out["dense"] = {"params": params, "nmse": evaluate(params, dspec, te["x"], te["y"])[0]}
    # the dispatch path against the dense-masked reference, on the trained balanced MoE
    p = out["balanced"]["params"]
    with torch.no_grad():
        a, _ = net_forward(p, spec, te["x"])
        b, _ = net_forward(p, spec, te["x"], dense_path=True)
    out["dispatch_max_abs_diff"] = float((a - b).abs().max())
    return out


# ---------------------------------------------------------------------------
# 2. MC-SMoE: merging experts, aligned or not
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MergeConfig:
    """Merge the balanced MoE's 8 experts into ``n_keep`` groups (MC-SMoE's grouping and weights).

    ``full``: merging 16 experts to 12 / 8 / 4 / 2, rank 4 + 2 sparse columns, 3x ci's distillation steps (600)
    in batches of 1024"""

    n_keep: tuple = (6, 4, 2)
    compare_at: int = 4
    compress_rank: int = 2
    compress_columns: int = 1
    distill_steps: int = 200
    distill_lr: float = 1e-3
    batch: int = 256

    @classmethod
    def preset(cls, scale: str) -> "MergeConfig":
        return cls() if check_scale(scale) == "ci" else cls(n_keep=(12, 8, 4, 2), compare_at=8, compress_rank=4,
                                                            compress_columns=2, distill_steps=600, batch=1024)


def _single(experts: dict, s: int, e: int) -> dict:
    return {k: experts[k][s, e] for k in EXPERT_KEYS}


def run_merging(config: MergeConfig, routing: dict) -> dict:
    """For every member and every ``m`` in ``n_keep``: group experts (usage on the training set,
    cosine similarity of router logits), merge each group by usage-weighted averaging with and
    without permutation alignment (and aligned with uniform weights), and score the test NMSE.
    Returns ``{"n_keep": [...], "aligned"|"naive"|"uniform": [S, len(n_keep)], "full": [S]}``."""
    spec, tr, te = routing["spec"], routing["train"], routing["test"]
    params = routing["balanced"]["params"]
    seed_everything(routing["seeds"][0])
    with torch.no_grad():
        _, info = net_forward(params, spec, tr["x"])
        h0 = info["layers"][0]["h"]
        logits = torch.einsum("std,sde->ste", h0, params["router_0"])
    use = usage(info["layers"][0]["idx"], spec.n_experts)
    ln = torch.nn.functional.normalize(logits - logits.mean(1, keepdim=True), dim=1)
    sim = torch.einsum("ste,stf->sef", ln, ln).cpu().numpy()
    ex = layer_experts(params, 0)
    n_s = len(routing["seeds"])
    res = {"n_keep": list(config.n_keep), "full": routing["balanced"]["nmse"]}
    sr = {"members": [[] for _ in range(n_s)], "merged": [[] for _ in range(n_s)]}
    for mode in ("aligned", "naive", "uniform"):
        rows = []
        for m in config.n_keep:
            groups, merged = [], []
            for s in range(n_s):
                g = group_experts(use[s], sim[s], m)
                groups.append(torch.as_tensor(g, device=h0.device))
                members = []
                for j in range(m):
                    ids = [int(np.argsort(-use[s], kind="stable")[j])]
                    ids += [int(e) for e in np.flatnonzero(g == j) if e != ids[0]]
                    w = np.ones(len(ids)) if mode == "uniform" else use[s][ids]
                    if w.sum() <= 0:        # a group no training token routes to (possible with 16 experts): plain mean
                        w = np.ones(len(ids))
                    members.append(merge_experts([_single(ex, s, e) for e in ids], w, align=mode != "naive"))
                    if mode == "aligned" and m == config.compare_at and len(ids) > 1:
                        sr["members"][s].append(np.mean([_expert_stable_rank(_single(ex, s, e)) for e in ids]))
                        sr["merged"][s].append(_expert_stable_rank(members[-1]))
                merged.append({k: torch.stack([mm[k] for mm in members]) for k in EXPERT_KEYS})
            mer = {"group": torch.stack(groups), "experts": {k: torch.stack([mm[k] for mm in merged]) for k in EXPERT_KEYS}}
            rows.append(evaluate(params, spec, te["x"], te["y"], merged=mer)[0])
            if mode == "aligned" and m == config.compare_at:
                comp, stored = _compress(mer["experts"], config.compress_rank, config.compress_columns)
                res["compressed"] = evaluate(params, spec, te["x"], te["y"], merged={"group": mer["group"], "experts": comp})[0]
                res["compressed_params"] = {"merged": m * _expert_params(spec), "compressed": m * stored}
                with torch.no_grad():
                    teacher, _ = net_forward(params, spec, tr["x"])
                for name, target in (("distilled", teacher), ("finetuned", tr["y"])):
                    res[name] = _train_compressed(params, spec, mer, config, tr["x"], target, routing["seeds"], te)
        res[mode] = np.stack(rows, 1)
    res["stable_rank_members"] = np.array([np.mean(v) if v else np.nan for v in sr["members"]])
    res["stable_rank_merged"] = np.array([np.mean(v) if v else np.nan for v in sr["merged"]])
    res["expert_params"] = {m: m * _expert_params(spec) for m in [spec.n_experts] + list(config.n_keep)}
    return res


def _expert_params(spec: NetSpec) -> int:
    d, h, o = spec.d_model, spec.hidden, spec.d_model
    return d * h + h + h * o + o


def _expert_stable_rank(expert: dict) -> float:
    """Stable rank of an expert's unit matrix ``[W1; W2ᵀ]`` (``[d + o, h]``: one column per hidden unit)."""
    return float(stable_rank(torch.cat([expert["w1"], expert["w2"].T], 0)))


def _compress(experts: dict, rank: int, columns: int) -> tuple[dict, int]:
    """MC-SMoE's compression of stacked merged experts (``[S, m, ...]``): every ``W1`` and ``W2`` →
    low rank + structured sparse (:func:`low_rank_plus_sparse`); biases kept.  Returns the
    compressed experts and the stored parameters of one expert."""
    out = {k: v.clone() for k, v in experts.items()}
    n_s, m = experts["w1"].shape[:2]
    stored = 0
    for key in ("w1", "w2"):
        for s in range(n_s):
            for j in range(m):
                out[key][s, j], p = low_rank_plus_sparse(experts[key][s, j], rank, columns)
        stored += p
    return out, stored + experts["b1"].shape[-1] + experts["b2"].shape[-1]


def _factorise(experts: dict, rank: int, columns: int) -> dict:
    """:func:`low_rank_sparse_factors` of every merged ``W1``/``W2`` (``[S, m, ...]``), stacked:
    ``{"w1_a": [S, m, d, r], "w1_b", "w1_s", "w1_mask": [S, m, h], ..., "b1", "b2"}``."""
    out = {"b1": experts["b1"].clone(), "b2": experts["b2"].clone()}
    n_s, m = experts["w1"].shape[:2]
    for key in ("w1", "w2"):
        fs = [[low_rank_sparse_factors(experts[key][s, j], rank, columns) for j in range(m)] for s in range(n_s)]
        for part in ("a", "b", "s", "mask"):
            out[f"{key}_{part}"] = torch.stack([torch.stack([f[part] for f in row]) for row in fs])
    return out


def _assemble(f: dict) -> dict:
    """Compressed experts from their factors: ``W = A B + S ⊙ M`` (the mask keeps the sparse columns)."""
    return {"b1": f["b1"], "b2": f["b2"],
            **{k: f[f"{k}_a"] @ f[f"{k}_b"] + f[f"{k}_s"] * f[f"{k}_mask"].unsqueeze(-2) for k in ("w1", "w2")}}


def _train_compressed(params: dict, spec: NetSpec, merged: dict, config: "MergeConfig", x: torch.Tensor,
                      target: torch.Tensor, seeds, te: dict) -> np.ndarray:
    """MC-SMoE's last stage at our scale: the merged-then-compressed network (its factors, the
    biases and every non-expert parameter) trained by Adam towards ``target`` on the training
    inputs: the uncompressed network's outputs (knowledge distillation) or the labels (plain
    fine-tuning).  The compressed structure (rank, sparse columns) is kept.  Returns the test NMSE ``[S]``."""
    seed_everything(int(seeds[0]))
    f = _factorise(merged["experts"], config.compress_rank, config.compress_columns)
    train = {k: v.detach().clone().requires_grad_(not k.endswith("mask")) for k, v in f.items()}
    replaced = {f"{e}_0" for e in EXPERT_KEYS}                    # the unmerged experts: not used, not trained
    net = {k: v.detach().clone().requires_grad_(k not in replaced) for k, v in params.items()}
    opt = make_optimizer([v for d in (train, net) for v in d.values() if v.requires_grad], "adam", config.distill_lr)
    n = x.shape[1]
    order = torch.as_tensor(np.stack([batch_order(n, config.batch, config.distill_steps, s) for s in seeds], axis=1),
                            device=x.device)
    rows = torch.arange(len(seeds), device=x.device).unsqueeze(1)

    def objective(step):
        idx = order[step]
        pred, _ = net_forward(net, spec, x[rows, idx], merged={"group": merged["group"], "experts": _assemble(train)})
        per = ((pred - target[rows, idx]) ** 2).mean(dim=(1, 2))
        return per.sum(), per

    run_steps(opt, objective, steps=config.distill_steps)
    with torch.no_grad():
        return evaluate(net, spec, te["x"], te["y"], merged={"group": merged["group"], "experts": _assemble(train)})[0]


# ---------------------------------------------------------------------------
# 3. UNCURL: task-specific expert pruning
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PruneConfig:
    """A task is ``task_clusters`` of the clusters; keep the ``m`` experts it uses most."""

    task_clusters: tuple = (0, 1)
    keep: tuple = (8, 4, 2, 1)

    @classmethod
    def preset(cls, scale: str) -> "PruneConfig":
        return cls() if check_scale(scale) == "ci" else cls(task_clusters=(0, 1, 2, 3), keep=(16, 8, 4, 2, 1))


def _subset(data: dict, clusters) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of every member that belong to ``clusters``, truncated to the smallest count (``[S, n, ·]``)."""
    sel = [torch.isin(c, torch.as_tensor(clusters, device=c.device)).nonzero().squeeze(1) for c in data["cluster"]]
    n = min(len(s) for s in sel)
    return (torch.stack([data["x"][i, s[:n]] for i, s in enumerate(sel)]),
            torch.stack([data["y"][i, s[:n]] for i, s in enumerate(sel)]))


def run_pruning(config: PruneConfig, routing: dict) -> dict:
    """UNCURL-style pruning (offline, task-aware): count the task's expert assignments on its
    training rows, keep the ``m`` most used experts, route among them, score the task's test NMSE;
    against keeping ``m`` experts drawn at random.  Returns ``{"keep": [...], "task": [S, J], "random": [S, J]}``."""
    spec, params = routing["spec"], routing["balanced"]["params"]
    rng = seed_everything(routing["seeds"][0])
    xtr, _ = _subset(routing["train"], config.task_clusters)
    xte, yte = _subset(routing["test"], config.task_clusters)
    _, info = evaluate(params, spec, xtr, xtr[..., :1])
    use = usage(info["layers"][0]["idx"], spec.n_experts)
    res = {"keep": list(config.keep), "task_usage": use}
    for mode in ("task", "random"):
        cols = []
        for m in config.keep:
            keep = np.zeros((len(use), spec.n_experts), dtype=bool)
            for s in range(len(use)):
                order = np.argsort(-use[s], kind="stable") if mode == "task" else rng.permutation(spec.n_experts)
                keep[s, order[:m]] = True
            cols.append(evaluate(params, spec, xte, yte, keep_experts=torch.as_tensor(keep, device=xte.device))[0])
        res[mode] = np.stack(cols, 1)
    return res


# ---------------------------------------------------------------------------
# 4. Read-ME: a pre-gating router decoupled from the backbone
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadMeConfig:
    """Two MoE layers: a router per layer on its own input, or pre-gating routers that all read ``x₀``."""

    layers: int = 2

    @classmethod
    def preset(cls, scale: str) -> "ReadMeConfig":
        return cls() if check_scale(scale) == "ci" else cls(layers=4)


def run_readme(config: ReadMeConfig, routing_config: RoutingConfig, routing: dict) -> dict:
    """Train the per-layer-router and the pre-gated networks (same data and seeds as the routing
    experiment).  Returns per-member test NMSE of both; for the per-layer network, the accuracy of
    a linear pre-gate (multinomial logistic regression on ``x₀``, fitted on training tokens) at
    predicting the last layer's first-choice expert on test tokens, and the NMI between the first
    and last layers' choices."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import normalized_mutual_info_score

    seeds, tr, te = routing["seeds"], routing["train"], routing["test"]
    seed_everything(seeds[0])
    ts = TrainSpec(steps=routing_config.steps, lr=routing_config.lr, batch=routing_config.batch, balance=routing_config.balance)
    out = {}
    for name in ("topk", "pregate"):
        spec = routing_config.spec(layers=config.layers, router=name)
        params, _ = train_net(spec, ts, tr, seeds)
        err, info = evaluate(params, spec, te["x"], te["y"])
        out[name] = err
        if name == "topk":
            _, itr = evaluate(params, spec, tr["x"], tr["y"])
            acc, mi = [], []
            for s in range(len(seeds)):
                x0tr = itr["layers"][0]["h"][s].cpu().numpy()
                x0te = info["layers"][0]["h"][s].cpu().numpy()
                ytr = itr["layers"][-1]["idx"][s, :, 0].cpu().numpy()
                yte = info["layers"][-1]["idx"][s, :, 0].cpu().numpy()
                clf = LogisticRegression(max_iter=300).fit(x0tr, ytr) if len(set(ytr)) > 1 else None
                acc.append(float((clf.predict(x0te) == yte).mean()) if clf is not None else 1.0)
                mi.append(normalized_mutual_info_score(info["layers"][0]["idx"][s, :, 0].cpu().numpy(), yte))
            out["pregate_accuracy"], out["layer_nmi"] = np.array(acc), np.array(mi)
    return out


# ---------------------------------------------------------------------------
# 5. COMET: tree gates against top-k softmax
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CometConfig:
    """COMET's gate with ``k`` trees of depth ``log2 E`` and smooth-step scale ``gamma``."""

    gamma: float = 1.0
    search_every: int = 50
    search_tokens: int = 512

    @classmethod
    def preset(cls, scale: str) -> "CometConfig":
        return cls() if check_scale(scale) == "ci" else cls(search_every=100, search_tokens=2048)


def local_search_step(params: dict, spec: NetSpec, perm: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """One round of COMET's permutation-based local search (our reading of Ibrahim et al. 2023),
    for every member at once: evaluate the loss on ``(x, y)`` (``[S, T, ·]``, held training tokens)
    for the current gate→expert permutation of every layer and for each one-transposition
    neighbour, and move every member to its best neighbour when that lowers its loss (best
    improvement).  ``perm`` (``[S, L, E]``) is updated in place; returns the accepted moves ``[S]`` (0/1)."""
    def loss(p):
        pred, _ = net_forward(params, spec, x, expert_perm=p)
        return ((pred - y) ** 2).mean(dim=(1, 2))

    best, accepted = loss(perm), torch.zeros(perm.shape[0], dtype=torch.long, device=perm.device)
    for layer in range(perm.shape[1]):
        for q in swap_neighbourhood(perm[:, layer]):
            cand = perm.clone()
            cand[:, layer] = q
            val = loss(cand)
            better = val < best
            perm[better] = cand[better]
            best = torch.where(better, val, best)
            accepted |= better.long()
    return accepted.cpu().numpy()


def run_comet(config: CometConfig, routing_config: RoutingConfig, routing: dict) -> dict:
    """Train the COMET-gated network on the routing experiment's data, without and with the
    permutation-based local search (``plus``: a :func:`local_search_step` every ``search_every``
    Adam steps on ``search_tokens`` held training tokens per member; same initialisation and batch
    order).  Returns for each: test NMSE, the mean number of non-zero gates per test token, the
    fraction of tokens with at most ``k``; for ``plus`` also the accepted moves per member."""
    seeds, tr, te = routing["seeds"], routing["train"], routing["test"]
    spec = routing_config.spec(router="comet", gamma=config.gamma)
    ts = TrainSpec(steps=routing_config.steps, lr=routing_config.lr, batch=routing_config.batch, balance=0.0,
                   z_loss=0.0, capacity_factor=None)
    out = {}
    for name in ("comet", "plus"):
        seed_everything(seeds[0])
        perm = torch.arange(spec.n_experts, device=tr["x"].device).repeat(len(seeds), spec.layers, 1)
        moves = np.zeros(len(seeds))
        held = torch.stack([torch.as_tensor(np.random.default_rng([s, 23]).choice(tr["x"].shape[1], min(
            config.search_tokens, tr["x"].shape[1]), replace=False), device=tr["x"].device) for s in seeds])
        rows = torch.arange(len(seeds), device=tr["x"].device).unsqueeze(1)

        def hook(params, step):
            nonlocal moves
            if step % config.search_every == 0:
                moves = moves + local_search_step(params, spec, perm, tr["x"][rows, held], tr["y"][rows, held])

        params, _ = train_net(spec, ts, tr, seeds, forward_kw={"expert_perm": perm}, hook=hook if name == "plus" else None)
        err, info = evaluate(params, spec, te["x"], te["y"], expert_perm=perm)
        nz = (info["layers"][0]["gmat"] > 0).sum(-1).double()
        out[name] = {"nmse": err, "nonzero": nz.mean(1).cpu().numpy(), "within_k": (nz <= spec.k).double().mean(1).cpu().numpy(),
                     "moves": moves}
    # the section's earlier names: the COMET gate without local search
    out.update(out["comet"])
    return out


# ---------------------------------------------------------------------------
# 6. MoE-X: wide sparse experts against a dense MLP, on planted variables
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MoeXConfig:
    """``n_vars`` sparse planted variables in ``dim`` input dimensions; MoE of ``n_experts × hidden``
    ReLU units with top-``k`` softmax routing against a dense MLP of ``k · hidden`` units, and the
    same MoE with MoE-X's sparsity-aware router (softmax temperature ``router_temperature``).

    ``full``: 10 stacked seeds, 64 planted variables in 32 dimensions, 16 experts, 8x the data, batches of 1024,
    3x ci's steps (900)"""

    n_seeds: int = 5
    n_train: int = 4096
    n_test: int = 2048
    n_vars: int = 24
    dim: int = 16
    p: float = 0.1
    n_experts: int = 8
    k: int = 2
    hidden: int = 8
    steps: int = 300
    lr: float = 4e-3
    batch: int = 256
    router_temperature: float = 0.1
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "MoeXConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(n_seeds=10, n_train=32768, n_test=8192, n_vars=64, dim=32, n_experts=16, hidden=16, steps=900,
                   batch=1024, device=str(device_for(scale)))


def unit_activations(params: dict, spec: NetSpec, x: torch.Tensor) -> torch.Tensor:
    """The MoE layer as one wide sparse MLP (MoE-X, Yang et al. 2025 §3): unit ``(e, u)`` has
    activation ``G_te · relu(x W1_e + b1_e)_u`` (zero when expert ``e`` is not routed).  ``[S, T, E·h]``."""
    with torch.no_grad():
        _, info = net_forward(params, spec, x)
        hid, _ = experts_all(info["layers"][0]["h"], layer_experts(params, 0))
        act = info["layers"][0]["gmat"].unsqueeze(-1) * hid
    return act.reshape(*act.shape[:2], -1)


def interpretability(acts: np.ndarray, z: np.ndarray) -> dict:
    """Per member: ``coverage`` = mean over variables of the best unit's AUROC; ``monosemanticity``
    = mean over live units (non-zero somewhere) of the unit's best AUROC over variables."""
    au = auroc_matrix(acts, z)
    live = (acts != 0).any(0)
    return {"coverage": float(au.max(0).mean()), "monosemanticity": float(au[live].max(1).mean()) if live.any() else 0.5,
            "best_auroc": au.max(0)}


def run_moex(config: MoeXConfig, seed: int = 0) -> dict:
    """Train the wide sparse MoE with top-k softmax routing (``moex``), the same MoE with MoE-X's
    sparsity-aware router (``sparse_router``) and the dense MLP on planted variables; score each
    for test error, for how well single units detect single planted variables, and for the mean
    number of active hidden units per test token (``active_units``, the L0 of the wide layer)."""
    seed = check_int(seed, "seed", 0)
    seeds = list(range(seed, seed + check_int(config.n_seeds, "n_seeds", 2)))
    seed_everything(seed)
    full = [planted_variables(config.n_train + config.n_test, s, config.n_vars, config.dim, config.p) for s in seeds]
    tr = _stack([{k: v[:config.n_train] for k, v in d.items()} for d in full], config.device)
    te = _stack([{k: v[config.n_train:] for k, v in d.items()} for d in full], config.device)
    base = NetSpec(d_in=config.dim, d_out=config.n_vars, d_model=config.dim, n_experts=config.n_experts, k=config.k,
                   hidden=config.hidden)
    specs = {"moex": base, "sparse_router": replace(base, router="sparsity", temperature=config.router_temperature),
             "dense": replace(base, n_experts=1, k=1, hidden=config.k * config.hidden)}
    out = {}
    for name, spec in specs.items():
        ts = TrainSpec(steps=config.steps, lr=config.lr, batch=config.batch, capacity_factor=None if name == "dense" else 1.25)
        params, _ = train_net(spec, ts, tr, seeds)
        err, _ = evaluate(params, spec, te["x"], te["y"])
        acts_t = unit_activations(params, spec, te["x"])
        l0 = (acts_t > 0).double().sum(-1).mean(-1).cpu().numpy()
        acts = acts_t.cpu().numpy()
        scores = [interpretability(acts[s], te["z"][s].cpu().numpy()) for s in range(len(seeds))]
        out[name] = {"nmse": err, "coverage": np.array([r["coverage"] for r in scores]),
                     "monosemanticity": np.array([r["monosemanticity"] for r in scores]),
                     "best_auroc": np.stack([r["best_auroc"] for r in scores]),
                     "l0": l0, "units": acts.shape[-1], "active_units": spec.k * spec.hidden}
    return out


# ---------------------------------------------------------------------------
# 7. softmax Gaussian MoE: estimation error against sample size, two gates
# ---------------------------------------------------------------------------
TRUTH = {"beta1": 1.5, "beta0": 0.3, "tau": 0.5, "a": (1.0, -1.0), "b": (0.5, -0.5), "nu": (0.1, 0.1)}


@dataclass(frozen=True)
class GaussianMoEConfig:
    """Maximum likelihood for a two-expert Gaussian MoE with ``x ~ U[-2, 2]``, sample sizes ``ns``
    (nested samples per seed), full-batch Adam from the truth perturbed by ``init_noise``.

    ``full``: 20 stacked seeds, n up to 102,400, 3x ci's full-batch steps (1,200)"""

    n_seeds: int = 6
    ns: tuple = (300, 1200, 4800)
    steps: int = 400
    lr: float = 0.04
    init_noise: float = 0.3
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "GaussianMoEConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(n_seeds=20, ns=(400, 1600, 6400, 25600, 102400), steps=1200, device=str(device_for(scale)))


def sample_gaussian_moe(n: int, seed: int, gate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws of ``(x, y)`` from the true model of :data:`TRUTH` (float32)."""
    rng = np.random.default_rng(check_int(seed, "seed", 0) + 2 * 10**6)
    x = rng.uniform(-2, 2, n)
    lin = TRUTH["beta1"] * x + TRUTH["beta0"]
    z = (lin if gate == "temperature" else np.tanh(lin)) / TRUTH["tau"]
    first = rng.random(n) < 1 / (1 + np.exp(-z))
    i = np.where(first, 0, 1)
    mean = np.array(TRUTH["a"])[i] * x + np.array(TRUTH["b"])[i]
    y = mean + rng.normal(0, 1, n) * np.sqrt(np.array(TRUTH["nu"])[i])
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def _theta(raw: dict) -> dict:
    return {"beta1": raw["beta1"], "beta0": raw["beta0"], "tau": torch.exp(raw["log_tau"]), "a": raw["a"], "b": raw["b"],
            "nu": torch.exp(raw["log_nu"])}


def run_gaussian_moe(config: GaussianMoEConfig, seed: int = 0) -> dict:
    """MLE for every (gate, seed, n) as one batched full-batch optimisation per gate (the samples
    of all sizes concatenated; each point reads its own problem's parameters).

    Returns per gate ``[S, J]`` arrays: ``gate_error`` ``|Δβ₁| + |Δβ₀| + |Δτ|``, ``ratio_error``
    ``|Δ(β₁/τ)| + |Δ(β₀/τ)|`` (what the temperature gate can identify), ``expert_error``
    ``Σ_i |Δa_i| + |Δb_i| + |Δν_i|``, and ``slope_*`` ``[S]``: least-squares slopes of
    ``log error`` against ``log n``."""
    seed = check_int(seed, "seed", 0)
    seeds = list(range(seed, seed + check_int(config.n_seeds, "n_seeds", 2)))
    ns = [check_int(n, "ns[i]", 2) for n in config.ns]
    seed_everything(seed)
    dev = torch.device(config.device)
    out = {"ns": ns}
    n_s, n_j = len(seeds), len(ns)
    raw0 = {"beta1": TRUTH["beta1"], "beta0": TRUTH["beta0"], "log_tau": math.log(TRUTH["tau"]),
            "a": TRUTH["a"], "b": TRUTH["b"], "log_nu": tuple(math.log(v) for v in TRUTH["nu"])}
    for gate in ("temperature", "activation"):
        xs, ys = zip(*[sample_gaussian_moe(max(ns), s, gate) for s in seeds])
        x, y = torch.stack(xs).to(dev), torch.stack(ys).to(dev)                      # [S, n_max]
        raw = {}
        for i, (k, v) in enumerate(raw0.items()):
            v = torch.as_tensor(v, dtype=torch.float32)
            noise = torch.stack([torch.as_tensor(np.random.default_rng([s, 3, i]).normal(0, config.init_noise, v.shape),
                                                 dtype=torch.float32) for s in seeds])  # the same start for every n
            raw[k] = (v + noise).unsqueeze(1).expand(n_s, n_j, *v.shape).clone().to(dev).requires_grad_()
        opt = make_optimizer(raw.values(), "adam", config.lr)

        def objective(step):
            th = _theta(raw)
            nll = torch.stack([-gaussian_moe_logpdf(x[:, :n], y[:, :n], {k: v[:, j] for k, v in th.items()}, gate).mean(-1)
                               for j, n in enumerate(ns)], 1)                          # [S, J]; J sizes, not tokens
            return nll.sum(), nll.mean()

        run_steps(opt, objective, steps=config.steps)
        th = {k: v.detach().cpu().double().numpy() for k, v in _theta(raw).items()}
        t = {k: np.asarray(v) for k, v in TRUTH.items()}
        ge = abs(th["beta1"] - t["beta1"]) + abs(th["beta0"] - t["beta0"]) + abs(th["tau"] - t["tau"])
        re = abs(th["beta1"] / th["tau"] - t["beta1"] / t["tau"]) + abs(th["beta0"] / th["tau"] - t["beta0"] / t["tau"])
        ee = sum(abs(th[k] - t[k]).sum(-1) for k in ("a", "b", "nu"))
        res = {"gate_error": ge, "ratio_error": re, "expert_error": ee}
        logn = np.log(ns)
        for name in list(res):
            res["slope_" + name] = np.polyfit(logn, np.log(res[name]).T, 1)[0]
        out[gate] = res
    return out


# ---------------------------------------------------------------------------
# 9. a small language model: the book's Transformer with its FFN replaced by the top-k MoE
# ---------------------------------------------------------------------------
def markov_sources(n: int, seq_len: int, seed: int, vocab: int = 32, n_sources: int = 8, alpha: float = 0.1,
                   task_seed: int | None = None) -> dict:
    """Sequences from a mixture of first-order Markov sources (a language with known structure).

    Source ``s`` (equally likely per sequence) has transition matrix ``P_s [V, V]`` with rows
    ``~ Dirichlet(α 1_V)`` (small ``α``: each token has a few likely successors, different per
    source); a sequence starts from a uniform token and runs ``seq_len`` transitions.  The sources
    are drawn from ``task_seed`` (default ``seed``), the sequences from ``seed + 10⁶``.
    Returns ``{"tokens": [n, seq_len + 1] long, "source": [n] long, "oracle_nll": [n, seq_len]}``:
    ``oracle_nll`` is ``−log P_s(x_{t+1} | x_t)`` with the true source, the loss of a predictor that
    knows the source (a floor for any model that has to infer it from the context).
    """
    n, seq_len = check_int(n, "n", 1), check_int(seq_len, "seq_len", 1)
    vocab, n_sources = check_int(vocab, "vocab", 2), check_int(n_sources, "n_sources", 1)
    alpha = check_real(alpha, "alpha", 0, None, low_open=True)
    task = np.random.default_rng(seed if task_seed is None else task_seed)
    trans = task.dirichlet(np.full(vocab, alpha), size=(n_sources, vocab))
    trans = np.maximum(trans, 1e-12)
    trans /= trans.sum(-1, keepdims=True)
    cum = trans.cumsum(-1)
    rng = np.random.default_rng(seed + 10**6)
    src = rng.integers(0, n_sources, n)
    x = np.empty((n, seq_len + 1), dtype=np.int64)
    x[:, 0] = rng.integers(0, vocab, n)
    for t in range(seq_len):                       # positions, each a vectorised draw over sequences
        u = rng.random(n)
        x[:, t + 1] = np.minimum((u[:, None] > cum[src, x[:, t]]).sum(-1), vocab - 1)
    nll = -np.log(trans[src[:, None], x[:, :-1], x[:, 1:]])
    return {"tokens": torch.tensor(x), "source": torch.tensor(src), "oracle_nll": torch.tensor(nll)}


class MoEFFN(torch.nn.Module):
    """The top-k MoE as a Transformer FFN: router ``x W_r``, :func:`top_k_routing` with renormalised
    gates, :func:`moe_dispatch` (index dispatch; ``capacity_factor=None``: nothing dropped).

    After each forward, ``self.aux`` holds the Switch balance loss, the router z-loss and the
    routing ``idx [B, T, k]`` of that call (read by the training penalty and the evaluation).
    ``self.keep`` (``[E]`` bool or None): experts left after pruning (UNCURL); the others' router
    logits are −∞ and each token picks ``min(k, kept)`` experts.
    """

    def __init__(self, d: int, n_experts: int, k: int, hidden: int, capacity_factor: float | None = None):
        super().__init__()
        self.n_experts, self.k = check_int(n_experts, "n_experts", 1), check_int(k, "k", 1, n_experts)
        self.capacity_factor = capacity_factor
        g = None                                    # the global generator, seeded by seed_everything
        self.router = torch.nn.Parameter(_linear(g, d, (d, n_experts)))
        self.w1 = torch.nn.Parameter(_linear(g, d, (n_experts, d, hidden)))
        self.b1 = torch.nn.Parameter(_linear(g, d, (n_experts, hidden)))
        self.w2 = torch.nn.Parameter(_linear(g, hidden, (n_experts, hidden, d)))
        self.b2 = torch.nn.Parameter(torch.zeros(n_experts, d))
        self.aux, self.keep = None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        xf = x.reshape(b * t, d)
        logits = xf @ self.router
        k = self.k
        if self.keep is not None:
            logits = logits.masked_fill(~self.keep.to(x.device), float("-inf"))
            k = min(k, int(self.keep.sum()))
        probs, idx, gates = top_k_routing(logits, k)
        cap = None if self.capacity_factor is None else expert_capacity(b * t, self.n_experts, k, self.capacity_factor)
        y, _ = moe_dispatch(xf, {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}, idx, gates, cap)
        self.aux = (load_balancing_loss(probs, idx), router_z_loss(logits.masked_fill(torch.isinf(logits), 0.0)),
                    idx.reshape(b, t, k))
        return y.reshape(b, t, d)


def moe_transformer(vocab: int, seq_len: int, d_model: int, layers: int, heads: int, n_experts: int, k: int,
                    hidden: int, moe_every: int = 2):
    """The book's :class:`~sparsebook.models.TinyTransformer` with the FFN of every ``moe_every``-th
    block (the last of each pair, as in Switch and GShard) replaced by a top-``k`` MoE of
    ``n_experts`` experts of ``hidden`` units; the other FFNs, and all FFNs of the dense model
    (``n_experts = 1``), have ``k · hidden`` units: equal active FFN parameters per token."""
    from sparsebook.models import TinyTransformer

    model = TinyTransformer(vocab, seq_len, d_model=d_model, ff=k * hidden, layers=layers, heads=heads)
    if n_experts > 1:
        for i, blk in enumerate(model.blocks):
            if (i + 1) % moe_every == 0 or layers == 1:
                blk.up, blk.act, blk.down = MoEFFN(d_model, n_experts, k, hidden), torch.nn.Identity(), torch.nn.Identity()
    return model


def moe_layers(model) -> list:
    return [blk.up for blk in model.blocks if isinstance(blk.up, MoEFFN)]


@dataclass(frozen=True)
class LanguageConfig:
    """A next-token task on a mixture of ``n_sources`` Markov sources; the Transformer with a top-2
    MoE FFN (8 experts of 16 units, balance loss 0.01, z-loss 10⁻³) against the same Transformer
    with a dense FFN of 32 units (equal active parameters), and the MoE without the balance loss.
    At ``ci`` the Transformer has one block (its FFN is the MoE); at ``full`` four, every second FFN an MoE.

    ``full``: 4 blocks (every second FFN an MoE of 16 experts of 32 units), 16 sources over 64 tokens, sequences
    of 64, batches of 128, 5 seeds (one training loop per seed and variant, not stacked) of 800 steps: 15 loops
    x 800 = 12,000 of the chapter's 24,600 steps at full (8,700 at ci)"""

    n_seeds: int = 5
    n_train: int = 2048
    n_test: int = 512
    seq_len: int = 16
    vocab: int = 16
    n_sources: int = 4
    alpha: float = 0.05
    d_model: int = 32
    layers: int = 1
    heads: int = 2
    n_experts: int = 8
    k: int = 2
    hidden: int = 16
    steps: int = 300
    lr: float = 1e-2
    batch: int = 32
    balance: float = 0.01
    z_loss: float = 1e-3
    every: int = 50
    task_sources: tuple = (0,)
    keep: tuple = (8, 4, 2)
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "LanguageConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(n_seeds=5, n_train=16384, n_test=2048, seq_len=64, vocab=64, n_sources=16, d_model=64, layers=4,
                   heads=4, n_experts=16, hidden=32, steps=800, lr=3e-3, batch=128, every=100, keep=(16, 8, 4, 2),
                   device=str(device_for(scale)))


def _lm_eval(model, tokens: torch.Tensor, chunk: int = 256) -> dict:
    """Per-token next-token loss ``[n, T]`` and the last MoE layer's first-choice expert ``[n, T]``."""
    nll, first = [], []
    model.eval()
    with torch.no_grad():
        for a in range(0, tokens.shape[0], chunk):
            xb = tokens[a:a + chunk]
            out = model(xb[:, :-1])
            nll.append(torch.nn.functional.cross_entropy(out.transpose(1, 2), xb[:, 1:], reduction="none"))
            lay = moe_layers(model)
            if lay:
                first.append(lay[-1].aux[2][..., 0])
    return {"nll": torch.cat(nll).cpu(), "first": torch.cat(first).cpu() if first else None}


def _nmi(a, b) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(np.asarray(a).ravel(), np.asarray(b).ravel()))


def run_language_seed(config: LanguageConfig, seed: int, variant: str) -> dict:
    """One seed, one model (``variant``: ``moe``, ``moe_nobalance`` or ``dense``) trained with
    :func:`sparsebook.train.fit` on the seed's own sources and sequences.

    Returns the test next-token loss (mean, and per source), the oracle loss on the same tokens;
    for the MoE variants the expert load (last MoE layer, test tokens), the NMI between a token's
    source and its first-choice expert (at initialisation and over training), and the task's loss
    after UNCURL pruning (keep the ``m`` experts the task's training tokens use most, or ``m`` at random).
    """
    from sparsebook.train import fit

    seed = check_int(seed, "seed", 0)
    if variant not in ("moe", "moe_nobalance", "dense"):
        raise ValueError(f"variant must be 'moe', 'moe_nobalance' or 'dense'; got {variant!r}")
    c = config
    data = markov_sources(c.n_train + c.n_test, c.seq_len, seed, c.vocab, c.n_sources, c.alpha)
    dev = torch.device(c.device)
    tok, src = data["tokens"].to(dev), data["source"]
    tr, te = tok[:c.n_train], tok[c.n_train:]
    src_tr, src_te = src[:c.n_train], src[c.n_train:]
    seed_everything(seed)
    model = moe_transformer(c.vocab, c.seq_len, c.d_model, c.layers, c.heads,
                            1 if variant == "dense" else c.n_experts, c.k, c.hidden).to(dev)
    bal = c.balance if variant == "moe" else 0.0
    lay = moe_layers(model)
    mon = te[: min(128, c.n_test)]
    curve = {"steps": [], "nmi": []}

    def lm_loss(out, y):
        return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def penalty(m, step):
        if not lay:
            return torch.zeros((), device=dev)
        return sum(bal * l.aux[0] + c.z_loss * l.aux[1] for l in lay)

    def callback(m, step):
        if lay:
            ev = _lm_eval(m, mon)
            curve["steps"].append(step)
            curve["nmi"].append(_nmi(np.repeat(src_te[:mon.shape[0]].numpy()[:, None], c.seq_len, 1), ev["first"].numpy()))

    fit(model, tr[:, :-1], tr[:, 1:], steps=c.steps, lr=c.lr, batch_size=c.batch, seed=seed, loss_fn=lm_loss,
        penalty=penalty, callback=callback, every=c.every)
    ev = _lm_eval(model, te)
    per_seq = ev["nll"].mean(1).double().numpy()
    oracle = data["oracle_nll"][c.n_train:].double()
    out = {"ce": float(ev["nll"].double().mean()), "oracle_ce": float(oracle.mean()),
           "ce_by_source": np.array([per_seq[src_te.numpy() == s].mean() for s in range(c.n_sources)])}
    if not lay:
        return out
    first = ev["first"].numpy()
    src_tok = np.repeat(src_te.numpy()[:, None], c.seq_len, 1)
    load = np.bincount(first.ravel(), minlength=c.n_experts) / first.size
    out.update(nmi=_nmi(src_tok, first), nmi_curve=np.array(curve["nmi"]), curve_steps=np.array(curve["steps"]),
               load=load, load_cv=float(load.std() / load.mean()), expert_by_source=np.stack(
                   [np.bincount(first[src_te.numpy() == s].ravel(), minlength=c.n_experts) for s in range(c.n_sources)]))
    if variant != "moe":
        return out
    # UNCURL: the task is the sequences of task_sources; experts ranked by the task's training usage
    task_tr = tr[torch.isin(src_tr, torch.as_tensor(c.task_sources))]
    task_te = te[torch.isin(src_te, torch.as_tensor(c.task_sources))]
    ev_tr = _lm_eval(model, task_tr)
    use = np.bincount(ev_tr["first"].numpy().ravel(), minlength=c.n_experts)
    rng = np.random.default_rng([seed, 18])
    pruned = {"task": [], "random": []}
    for m in c.keep:
        for mode in pruned:
            order = np.argsort(-use, kind="stable") if mode == "task" else rng.permutation(c.n_experts)
            keep = torch.zeros(c.n_experts, dtype=torch.bool)
            keep[torch.as_tensor(order[:m])] = True
            lay[-1].keep = keep
            pruned[mode].append(float(_lm_eval(model, task_te)["nll"].double().mean()))
            lay[-1].keep = None
    out.update(task_ce=np.array(pruned["task"]), random_ce=np.array(pruned["random"]), task_usage=use / use.sum())
    return out


LM_VARIANTS = ("moe", "dense", "moe_nobalance")


def collect_language(results: list, config: LanguageConfig, variants=LM_VARIANTS) -> dict:
    """Stack the per-seed results of :func:`run_language_seed` (in ``variants × seeds`` order) into
    ``{variant: {name: [S, ...] array}}``."""
    out, i = {}, 0
    for v in variants:
        per = results[i:i + config.n_seeds]
        i += config.n_seeds
        out[v] = {key: np.stack([np.asarray(r[key]) for r in per]) for key in per[0]}
    return out


# ---------------------------------------------------------------------------
# 8. cost: wall-clock of the MoE layer (figure only)
# ---------------------------------------------------------------------------
def time_layers(tokens: int = 4096, d: int = 64, h: int = 64, n_experts: int = 8, k: int = 2, repeats: int = 15) -> dict:
    """Seconds per forward pass (one repeat each) of the index-dispatch MoE layer, the dense-masked
    reference (every expert on every token) and the dense MLP with the same active parameters,
    on this machine (CPU at ``ci``).  Timings are machine- and load-dependent: shown in a figure."""
    import time

    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, tokens, d, generator=g)
    ex = {"w1": torch.randn(1, n_experts, d, h, generator=g) / 8, "b1": torch.zeros(1, n_experts, h),
          "w2": torch.randn(1, n_experts, h, d, generator=g) / 8, "b2": torch.zeros(1, n_experts, d)}
    dense = {"w1": torch.randn(1, 1, d, k * h, generator=g) / 8, "b1": torch.zeros(1, 1, k * h),
             "w2": torch.randn(1, 1, k * h, d, generator=g) / 8, "b2": torch.zeros(1, 1, d)}
    logits = torch.randn(1, tokens, n_experts, generator=g)
    _, idx, gates = top_k_routing(logits, k)
    gm = gate_matrix(idx, gates, n_experts)
    ones = torch.ones(1, tokens, 1)
    fns = {"MoE: index dispatch": lambda: moe_dispatch(x, ex, idx, gates, None),
           "MoE: dense-masked": lambda: moe_dense_reference(x, ex, gm),
           "dense MLP: same active": lambda: moe_dense_reference(x, dense, ones)}
    out = {}
    with torch.no_grad():
        for name, fn in fns.items():
            fn()
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            out[name] = np.array(ts)
    return out


# ---------------------------------------------------------------------------
# everything, on worker processes
# ---------------------------------------------------------------------------
def _strip(d):
    """Results without tensors (parameters, data): what the notebook and figures need."""
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in ("params", "train", "test")}
    return d


def _run_task(task: int, scale: str, seed: int) -> dict:
    """Task 0: routing + merging + pruning; 1: Read-ME; 2: COMET + MoE-X; 3: Gaussian MoE;
    4 + i: the language model, unit ``i`` of ``LM_VARIANTS × seeds`` (one model, one seed)."""
    rc = RoutingConfig.preset(scale)
    if task >= 4:
        lc = LanguageConfig.preset(scale)
        variant, s = LM_VARIANTS[(task - 4) // lc.n_seeds], (task - 4) % lc.n_seeds
        return {"lm_unit": run_language_seed(lc, seed + s, variant)}
    if task == 0:
        rt = run_routing(rc, seed)
        return {"routing": _strip(rt), "merging": run_merging(MergeConfig.preset(scale), rt),
                "pruning": run_pruning(PruneConfig.preset(scale), rt)}
    seeds = list(range(seed, seed + rc.n_seeds))
    if task in (1, 2):
        seed_everything(seed)
        tr, te = rc.data(seeds)
        data = {"seeds": seeds, "train": tr, "test": te}
        if task == 1:
            return {"readme": run_readme(ReadMeConfig.preset(scale), rc, data)}
        return {"comet": run_comet(CometConfig.preset(scale), rc, data), "moex": run_moex(MoeXConfig.preset(scale), seed)}
    return {"gaussian": run_gaussian_moe(GaussianMoEConfig.preset(scale), seed)}


def run_all(scale: str = "ci", seed: int = 0, workers: int | None = None) -> dict:
    """Every experiment of the chapter (4 tasks on :func:`~sparsebook.seeding.over_seeds`'s pool of
    single-thread workers; each task seeds itself, so results do not depend on ``workers``)."""
    from sparsebook.seeding import over_seeds

    scale = check_scale(scale)
    seed = check_int(seed, "seed", 0)
    lc = LanguageConfig.preset(scale)
    n_lm = len(LM_VARIANTS) * lc.n_seeds
    # the longest task first; the language-model units fill the workers around the others
    order = [0] + [4 + i for i in range(n_lm)][:n_lm // 2] + [1, 2, 3] + [4 + i for i in range(n_lm)][n_lm // 2:]
    parts = dict(zip(order, over_seeds(_run_task, order, scale, seed, workers=workers)))
    out, lm = {}, []
    for task in sorted(parts):
        if task >= 4:
            lm.append(parts[task]["lm_unit"])
        else:
            out.update(parts[task])
    out["language"] = collect_language(lm, lc)
    return out
